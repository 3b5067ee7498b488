"""One board over any set of result sets (several tasks, several specs).

Rows are methods (by label), columns are each source's sizes (a source is one spec's
results), each cell the source's headline metric (the spec's ``metric``) as the chosen
statistic (median by default) of the replicates pooled over seeds. Per method:

- the **mean win rate** (HELM's): against each other method, the share of the columns
  both have in which it is better (direction-aware, ties count half), averaged over the
  other methods;
- the **mean rank** over the columns it has (1 = best, ties share);
- per column, the **difference to the reference** (default ``baseline``) with its 95%
  paired bootstrap interval (harness.report.stats: over replicates where the task pairs
  them, else over seeds; "n = 1, no interval" when there is nothing to resample), marked
  where the interval excludes zero;
- per source with a size axis, the **data-equivalent gain** over the reference.

Methods missing from a source are shown as missing ("n/a": not in that spec; "—": in
the spec, not run yet; or failed / skipped), never dropped.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from typing import Any

from harness.report.escape import csv_text, md_text
from harness.report.load import ResultSet, display_scale, runs_text
from harness.report.provenance import Provenance, provenance
from harness.report.stats import (
    BOOTSTRAP_SEED,
    Gain,
    Interval,
    data_equivalent_gain,
    paired_difference,
    ranks,
    resamples_for,
    win_rates,
)
from harness.report.table import decimals

ABSENT = "n/a"  # the method is not in this source's spec
NOT_RUN = "—"


@dataclass(frozen=True)
class Source:
    """One result set on the board, with its headline metric."""

    rs: ResultSet
    name: str
    metric: str
    higher: bool
    scale: float
    unit: str
    digits: int
    provenance: Provenance

    @property
    def paired(self) -> bool:
        return self.rs.paired


@dataclass(frozen=True)
class Entry:
    """One method at one column."""

    status: str  # ok, absent (not in the spec), missing (not run), failed, skipped, no data
    value: float | None = None
    n: int = 0
    rank: float | None = None
    diff: Interval | None = None  # vs the reference (None for the reference itself)

    def text(self, source: Source) -> str:
        if self.status == "ok":
            return f"{source.scale * self.value:.{source.digits}f}"  # type: ignore[operator]
        return {"absent": ABSENT, "missing": NOT_RUN}.get(self.status, self.status)


@dataclass
class Board:
    reference: str
    stat: str
    confidence: float
    sources: list[Source]
    columns: list[tuple[int, int]]  # (source index, size)
    labels: list[str]  # ordered by mean win rate
    entries: dict[tuple[str, int], Entry]  # (label, column index)
    win_rate: dict[str, float | None]
    pairwise: dict[str, dict[str, tuple[float, int]]]
    mean_rank: dict[str, float | None]
    gains: dict[tuple[int, str], Gain] = field(default_factory=dict)

    def cells(self, label: str) -> int:
        return sum(self.entries[(label, c)].status == "ok" for c in range(len(self.columns)))

    def versus(self, label: str) -> dict[str, int]:
        """How many columns the method is significantly better / worse than the
        reference, or not significantly different (or without an interval)."""
        out = {"better": 0, "worse": 0, "n.s.": 0}
        for c, (s, _) in enumerate(self.columns):
            entry = self.entries[(label, c)]
            if entry.diff is not None and entry.diff.estimate is not None:
                out[entry.diff.side(self.sources[s].higher)] += 1
        return out

    def columns_of(self, s: int) -> list[int]:
        return [c for c, (src, _) in enumerate(self.columns) if src == s]


def build_board(result_sets: list[ResultSet], reference: str = "baseline",
                stat: str = "median", confidence: float = 0.95) -> Board:
    """The board of ``result_sets`` (see the module docstring)."""
    sources = _sources(result_sets)
    labels = list(dict.fromkeys(lb for src in sources for lb in src.rs.labels))
    columns = [(s, size) for s, src in enumerate(sources) for size in src.rs.sizes]
    entries: dict[tuple[str, int], Entry] = {}
    comparable: list[tuple[dict[str, float], bool]] = []
    replicates = [src.rs.replicates(src.metric) for src in sources]
    pooled = [src.rs.pooled(src.metric) for src in sources]
    for c, (s, size) in enumerate(columns):
        src = sources[s]
        values: dict[str, float] = {}
        for label in labels:
            if label not in src.rs.labels:
                entries[(label, c)] = Entry("absent")
                continue
            cell = pooled[s][(label, size)]
            if cell.status != "ok":
                entries[(label, c)] = Entry(cell.status)
                continue
            values[label] = cell.stat(stat)
        column_ranks = ranks(values, src.higher)
        ref_values = replicates[s].get((reference, size))
        for label, value in values.items():
            diff = None
            if label != reference and ref_values is not None:
                diff = paired_difference(replicates[s][(label, size)], ref_values,
                                         src.paired, stat, confidence)
            entries[(label, c)] = Entry("ok", value, pooled[s][(label, size)].n,
                                        column_ranks[label], diff)
        comparable.append((values, src.higher))
    mean_win, pairwise = win_rates(comparable)
    mean_rank: dict[str, float | None] = {}
    for label in labels:
        rs_ = [entries[(label, c)].rank for c in range(len(columns))
               if entries[(label, c)].rank is not None]
        mean_rank[label] = sum(rs_) / len(rs_) if rs_ else None  # type: ignore[arg-type]
    order = sorted(labels, key=lambda lb: (
        -(mean_win.get(lb) if mean_win.get(lb) is not None else -1.0),
        mean_rank[lb] if mean_rank[lb] is not None else float("inf"), labels.index(lb)))
    board = Board(reference, stat, confidence, sources, columns, order, entries,
                  {lb: mean_win.get(lb) for lb in labels}, pairwise, mean_rank)
    board.gains = _gains(board)
    return board


def _sources(result_sets: list[ResultSet]) -> list[Source]:
    names = [rs.name for rs in result_sets]
    out = []
    for rs in result_sets:
        name = rs.name if names.count(rs.name) == 1 else f"{rs.name} ({rs.results_dir})"
        pooled = rs.pooled(rs.metric)
        scale, unit = display_scale(rs.metric, pooled)
        out.append(Source(rs, name, rs.metric, rs.better_high(rs.metric), scale, unit,
                          decimals(pooled, scale), provenance(rs)))
    return out


def _gains(board: Board) -> dict[tuple[int, str], Gain]:
    """The data-equivalent gain of every method over the reference, per source with at
    least two sizes where the reference has values."""
    out: dict[tuple[int, str], Gain] = {}
    for s, _ in enumerate(board.sources):
        cols = board.columns_of(s)
        ref = {board.columns[c][1]: board.entries[(board.reference, c)].value for c in cols
               if (board.reference, c) in board.entries
               and board.entries[(board.reference, c)].status == "ok"}
        if len(ref) < 2:
            continue
        for label in board.labels:
            if label == board.reference:
                continue
            curve = {board.columns[c][1]: board.entries[(label, c)].value for c in cols
                     if board.entries[(label, c)].status == "ok"}
            if curve:
                out[(s, label)] = data_equivalent_gain(ref, curve,  # type: ignore[arg-type]
                                                       board.sources[s].higher)
    return out


# ---- rendering ---------------------------------------------------------------------------
def _rate(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def _rank(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def summary_rows(board: Board) -> tuple[list[str], list[list[str]]]:
    header = ["#", "method", "mean win rate", "mean rank", "cells",
              f"vs {board.reference}: better / worse / n.s."]
    rows = []
    for i, label in enumerate(board.labels, 1):
        v = board.versus(label)
        versus = ("reference" if label == board.reference
                  else f"{v['better']} / {v['worse']} / {v['n.s.']}")
        rows.append([str(i), label, _rate(board.win_rate[label]), _rank(board.mean_rank[label]),
                     f"{board.cells(label)} of {len(board.columns)}", versus])
    return header, rows


def source_title(board: Board, s: int) -> str:
    src = board.sources[s]
    pooled = src.rs.pooled(src.metric)
    task = "" if src.name == src.rs.task else f" (task {src.rs.task})"
    return (f"{src.name}{task}: {src.metric}{src.unit}, {board.stat} of "
            f"{runs_text(pooled)} pooled over seeds "
            f"({'higher' if src.higher else 'lower'} is better)")


def source_labels(board: Board, s: int) -> list[str]:
    """The board's labels that are in source ``s``'s spec (or its records), board order."""
    return [lb for lb in board.labels if lb in board.sources[s].rs.labels]


def absent_note(board: Board, s: int) -> str:
    """Which methods of the board this source's spec does not have (shown, not dropped)."""
    absent = [lb for lb in board.labels if lb not in board.sources[s].rs.labels]
    return f"Not in this spec ({ABSENT}): {', '.join(absent)}." if absent else ""


