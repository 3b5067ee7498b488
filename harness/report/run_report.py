"""The report a run ends with, made by one call from the runner (``write_run_report``):
``report.html`` (every metric's figure and table, the provenance and the spec: opens
offline), ``report.md`` (every metric's table), ``report.csv`` (every metric, long
format), ``plots/<metric>.png|.svg|.pdf`` (every metric), ``plot.png`` (the headline
metric, where earlier versions put it) and, for the terminal, the headline table."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.atomic import atomic_write_bytes, atomic_write_text
from harness.report.formats import render
from harness.report.load import load_results, metrics_with_results
from harness.report.plot import write_plots
from harness.report.terminal import headline_table

PLOTS_DIR = "plots"


@dataclass(frozen=True)
class RunReport:
    """What ``write_run_report`` wrote, and the terminal's table (a rich Table)."""

    html: Path
    markdown: Path
    csv: Path
    plots: tuple[Path, ...]
    headline_plot: Path
    table: Any

    @property
    def files(self) -> list[Path]:
        return [self.html, self.markdown, self.csv, self.headline_plot, *self.plots]

    def lines(self) -> list[str]:
        """Where the reports are, one line each (the figures as one folder)."""
        folder = self.plots[0].parent if self.plots else None
        kinds = sorted({p.suffix.lstrip(".") for p in self.plots})
        figures = (f"report: {folder}/ (every metric as {', '.join(kinds)})"
                   if folder else None)
        return [f"report: {self.html} (every metric, provenance; opens offline)",
                f"report: {self.markdown}, {self.csv.name}",
                *([figures] if figures else [])]


def write_run_report(results_dir: str | Path) -> RunReport:
    """Write the run's report files into ``results_dir`` (see the module docstring)."""
    results_dir = Path(results_dir)
    rs = load_results(results_dir, note=False)
    metrics = metrics_with_results(rs)
    html = results_dir / "report.html"
    md = results_dir / "report.md"
    csv_path = results_dir / "report.csv"
    atomic_write_text(html, render(rs, metrics, "html"))
    atomic_write_text(md, render(rs, metrics, "md"))
    atomic_write_text(csv_path, render(rs, metrics, "csv"))
    plots = write_plots(rs, results_dir / PLOTS_DIR, list(dict.fromkeys([rs.metric,
                                                                          *metrics])))
    headline = results_dir / "plot.png"  # a copy, never written through a link
    atomic_write_bytes(headline, (results_dir / PLOTS_DIR / f"{rs.metric}.png").read_bytes())
    return RunReport(html, md, csv_path, tuple(plots), headline, headline_table(rs))
