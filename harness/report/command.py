"""The ``report``, ``check``, ``records`` and ``leaderboard`` subcommands (the report's
command-line face: argparse namespaces in, text out; the command line calls them)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from harness.cells.folder import read_all_records
from harness.report.check import failed, load_reported, run_checks
from harness.report.formats import render, render_board
from harness.report.load import ReportError, ResultSet, load_results, metrics_with_results
from harness.report.plot import plot_metric


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
        return metrics_with_results(rs)
    return [rs.check_metric(metric)]


PLOT_SUFFIXES = (".png", ".pdf", ".svg")


def _output_path(value: str, what: str, suffixes: tuple[str, ...] = ()) -> Path:
    """A file path the user gave for output, checked before any work is done."""
    out = Path(value)
    if out.is_dir():
        raise ReportError(f"{what} {out}: is a directory; give a file name")
    if suffixes and out.suffix.lower() not in suffixes:
        raise ReportError(f"{what} {out}: unknown image type {out.suffix or '(none)'!r}; "
                          f"use one of {', '.join(suffixes)}")
    return out


def _write(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ReportError(f"{path}: cannot write ({exc.strerror or exc})") from None


@_one_line_errors
def report_command(args: argparse.Namespace) -> int:
    """Print (or write) the comparison table and optionally the plot."""
    out = _output_path(args.output, "--output") if args.output else None
    plot = _output_path(args.plot, "--plot", PLOT_SUFFIXES) if args.plot else None
    rs = load_results(args.source, getattr(args, "data_dir", None))
    metrics = chosen_metrics(rs, args.metric)
    text = render(rs, metrics, args.format)
    if out is not None:
        _write(out, text)
        print(f"wrote {out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    if plot is not None:
        metric = metrics[0] if len(metrics) == 1 else rs.metric
        try:
            print(f"wrote {plot_metric(rs, metric, plot)}", file=sys.stderr)
        except OSError as exc:
            raise ReportError(f"{plot}: cannot write ({exc.strerror or exc})") from None
    return 0


@_one_line_errors
def check_command(args: argparse.Namespace) -> int:
    """Check results against a reported file and/or an earlier run; exit 1 if a required
    rule fails, a row not run fails with --require-all, nothing could be checked, or a
    number regressed."""
    import json

    from harness.report import check as chk
    from harness.report import junit, regress

    against = getattr(args, "against", None)
    old = getattr(args, "against_results", None)
    fmt = getattr(args, "format", "text") or "text"
    output = getattr(args, "output", None)
    out = _output_path(output, "--output") if output else None
    if not against and not old:
        raise ReportError("nothing to check against: give --against reported/FILE.yaml "
                          "and/or --against-results OLD_RESULTS")
    reported = load_reported(against) if against else None
    rs = load_results(args.source, getattr(args, "data_dir", None))
    text: list[str] = []
    suites: list[junit.Suite] = []
    payload: dict = {"source": str(args.source), "results": str(rs.results_dir)}
    status = 0
    if reported is not None:
        rows = run_checks(rs, reported, require_all=getattr(args, "require_all", False))
        title = f"{rs.name} vs {against} ({reported.source})"
        none = chk.checked(rows) == 0
        status |= int(failed(rows) or none)
        text.append(chk.text_table(rows, title))
        if none:
            text.append("error: nothing was checked: every row is not run\n")
        suites.append(junit.Suite(f"check {rs.name} vs {Path(against).name}",
                                  junit.check_cases(rows, Path(against).stem)))
        payload["check"] = {"against": str(against), "source_of_numbers": reported.source,
                            "summary": chk.summarize(rows), "failed": bool(status),
                            "nothing_checked": none, "rows": chk.rows_json(rows)}
    if old:
        old_rs = load_results(old, getattr(args, "data_dir", None), note=False)
        from harness.report.identity import code_difference

        differs = code_difference(rs.records, old_rs.records)
        if differs:
            print(differs, file=sys.stderr)
        comparison = regress.compare_runs(rs, old_rs)
        none = not comparison.rows
        status |= int(comparison.failed or none)
        text.append(regress.text_table(comparison, f"{rs.results_dir} against the earlier "
                                       f"run {old_rs.results_dir}"))
        if none:
            text.append("error: nothing was compared: the two runs share no cells\n")
        suites.append(junit.Suite(f"regression {rs.name} vs {old}",
                                  regress.junit_cases(comparison, rs.name)))
        payload["regression"] = {"against_results": str(old), "nothing_compared": none,
                                 **regress.rows_json(comparison)}
    payload["exit_status"] = status
    if fmt == "json":
        body = json.dumps(payload, indent=2, default=float) + "\n"
    elif fmt == "junit":
        body = junit.to_junit(suites)
    else:
        body = "\n".join(text)
    if out is not None:
        _write(out, body)
        print(f"wrote {out}", file=sys.stderr)
        if fmt != "text":  # the summary lines on the terminal as well
            for part in text:
                sys.stderr.write(part.splitlines()[-1] + "\n")
    else:
        sys.stdout.write(body)
    return status


@_one_line_errors
def records_command(args: argparse.Namespace) -> int:
    """Every record in the results folder, marked in or out of the grid, with its data."""
    from harness.report.escape import md_text
    from harness.report.table import data_text

    source = Path(args.source)
    try:
        rs = load_results(source, args.data_dir, note=False)
        results_dir, grid = rs.results_dir, {r["cell_id"] for r in rs.records}
    except ReportError as exc:
        if not source.is_dir() or not (source / "cells").is_dir():
            raise  # not a results folder: nothing to list (exit 1)
        print(f"note: {exc}", file=sys.stderr)
        results_dir, grid = source, set()
    print("| cell id | in grid | label | size | seed | status | finished | data |")
    print("|---|:---:|---|---:|---:|---|---|---|")
    for path, record, problem in read_all_records(results_dir):
        if record is None:
            print(f"| {md_text(path.stem)} | no | | | | {md_text(str(problem))} | | |")
            continue
        data = ", ".join(data_text(e) for e in (record.get("data") or {}).values()) or "-"
        print(f"| {record['cell_id']} | {'yes' if record['cell_id'] in grid else 'no'} | "
              f"{md_text(str(record['label']))} | {record['size']} | {record['seed']} | "
              f"{record['status']} | {record.get('finished') or ''} | {data} |")
    return 0


@_one_line_errors
def leaderboard_command(args: argparse.Namespace) -> int:
    """One board over several result sets; with --reports, the whole results page."""
    from harness.report.leaderboard import build_board

    out = _output_path(args.output, "--output") if args.output else None
    if not 0 < args.confidence < 1:
        raise ReportError(f"--confidence {args.confidence}: give a number between 0 and 1")
    if args.reports and args.format != "md":
        raise ReportError("--reports writes a Markdown page: use it with --format md")
    if args.append and not args.reports:
        raise ReportError("--append adds a section to the --reports page: give --reports")
    if args.append and not Path(args.append).is_file():
        raise ReportError(f"--append {args.append}: no such file")
    result_sets = [load_results(s, args.data_dir) for s in args.sources]
    _refuse_repeats(list(args.sources), result_sets)
    board = build_board(result_sets, args.reference, args.stat, args.confidence)
    if all(board.reference not in rs.labels for rs in result_sets):
        print(f"note: no method labelled '{board.reference}' in these results: no "
              "differences or data gains (choose one with --reference)", file=sys.stderr)
    if args.reports:
        from harness.report.pages import command_line, results_page

        command = command_line(list(args.sources), {
            "--reference": None if args.reference == "baseline" else args.reference,
            "--stat": None if args.stat == "median" else args.stat,
            "--confidence": None if args.confidence == 0.95 else args.confidence,
            "--format": "md", "--reports": True, "--machine": args.machine,
            "--append": args.append, "-o": args.output})
        text = results_page(board, result_sets, command, args.machine, args.append)
    else:
        text = render_board(board, args.format)
    if out is not None:
        _write(out, text)
        print(f"wrote {out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def _refuse_repeats(sources: list[str], result_sets: list[ResultSet]) -> None:
    """A results folder counts once on a board: refuse one given twice (by the same or
    another path, or as a spec and its folder)."""
    seen: dict[Path, str] = {}
    for source, rs in zip(sources, result_sets, strict=True):
        folder = rs.results_dir.resolve()
        if folder in seen:
            raise ReportError(f"{rs.results_dir} is given twice ({seen[folder]} and {source}): "
                              "each results folder counts once on a board")
        seen[folder] = source