def value_rows(board: Board, s: int) -> tuple[list[str], list[list[tuple[str, bool]]]]:
    """Methods x sizes of one source; the flag marks the best value of each column."""
    cols = board.columns_of(s)
    header = ["method", *(f"N={board.columns[c][1]}" for c in cols)]
    rows = []
    for label in source_labels(board, s):
        cells = []
        for c in cols:
            entry = board.entries[(label, c)]
            cells.append((entry.text(board.sources[s]), entry.rank == 1.0))
        rows.append([(label, False), *cells])
    return header, rows


def diff_title(board: Board, s: int) -> str:
    src = board.sources[s]
    unit = " (percentage points)" if src.unit == " (%)" else ""
    how = ("paired bootstrap over (seed, replicate) pairs" if src.paired
           else "paired bootstrap over seeds (this task does not pair replicates)")
    return (f"{src.name}: difference to {board.reference}{unit}, {board.stat}, "
            f"{board.confidence:.0%} interval by {how}; * = the interval excludes zero")


def diff_rows(board: Board, s: int) -> tuple[list[str], list[list[str]]]:
    cols = board.columns_of(s)
    src = board.sources[s]
    header = ["method", *(f"N={board.columns[c][1]}" for c in cols)]
    rows = []
    for label in source_labels(board, s):
        if label == board.reference:
            continue
        cells = []
        for c in cols:
            entry = board.entries[(label, c)]
            ref = board.entries.get((board.reference, c))
            if entry.status != "ok":
                cells.append(entry.text(src))
            elif ref is None or ref.status != "ok" or entry.diff is None:
                cells.append(f"no {board.reference}")
            else:
                cells.append(entry.diff.text(src.scale, src.digits))
        rows.append([label, *cells])
    return header, rows


