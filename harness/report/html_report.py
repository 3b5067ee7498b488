"""The HTML report of one result set (``harness report --format html`` and the
``report.html`` written after every run): for each metric its figure and its table, then
where the numbers come from (commit, dates, machines, versions, data) and the spec as run.
One self-contained file (harness.report.html): it opens offline, from a mail or an
archive."""

from __future__ import annotations

from collections.abc import Sequence

import yaml

from harness.report.html import Td, esc, image, notes, page, table
from harness.report.load import ResultSet
from harness.report.provenance import details
from harness.report.table import NOT_RUN, build_table

FIGURE_CAPTION = "line through the means; bars from the 10th to the 90th percentile"


def metric_section(rs: ResultSet, metric: str, plot: bool = True) -> str:
    """One metric: its heading, figure (inline PNG) and table."""
    parts = [f'<h2 id="{esc(metric)}">{esc(metric)}</h2>\n']
    if plot:
        from harness.report.plot import plot_png

        parts.append(image(plot_png(rs, metric), f"{rs.name}: {metric}", FIGURE_CAPTION))
    t = build_table(rs, metric)
    rows = [[Td(c.text, "best" if c.best else ("missing" if c.text == NOT_RUN else ""))
             for c in row] for row in t.rows]
    parts.append(table(t.header, rows, t.title) + notes(t.notes))
    return "".join(parts)


def provenance_section(rs: ResultSet) -> str:
    """Where the numbers come from, and the spec as run."""
    rows = [[Td(what, "label"), Td(value, "text")] for what, value in details(rs)]
    spec = yaml.safe_dump(rs.spec, sort_keys=False)
    return ('<h2 id="provenance">Provenance</h2>\n' +
            table(["what", "value"], rows, "read from the records, journal.jsonl and spec.yaml of "
                  "the results folder", sortable=False) +
            "<details open><summary>The spec as run (spec.yaml)</summary>"
            f"<pre>{esc(spec)}</pre></details>\n")


def report_page(rs: ResultSet, metrics: Sequence[str], plot: bool = True) -> str:
    """The page: a contents line, every metric's section, the provenance."""
    contents = " · ".join(f'<a href="#{esc(m)}">{esc(m)}</a>' for m in metrics)
    description = str(rs.spec.get("description") or "")
    intro = (f"<p>{esc(description)}</p>\n" if description else "") + \
        f'<p class="muted">Metrics: {contents} · <a href="#provenance">provenance</a></p>\n'
    body = intro + "".join(metric_section(rs, m, plot) for m in metrics) + \
        provenance_section(rs)
    headline = f"headline metric {rs.metric}; " if rs.metric in metrics else ""
    return page(f"{rs.name}: report", body, f"task {rs.task}; {headline}results "
                f"{rs.results_dir}")
