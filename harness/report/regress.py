"""Regression against an earlier run: ``harness check NEW --against-results OLD``.

Every (label, size, metric) that both result sets have is compared:

- **equal expected** when each seed's cell has the same cell id in both (the same config
  and data hashes), the same task and method code (the records' code identity), both
  records come from the same clean git commit of the harness, with the same
  library versions and torch threads, on the same host (journal.jsonl): the tasks are
  deterministic on one machine with the same threads, so every replicate's value must be
  identical; any difference fails ("changed although the inputs are the same").
- otherwise **within the paired noise**: the mean of the replicate differences NEW - OLD
  (paired by (seed, replicate) where the task pairs replicates, else by seed, as the
  leaderboard pairs methods) with a paired bootstrap interval. The confidence (default
  95%) is family-wise over the compared rows (Bonferroni): a rerun in which nothing
  changed fails with at most that small a chance however many rows there are. An interval
  entirely on the worse side (direction-aware) is a regression, entirely on the better
  side an improvement; else "within noise".

A cell ok in OLD that failed or was skipped in NEW is a regression; cells not run in one
of the two are listed as not compared. The mean is used (not the median) because it is
the efficient paired statistic and its bootstrap is fast enough to run on every row.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from harness.cells.code import changes
from harness.report.load import ReportError, ResultSet, record_label
from harness.report.provenance import hosts_of
from harness.report.stats import Interval, paired_difference

REGRESSION_STAT = "mean"


@dataclass(frozen=True)
class Moved:
    """One compared (label, size, metric)."""

    label: str
    size: int
    metric: str
    verdict: str  # equal, within noise, improved, regressed, changed, failed now, fixed
    old: float | None = None  # mean over replicates
    new: float | None = None
    interval: Interval | None = None
    expect_equal: bool = False
    why: str = ""

    @property
    def failed(self) -> bool:
        return self.verdict in ("regressed", "changed", "failed now")

    @property
    def moved(self) -> bool:
        return self.verdict not in ("equal", "within noise")


@dataclass(frozen=True)
class Comparison:
    rows: list[Moved]
    not_compared: list[str]  # why some shared or unshared cells were not compared
    confidence: float
    per_row_confidence: float

    @property
    def failed(self) -> bool:
        return any(r.failed for r in self.rows)


def _by_cell(records: Iterable[dict[str, Any]]) -> dict[tuple[str, int], list[dict[str, Any]]]:
    out: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for record in records:
        out.setdefault((record_label(record), int(record["size"])), []).append(record)
    return out


def same_inputs(new: list[dict[str, Any]], old: list[dict[str, Any]], new_hosts: dict,
                old_hosts: dict) -> tuple[bool, str]:
    """Whether every seed's cell ran with the same inputs in both (see the module doc)."""
    old_by_seed = {r["seed"]: r for r in old}
    new_by_seed = {r["seed"]: r for r in new}
    if set(old_by_seed) != set(new_by_seed):
        return False, "different seeds"
    for seed, n in new_by_seed.items():
        o = old_by_seed[seed]
        if n["cell_id"] != o["cell_id"]:
            return False, "config or data differ (cell ids)"
        if changes(o.get("code"), n.get("code") or {}):
            return False, "task or method code differs (code identity)"
        commit = n.get("git_commit")
        if not commit or commit != o.get("git_commit") or str(commit).endswith("-dirty"):
            return False, "code differs or is uncommitted (git commit)"
        if n.get("versions") != o.get("versions") or n.get("threads") != o.get("threads"):
            return False, "library versions or threads differ"
        host_new, host_old = new_hosts.get(n["cell_id"]), old_hosts.get(o["cell_id"])
        if host_new is None or host_new != host_old:
            return False, "host differs or is unknown (journal.jsonl)"
    return True, "same cell ids, clean commit, versions, threads and host"