def pairs_note(board: Board, s: int) -> str:
    """'pairs: 300 (seed, replicate) pairs per cell', or the range when they differ."""
    counts = sorted({board.entries[(lb, c)].diff.n for lb in board.labels
                     for c in board.columns_of(s)
                     if board.entries[(lb, c)].diff is not None})  # type: ignore[union-attr]
    if not counts:
        return f"no differences: {board.reference} has no results here"
    unit = "(seed, replicate) pairs" if board.sources[s].paired else "seeds"
    span = str(counts[0]) if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"
    note = f"{span} {unit} per comparison"
    if counts[0] < 2:
        note += "; n = 1: no interval"
    return note


def gain_rows(board: Board, s: int) -> tuple[list[str], list[list[str]]] | None:
    gains = {lb: g for (src, lb), g in board.gains.items() if src == s}
    if not gains:
        return None
    sizes = [board.columns[c][1] for c in board.columns_of(s)]
    header = ["method", *(f"N={n}" for n in sizes), "mean"]
    rows = []
    for label in source_labels(board, s):
        gain = gains.get(label)
        if gain is None:
            continue
        by_size = {p.size: p for p in gain.points}
        cells = []
        for n in sizes:
            p = by_size.get(n)
            cells.append("—" if p is None else "undef." if p.gain is None
                         else f"{p.gain:+.0f}%")
        mean = gain.mean
        cells.append("undefined" if mean is None
                     else f"{mean:+.1f}% ({len(gain.defined)} of {len(gain.points)})")
        rows.append([label, *cells])
    return header, rows


def gain_title(board: Board, s: int) -> str:
    return (f"{board.sources[s].name}: data-equivalent gain over {board.reference}: the "
            f"extra data (percent) the {board.reference} needs to reach the method's "
            f"{board.stat} (its curve made monotone and interpolated in log size; undef. = "
            f"outside the {board.reference}'s range); mean over the sizes where defined")


def legend(board: Board) -> list[str]:
    return [
        f"{NOT_RUN} = in the spec, not run yet; {ABSENT} = not in this spec; failed / "
        "skipped = no results, see `harness report`.",
        "rows are labels: a label is the method so labelled in each spec, with that spec's "
        "settings (they may differ between specs).",
        "mean win rate: against each other method, the share of the columns both have in "
        "which it is better (ties count half), averaged over the other methods; mean rank "
        "over the columns it has (1 = best).",
        f"intervals: percentile bootstrap, {resamples_for(board.confidence)} resamples, "
        f"numpy seed {BOOTSTRAP_SEED} (deterministic).",
    ]


