"""The table a run ends with: the headline metric per method (columns) and size (rows),
``median [p10, p90]`` of the pooled runs, the best median of each row in bold. A rich
Table, so that it fits the terminal; the full tables are in the report files."""

from __future__ import annotations

from typing import Any

from harness.report.load import ResultSet, display_scale, runs_text
from harness.report.table import NOT_RUN, best_labels, decimals


def headline_table(rs: ResultSet, metric: str | None = None) -> Any:
    """A rich.table.Table of ``metric`` (default: the spec's headline metric)."""
    from rich.table import Table
    from rich.text import Text

    metric = metric or rs.metric
    pooled = rs.pooled(metric)
    scale, unit = display_scale(metric, pooled)
    digits = 1 if scale != 1.0 else decimals(pooled, scale)
    higher = rs.better_high(metric)
    table = Table(title=Text(f"{rs.name}: {metric}{unit}, median [p10, p90] of "
                  f"{runs_text(pooled)} ({'higher' if higher else 'lower'} is better; best "
                  "in bold)"), title_justify="left", header_style="bold")
    table.add_column("N", justify="right")
    for label in rs.labels:
        table.add_column(Text(label), justify="right")
    for size in rs.sizes:
        row = [pooled[(label, size)] for label in rs.labels]
        best = best_labels(row, higher)
        cells = []
        for p in row:
            if p.status != "ok":
                cells.append(Text(NOT_RUN if p.status == "missing" else p.status, "dim"))
                continue
            m, lo, hi = (f"{scale * p.stat(s):.{digits}f}" for s in ("median", "p10", "p90"))
            cells.append(Text(f"{m} [{lo}, {hi}]", "bold" if p.label in best else ""))
        table.add_row(str(size), *cells)
    return table
