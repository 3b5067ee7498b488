"""``harness run``: load the spec (with --set overrides), run its grid (harness.runner.sweep)
or only say what a run would do (``--dry-run``), then end with the result: a summary
line, which folder and why, the headline table, and where the reports are (written by
one call to harness.report.run_report, then attached to the MLflow parent run)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from harness.cells.grid import GridError
from harness.runner.execute import one_line
from harness.runner.sweep import SweepSummary, available_cores, run_spec


def run_command(args: argparse.Namespace) -> int:
    """Run (or with --dry-run, plan) the spec's grid; see the module docstring."""
    from harness.spec import load_spec

    spec = load_spec(args.spec, overrides=dict(args.overrides) or None)
    if getattr(args, "dry_run", False):
        try:
            return dry_run(spec, args)
        except GridError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    cores = available_cores()
    executor = getattr(args, "executor", "local")
    if executor == "local" and (args.workers or 1) > cores:
        print(f"warning: --workers {args.workers} is more than the {cores} core(s) available; "
              "cells will compete for them", file=sys.stderr)
    enqueue = getattr(args, "enqueue", False)
    try:
        summary = run_spec(spec, only=list(args.only), workers=args.workers,
                           tracking_uri=args.tracking_uri, data_dir=args.data_dir,
                           fresh=args.fresh, threads=args.threads, executor=executor,
                           address=getattr(args, "address", None),
                           store=getattr(args, "store", None), enqueue_only=enqueue,
                           reuse_changed_code=getattr(args, "reuse_changed_code", False),
                           groups=not getattr(args, "no_groups", False))
    except GridError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if enqueue:
        left = len(summary.records)
        print(f"{spec.name}: {left} cell(s) already recorded, the rest queued in the store "
              "for `harness worker`; `harness status` shows progress")
        return 0
    print(f"{spec.name}: {summary.line()}")
    for record in summary.records.values():
        if record["status"] == "failed":
            print(f"  failed: {record['label']} size={record['size']} seed={record['seed']}: "
                  f"{record['reason']}")
    from harness.spec.paths import where

    print(where(spec))
    if summary.read_only:
        print(f"note: {summary.read_only}: every cell was already recorded; nothing written")
    elif not args.no_report:
        if summary.records and all(r["status"] == "failed" for r in summary.records.values()):
            print("report: not written: every cell failed (the reasons are above)")
        else:
            end_with_report(spec, summary, args.tracking_uri)
    return summary.exit_code


def end_with_report(spec: Any, summary: SweepSummary, tracking: str | None = None) -> None:
    """The one call into the report, then its table and paths on stdout and its files on
    the MLflow parent run. A report that fails costs no result: one line says so."""
    from harness.report.run_report import write_run_report

    results_dir = summary.results_dir
    try:
        report = write_run_report(results_dir)
    except Exception as exc:  # noqa: BLE001 - the results are safe; only the report failed
        print(f"report: failed ({one_line(f'{type(exc).__name__}: {exc}')}); "
              f"try `harness report {results_dir}`")
        return
    from rich.console import Console

    console = Console(highlight=False)
    if not console.is_terminal:
        console = Console(highlight=False, width=200)  # a pipe: the table's own width
    console.print(report.table)
    for line in report.lines():
        print(line)
    from harness.tracking import log_run_report

    problem = log_run_report(spec, results_dir, report.files, tracking)
    if problem:
        print(f"warning: the report was not attached to the MLflow run ({problem})",
              file=sys.stderr)