def to_markdown(board: Board, heading: str = "##") -> str:
    esc = md_text

    def table(header: list[str], rows: list[list[str]], right_from: int = 1) -> list[str]:
        aligns = ["---" if i < right_from else "---:" for i in range(len(header))]
        return ["| " + " | ".join(esc(h) for h in header) + " |",
                "|" + "|".join(aligns) + "|",
                *("| " + " | ".join(esc(c) for c in row) + " |" for row in rows)]

    lines = [f"{heading} Leaderboard: {board.stat} of each source's headline metric, "
             f"reference {board.reference}", ""]
    header, rows = summary_rows(board)
    lines += table(header, rows, right_from=2) + [""]
    for s, src in enumerate(board.sources):
        lines += [f"{heading}# {esc(source_title(board, s))}", ""]
        header, vrows = value_rows(board, s)
        lines += table(header, [[f"**{t}**" if best else t for t, best in row]
                                for row in vrows]) + [""]
        absent = absent_note(board, s)
        lines += [f"Best per column in bold. {esc(absent) + ' ' if absent else ''}"
                  f"Records: {esc(src.provenance.text())}.", ""]
        header, drows = diff_rows(board, s)
        if drows:
            lines += [f"{esc(diff_title(board, s))} ({pairs_note(board, s)}):", ""]
            lines += table(header, drows) + [""]
        gains = gain_rows(board, s)
        if gains is not None:
            lines += [f"{esc(gain_title(board, s))}:", ""]
            lines += table(*gains) + [""]
    lines += [f"- {esc(note)}" for note in legend(board)]
    return "\n".join(lines) + "\n"


CSV_FIELDS = ("source", "task", "metric", "size", "method", "status", "n", "value", "rank",
              "diff", "diff_low", "diff_high", "pairs", "interval", "significant",
              "mean_win_rate", "mean_rank")


def to_csv(board: Board) -> str:
    """Long format, raw (unscaled) numbers: one row per source x size x method."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for c, (s, size) in enumerate(board.columns):
        src = board.sources[s]
        for label in board.labels:
            e = board.entries[(label, c)]
            d = e.diff
            writer.writerow({
                "source": csv_text(src.name), "task": csv_text(src.rs.task),
                "metric": csv_text(src.metric), "size": size, "method": csv_text(label),
                "status": e.status, "n": e.n,
                "value": "" if e.value is None else repr(e.value),
                "rank": "" if e.rank is None else e.rank,
                "diff": "" if d is None or d.estimate is None else repr(d.estimate),
                "diff_low": "" if d is None or d.low is None else repr(d.low),
                "diff_high": "" if d is None or d.high is None else repr(d.high),
                "pairs": "" if d is None else d.n, "interval": "" if d is None else d.method,
                "significant": "" if d is None else int(d.excludes_zero),
                "mean_win_rate": "" if board.win_rate[label] is None
                else repr(board.win_rate[label]),
                "mean_rank": "" if board.mean_rank[label] is None
                else repr(board.mean_rank[label]),
            })
    return out.getvalue()


def to_dict(board: Board) -> dict[str, Any]:
    return {
        "reference": board.reference,
        "statistic": board.stat,
        "confidence": board.confidence,
        "bootstrap": {"resamples": resamples_for(board.confidence), "seed": BOOTSTRAP_SEED},
        "sources": [{"name": src.name, "results_dir": str(src.rs.results_dir),
                     "task": src.rs.task, "metric": src.metric,
                     "higher_is_better": src.higher, "paired_replicates": src.paired,
                     "sizes": list(src.rs.sizes), "labels": list(src.rs.labels),
                     "provenance": src.provenance.as_dict()} for src in board.sources],
        "methods": [{"label": lb, "mean_win_rate": board.win_rate[lb],
                     "mean_rank": board.mean_rank[lb], "cells": board.cells(lb),
                     "columns": len(board.columns),
                     "vs_reference": None if lb == board.reference else board.versus(lb),
                     "win_rates": {o: {"rate": r, "shared_columns": n}
                                   for o, (r, n) in board.pairwise.get(lb, {}).items()}}
                    for lb in board.labels],
        "cells": [{"source": board.sources[s].name, "size": size, "method": lb,
                   "status": (e := board.entries[(lb, c)]).status, "value": e.value,
                   "n": e.n, "rank": e.rank,
                   "difference": e.diff.as_dict() if e.diff is not None else None}
                  for c, (s, size) in enumerate(board.columns) for lb in board.labels],
        "data_gain": [{"source": board.sources[s].name, "method": lb,
                       "reference": board.reference, "mean": g.mean,
                       "defined_sizes": len(g.defined), "sizes": len(g.points),
                       "points": [p.__dict__ for p in g.points]}
                      for (s, lb), g in board.gains.items()],
    }


def to_json(board: Board) -> str:
    return json.dumps(to_dict(board), indent=2) + "\n"


def render(board: Board, fmt: str) -> str:
    """The board as md, csv or json (html: harness.report.formats.render_board)."""
    renderer = {"md": to_markdown, "csv": to_csv, "json": to_json}.get(fmt)
    if renderer is None:
        raise ValueError(f"unknown format {fmt!r}; known: md, csv, json")
    return renderer(board)
