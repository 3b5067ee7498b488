"""The ``report`` and ``check`` subcommands, and the default report written after a sweep."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from harness.report.check import failed, load_reported, print_checks, run_checks
from harness.report.load import ReportError, ResultSet, load_results
from harness.report.plot import plot_metric
from harness.report.table import render


def _one_line_errors(command: Callable[[argparse.Namespace], int]) -> Callable[..., int]:
    """ReportError is a user mistake (no results, bad metric): print it, exit 1, no trace."""

    def wrapped(args: argparse.Namespace) -> int:
        try:
            return command(args)
        except ReportError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1

    wrapped.__doc__ = command.__doc__
    return wrapped


def chosen_metrics(rs: ResultSet, metric: str | None) -> list[str]:
    """``None`` = the spec's headline metric; ``"all"`` = every metric with results."""
    if metric is None:
        return [rs.metric]
    if metric == "all":
        return [m for m in rs.metrics if any(p.n for p in rs.pooled(m).values())] or [rs.metric]
    return [rs.check_metric(metric)]


@_one_line_errors
def report_command(args: argparse.Namespace) -> int:
    """Print (or write) the comparison table and optionally the plot."""
    rs = load_results(args.source)
    metrics = chosen_metrics(rs, args.metric)
    text = render(rs, metrics, args.format)
    if args.output:
        out = Path(args.output)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
        print(f"wrote {out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    if args.plot:
        metric = metrics[0] if len(metrics) == 1 else rs.metric
        print(f"wrote {plot_metric(rs, metric, args.plot)}", file=sys.stderr)
    return 0


@_one_line_errors
def check_command(args: argparse.Namespace) -> int:
    """Check results against a reported file; exit 1 if a required rule fails."""
    rs = load_results(args.source)
    reported = load_reported(args.against)
    rows = run_checks(rs, reported)
    print_checks(rows, title=f"{rs.name} vs {args.against} ({reported.source})")
    return 1 if failed(rows) else 0


def write_default_report(results_dir: Path) -> list[Path]:
    """After a sweep: report.md (all metrics), report.csv and plot.png (headline metric)."""
    results_dir = Path(results_dir)
    rs = load_results(results_dir)
    md = results_dir / "report.md"
    md.write_text(render(rs, chosen_metrics(rs, "all"), "md"), encoding="utf-8")
    csv_path = results_dir / "report.csv"
    csv_path.write_text(render(rs, [rs.metric], "csv"), encoding="utf-8")
    return [md, csv_path, plot_metric(rs, rs.metric, results_dir / "plot.png")]