def dry_run(spec: Any, args: argparse.Namespace) -> int:
    """What ``harness run`` would do, with nothing computed or written: the grid, the
    cells already recorded (resumed), and the time the rest would take, estimated from
    earlier records of the same task."""
    from rich.console import Console
    from rich.table import Table

    from harness.cells.data import CellData
    from harness.cells.grid import expand
    from harness.runner.estimate import earlier_records, estimate
    from harness.runner.store import ResultsStore
    from harness.runner.sweep import check_data
    from harness.spec.paths import output_root, where

    data = CellData.for_spec(spec, args.data_dir)
    cells = expand(spec, list(args.only), data)
    check_data(spec, cells, data)
    store = ResultsStore.for_spec(spec)
    fresh = args.fresh
    done = {} if fresh or not store.root.is_dir() else {
        c.cell_id: r for c in cells if (r := store.final_record(c.cell_id)) is not None}
    pending = [c for c in cells if c.cell_id not in done]
    labels = list(dict.fromkeys(c.label for c in cells))
    sizes = sorted({c.size for c in cells})
    seeds = sorted({c.seed for c in cells})
    print(f"{spec.name}: dry run: nothing is computed or written")
    print(where(spec))
    print(f"grid: {len(labels)} method(s) x {len(sizes)} size(s) x {len(seeds)} seed(s) = "
          f"{len(cells)} cells of {spec.runs} run(s) each"
          f"{' (--only applied)' if args.only else ''}")
    print("cells already recorded (resumed) / in the grid, by method and size:")
    table = Table(header_style="bold")
    table.add_column("method")
    for size in sizes:
        table.add_column(f"N={size}", justify="right")
    for label in labels:
        row = []
        for size in sizes:
            here = [c for c in cells if c.label == label and c.size == size]
            row.append(f"{sum(c.cell_id in done for c in here)}/{len(here)}")
        table.add_row(label, *row)
    console = Console(highlight=False)
    if not console.is_terminal:
        console = Console(highlight=False, width=200)
    console.print(table)
    what = " (--fresh: earlier results would be discarded)" if fresh else ""
    print(f"resumed: {len(done)} cell(s) already recorded{what}; to compute: {len(pending)}")
    units_line = _units_line(spec, cells, data, store, fresh)
    if units_line:
        print(units_line)
    if not pending:
        return 0
    guess = estimate(pending, earlier_records(output_root(spec), spec.task.name))
    print(estimate_line(guess, len(pending), spec.task.name, args, output_root(spec)))
    if any(c.tuned and c.entry.lambda_.values is None for c in pending):
        print("note: methods with lambda: tune run their Optuna trials first; the "
              "estimate leaves them out")
    return 0


def _units_line(spec: Any, cells: list[Any], data: Any, store: Any, fresh: bool
                ) -> str | None:
    """One line on the warm-ups and tuning grid trials ``cells`` wait for (None: none)."""
    from collections import Counter

    from harness.cells.units import TRIAL, WARM_UP, units_for

    units = units_for(spec, cells, data)
    if not units:
        return None
    kinds = Counter(u.unit for u in units)
    recorded = 0 if fresh or not store.root.is_dir() else sum(
        store.final_record(u.cell_id) is not None for u in units)
    return (f"units the cells wait for: {kinds[WARM_UP]} warm-up(s), {kinds[TRIAL]} tuning "
            f"trial(s), {recorded} already recorded; they run first, and the estimate "
            "leaves them out")


def estimate_line(guess: Any, pending: int, task: str, args: argparse.Namespace,
                  root: Any) -> str:
    """One line: the estimated compute time, its basis, and the wall time with workers."""
    if guess.records == 0 or guess.unknown == pending:
        return (f"estimate: none (no earlier records of task {task} under {root}; "
                "run a small --only selection first to measure one)")
    counts: dict[str, int] = {}
    for basis in guess.bases.values():
        counts[basis] = counts.get(basis, 0) + 1
    basis = ", ".join(f"{n} by {b}" for b, n in counts.items())
    unknown = f"; {guess.unknown} cell(s) with nothing to go by" if guess.unknown else ""
    workers = args.workers or 1
    executor = getattr(args, "executor", "local")
    wall = "" if executor != "local" else \
        f"; about {_duration(guess.wall(workers))} with {workers} worker(s)"
    return (f"estimate: {_duration(guess.total)} of cell time for {pending} cell(s){wall} "
            f"(from {guess.records} earlier record(s) of task {task} under {root}: "
            f"{basis}{unknown}; their machine's times, not this one's)")


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"
