"""Comparison tables: rows are dataset sizes, columns are methods in spec order.

A cell reads ``median [p10, p90] (mean ...)`` of the runs pooled over seeds; the best
median of each row is marked. One neutral ``Table`` is built per metric and then
rendered as Markdown, LaTeX or a styled HTML page; CSV is a long, machine-readable format instead
(one row per metric x size x method with raw numbers and a ``best`` flag).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

from harness.report.escape import csv_text, md_text
from harness.report.load import Pooled, ResultSet, display_scale, runs_text

STATS = ("median", "p10", "p90", "mean")
NOT_RUN = "—"
CSV_FIELDS = (
    "metric", "size", "method", "status", "n", "median", "p10", "p90", "mean", "best", "note",
)


@dataclass(frozen=True)
class Cell:
    text: str
    best: bool = False


@dataclass(frozen=True)
class Table:
    """One metric's table, independent of the output format."""

    title: str
    header: list[str]
    rows: list[list[Cell]]
    notes: list[str]


def best_labels(row: list[Pooled], higher_is_better: bool) -> set[str]:
    """Labels whose median is the best of the row (ties are all marked)."""
    ok = [p for p in row if p.status == "ok"]
    if not ok:
        return set()
    pick = max if higher_is_better else min
    best = pick(p.median for p in ok)
    return {p.label for p in ok if p.median == best}


def decimals(pooled: dict[tuple[str, int], Pooled], scale: float) -> int:
    """One number of decimals per table, so that columns line up: 2 for percent, else by size."""
    if scale != 1.0:
        return 2
    largest = max((float(abs(p.values).max()) for p in pooled.values() if p.n), default=0.0)
    return 1 if largest >= 100 else 3 if largest >= 1 else 4


def cell_text(pooled: Pooled, scale: float, digits: int) -> str:
    if pooled.status != "ok":
        return NOT_RUN if pooled.status == "missing" else pooled.status
    m, lo, hi, mean = (f"{scale * pooled.stat(s):.{digits}f}" for s in STATS)
    return f"{m} [{lo}, {hi}] (mean {mean})"


def data_text(entry: dict) -> str:
    """A data file as reports name it: its file name and the start of its sha256."""
    if "source" in entry:
        return str(entry["source"])
    return f"{Path(entry['path']).name} (sha256 {entry['sha256'][:12]})"


def build_table(rs: ResultSet, metric: str) -> Table:
    pooled = rs.pooled(metric)
    scale, unit = display_scale(metric, pooled)
    digits = decimals(pooled, scale)
    higher = rs.better_high(metric)
    rows: list[list[Cell]] = []
    notes: list[str] = []
    for size in rs.sizes:
        row = [pooled[(label, size)] for label in rs.labels]
        best = best_labels(row, higher)
        cells = [Cell(cell_text(p, scale, digits), p.label in best) for p in row]
        rows.append([Cell(str(size)), *cells])
        notes += [f"{p.label}, N={size}: {problem}" for p in row for problem in p.problems]
    if any(p.status == "missing" for p in pooled.values()):
        notes.append(f"{NOT_RUN} = not run yet")
    if rs.data:
        notes.append("data: " + ", ".join(data_text(entry) for entry in rs.data.values()))
    title = (
        f"{rs.name}: {metric}{unit}, median [p10, p90] (mean) of {runs_text(pooled)} "
        f"pooled over seeds; best median per row marked "
        f"({'higher' if higher else 'lower'} is better)"
    )
    return Table(title, ["N", *rs.labels], rows, notes)


def to_markdown(table: Table) -> str:
    esc = md_text

    def cell(c: Cell) -> str:
        return f"**{esc(c.text)}**" if c.best else esc(c.text)

    lines = [f"### {esc(table.title)}", ""]
    lines.append("| " + " | ".join(esc(h) for h in table.header) + " |")
    lines.append("|" + "|".join(["---:"] + [":---:"] * (len(table.header) - 1)) + "|")
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in table.rows]
    if table.notes:
        lines += ["", *(f"- {esc(n)}" for n in table.notes)]
    return "\n".join(lines) + "\n"


LATEX_SPECIALS = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
}


def latex_escape(text: str) -> str:
    return "".join(LATEX_SPECIALS.get(ch, ch) for ch in text).replace(NOT_RUN, "--")


def to_latex(table: Table) -> str:
    def cell(c: Cell) -> str:
        return rf"\textbf{{{latex_escape(c.text)}}}" if c.best else latex_escape(c.text)

    lines = [
        r"\begin{table}[t]",
        r"\centering",
        rf"\caption{{{latex_escape(table.title)}}}",
        r"\begin{tabular}{r" + "c" * (len(table.header) - 1) + "}",
        r"\hline",
        " & ".join(latex_escape(h) for h in table.header) + r" \\",
        r"\hline",
        *(" & ".join(cell(c) for c in row) + r" \\" for row in table.rows),
        r"\hline",
        r"\end{tabular}",
    ]
    if table.notes:
        lines.append(r"\par\footnotesize " + "; ".join(latex_escape(n) for n in table.notes))
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"


def to_csv(rs: ResultSet, metrics: list[str]) -> str:
    """Long format with raw (unscaled) numbers; ``best`` is 1 for the best median of a row."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for metric in metrics:
        pooled = rs.pooled(metric)
        for size in rs.sizes:
            row = [pooled[(label, size)] for label in rs.labels]
            best = best_labels(row, rs.better_high(metric))
            for p in row:
                ok = p.status == "ok"
                stats = {s: repr(p.stat(s)) if ok else "" for s in STATS}
                writer.writerow({
                    "metric": csv_text(metric), "size": size, "method": csv_text(p.label),
                    "status": p.status, "n": p.n, **stats, "best": int(p.label in best),
                    "note": csv_text("; ".join(p.problems)),
                })
    return out.getvalue()