def compare_runs(new: ResultSet, old: ResultSet, confidence: float = 0.95) -> Comparison:
    """Compare every (label, size, metric) of ``new`` with ``old`` (see the module doc)."""
    if new.task != old.task:
        raise ReportError(f"the results are of different tasks: '{new.task}' and "
                          f"'{old.task}'")
    new_cells, old_cells = _by_cell(new.records), _by_cell(old.records)
    new_hosts, old_hosts = hosts_of(new), hosts_of(old)
    not_compared = []
    for where, a, b in (("NEW", new_cells, old_cells), ("OLD", old_cells, new_cells)):
        only: dict[str, list[int]] = {}
        for lb, n in sorted(set(a) - set(b), key=lambda k: (k[0], k[1])):
            only.setdefault(lb, []).append(n)
        not_compared += [f"{lb}: only in {where} (N = {', '.join(map(str, sizes))})"
                         for lb, sizes in only.items()]
    pending: list[tuple[str, int, str, dict, dict, bool, str]] = []
    rows: list[Moved] = []
    for key in sorted(set(new_cells) & set(old_cells), key=lambda k: (k[1], k[0])):
        label, size = key
        n_recs, o_recs = new_cells[key], old_cells[key]
        n_ok = [r for r in n_recs if r["status"] == "ok"]
        o_ok = [r for r in o_recs if r["status"] == "ok"]
        if len(o_ok) == len(o_recs) and len(n_ok) < len(n_recs):
            bad = next(r for r in n_recs if r["status"] != "ok")
            rows.append(Moved(label, size, "*", "failed now",
                              why=f"{bad['status']}: {bad.get('reason') or 'no reason'}"))
            continue
        if len(n_ok) == len(n_recs) and len(o_ok) < len(o_recs):
            rows.append(Moved(label, size, "*", "fixed", why="ok now, not ok in OLD"))
            continue
        if not n_ok or not o_ok:
            not_compared.append(f"{label}, N={size}: not ok in either")
            continue
        equal, why = same_inputs(n_ok, o_ok, new_hosts, old_hosts)
        metrics = [m for m in new.metrics if m in old.metrics
                   and all(m in r["metrics"] for r in n_ok + o_ok)]
        for metric in metrics:
            pending.append((label, size, metric, _values(n_ok, metric), _values(o_ok, metric),
                            equal, why))
    noisy = sum(not equal for *_, equal, _ in pending)
    per_row = 1 - (1 - confidence) / max(noisy, 1)
    for label, size, metric, n_vals, o_vals, equal, why in pending:
        rows.append(_compare(new, label, size, metric, n_vals, o_vals, equal, why, per_row))
    return Comparison(rows, not_compared, confidence, per_row)


def _values(records: list[dict[str, Any]], metric: str) -> dict[tuple[int, int], float]:
    return {(int(r["seed"]), i): float(v) for r in records
            for i, v in enumerate(r["metrics"][metric])}


def _compare(rs: ResultSet, label: str, size: int, metric: str, new: dict, old: dict,
             equal: bool, why: str, confidence: float) -> Moved:
    new_mean = float(np.mean(list(new.values())))
    old_mean = float(np.mean(list(old.values())))
    base = dict(label=label, size=size, metric=metric, old=old_mean, new=new_mean,
                expect_equal=equal, why=why)
    if equal:
        same = new.keys() == old.keys() and all(new[k] == old[k] for k in new)
        return Moved(**base, verdict="equal" if same else "changed")
    finite = {k: v for k, v in new.items() if np.isfinite(v)}, {
        k: v for k, v in old.items() if np.isfinite(v)}
    interval = paired_difference(*finite, rs.paired, REGRESSION_STAT, confidence)
    higher = rs.better_high(metric)
    side = interval.side(higher)
    if interval.estimate == 0 and interval.low == interval.high == 0:
        verdict = "equal"
    else:
        verdict = {"better": "improved", "worse": "regressed"}.get(side, "within noise")
    return Moved(**base, verdict=verdict, interval=interval)


def summary(comparison: Comparison) -> str:
    counts: dict[str, int] = {}
    for r in comparison.rows:
        counts[r.verdict] = counts.get(r.verdict, 0) + 1
    order = ("equal", "within noise", "improved", "fixed", "regressed", "changed",
             "failed now")
    parts = [f"{counts[v]} {v}" for v in order if counts.get(v)]
    text = f"{len(comparison.rows)} compared: " + (", ".join(parts) or "none")
    if comparison.not_compared:
        text += f"; {len(comparison.not_compared)} not compared"
    return text


def text_table(comparison: Comparison, title: str, width: int = 100) -> str:
    """What moved (rows neither equal nor within noise), then the summary."""
    lines = [title]
    moved = [r for r in comparison.rows if r.moved]
    if moved:
        from harness.report.text import fit_table

        body = []
        for r in moved:
            change = r.interval.text(1.0, 4) if r.interval is not None else r.why
            if r.expect_equal and r.verdict == "changed":
                change = f"{r.new - r.old:+.4g} (expected equal: {r.why})"  # type: ignore
            body.append([r.label, str(r.size), r.metric, _fmt(r.old), _fmt(r.new), change,
                         r.verdict])
        header = ["method", "N", "metric", "old mean", "new mean", "new - old", "result"]
        lines.append(fit_table(header, body, width, right=[1, 3, 4], nowrap=[1, 6]).rstrip())
    else:
        lines.append("nothing moved")
    noisy = [r for r in comparison.rows if r.interval is not None]
    exact = [r for r in comparison.rows if r.expect_equal]
    if exact:
        lines.append(f"{len(exact)} rows expected equal (same inputs, deterministic task)")
    if noisy:
        units = {r.interval.method.split(",")[0] for r in noisy}  # type: ignore[union-attr]
        lines.append(f"{len(noisy)} rows compared within the noise: mean difference, "
                     f"{'; '.join(sorted(units))}; {comparison.confidence:.0%} family-wise "
                     f"({comparison.per_row_confidence:.4%} per row)")
    lines += [f"not compared: {why}" for why in comparison.not_compared[:10]]
    if len(comparison.not_compared) > 10:
        lines.append(f"... and {len(comparison.not_compared) - 10} more not compared")
    lines.append(summary(comparison))
    from harness.report.text import wrap

    out = []
    for line in lines:  # the table's lines fit already; wrap the prose
        out.append(line if "\n" in line or len(line) <= width else wrap(line, width).rstrip())
    return "\n".join(out) + "\n"


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.4g}"


def rows_json(comparison: Comparison) -> dict[str, Any]:
    return {
        "confidence": comparison.confidence,
        "per_row_confidence": comparison.per_row_confidence,
        "statistic": REGRESSION_STAT,
        "failed": comparison.failed,
        "summary": summary(comparison),
        "not_compared": comparison.not_compared,
        "rows": [{"label": r.label, "size": r.size, "metric": r.metric,
                  "verdict": r.verdict, "old": r.old, "new": r.new,
                  "expect_equal": r.expect_equal, "why": r.why,
                  "interval": r.interval.as_dict() if r.interval else None}
                 for r in comparison.rows],
    }


def junit_cases(comparison: Comparison, suite: str) -> list:
    from harness.report.junit import Case

    cases = []
    for r in comparison.rows:
        name = f"{r.label} N={r.size} [{r.metric}]"
        detail = (r.interval.text(1.0, 4) + f" ({r.interval.method})" if r.interval
                  else r.why)
        text = f"old {_fmt(r.old)}, new {_fmt(r.new)}: {r.verdict}; {detail}"
        if r.failed:
            cases.append(Case(f"{suite}.regression", name, "fail", r.verdict, text))
        else:
            cases.append(Case(f"{suite}.regression", name, "pass", out=text))
    return cases
