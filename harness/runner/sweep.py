"""Run a spec's grid: resume, tune, execute (in-process or in worker processes), record,
track, report.

Each record is written the moment its cell finishes, so an interrupted sweep (Ctrl-C,
SIGKILL, a crash) loses at most the cells that were running; the next run skips every
cell that has a record and computes the rest.

Checkpoints within a cell: each cell runs with ``$HARNESS_CHECKPOINT_DIR`` =
``<results>/checkpoints/<cell_id>`` (a task with ``checkpoint: true``, e.g. ptb_lstm,
saves there every epoch), so a rerun of an interrupted sweep resumes the cells that were
running from their last completed epoch. Not set when the variable is already set (the
user's directory is used as is and never cleaned) or when the cell's task params name a
``checkpoint_dir``. Once a cell's final record is written (ok, skipped or diverged) its
checkpoint directory is deleted: the record holds the results, resume never reads the
checkpoint again, and at paper scale each one is hundreds of MB (the LSTM's weights, its
best weights and serialized IMM's snapshot). A cell that failed with an error keeps its
checkpoints, since the next run retries it. ``--fresh`` deletes them with the rest.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.runner.execute import (
    CHECKPOINT_ENV,
    CellJob,
    LambdaChoice,
    data_dir_for,
    fixed_lambda,
    make_record,
    one_line,
    run_job,
    run_job_in_worker,
)
from harness.runner.grid import Cell, GridError, expand
from harness.runner.progress import SweepProgress
from harness.runner.record import Provenance, utc_now
from harness.runner.store import ResultsStore


@dataclass
class SweepSummary:
    """What a sweep did; ``records`` holds the record of every selected cell by id."""

    results_dir: Path
    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    resumed: int = 0
    lost: int = 0  # cells whose worker process died: no record, retried on the next run
    wall_s: float = 0.0

    @property
    def counts(self) -> Counter[str]:
        return Counter(r["status"] for r in self.records.values())

    @property
    def exit_code(self) -> int:
        return 1 if self.counts["failed"] or self.lost else 0

    def line(self) -> str:
        c = self.counts
        lost = f", {self.lost} lost (rerun to retry)" if self.lost else ""
        return (f"{c['ok']} ok, {c['failed']} failed, {c['skipped']} skipped "
                f"({self.resumed} resumed{lost}) in {self.wall_s:.1f}s")


def run_spec(
    spec: Any,
    *,
    only: Any = None,
    workers: int = 1,
    tracking_uri: str | None = None,
    data_dir: str | None = None,
    fresh: bool = False,
    progress_console: Any = None,
) -> SweepSummary:
    """Run (or resume) ``spec``'s grid and return a summary; see the module docstring."""
    if workers < 1:
        raise GridError(f"--workers {workers}: must be at least 1")
    clock = time.perf_counter()
    cells = expand(spec, only)  # bad filters fail before anything is touched
    store = ResultsStore.for_spec(spec)
    if fresh:
        store.clear()
    store.prepare(spec)
    stale = store.archive_stale(c.cell_id for c in expand(spec))
    summary = SweepSummary(results_dir=store.root)
    for cell in cells:
        record = store.read_record(cell.cell_id)
        if record is not None and not should_retry(record):
            summary.records[cell.cell_id] = record
    summary.resumed = len(summary.records)
    pending = [c for c in cells if c.cell_id not in summary.records]
    if workers > 1:
        # Largest datasets first (they take longest), so no worker idles at the end.
        pending.sort(key=lambda c: -c.size)

    from harness.tracking import open_tracker

    untracked = any(not r.get("mlflow_run_id") for r in summary.records.values())
    tracker = open_tracker(spec, store, tracking_uri) if pending or untracked else None
    recorder = _Recorder(store, tracker, summary)
    with SweepProgress(len(cells), summary.resumed, spec.metric, progress_console) as bar:
        recorder.bar = bar
        if stale:
            bar.message(f"moved {stale} record(s) of an earlier version of the spec to "
                        f"{store.cells_dir / 'stale'}")
        recorder.track_untracked()
        jobs = _jobs(spec, pending, store, data_dir_for(data_dir, spec), bar)
        if workers == 1:
            for job, cell in jobs:
                bar.describe(cell.describe())
                recorder.finish(run_job(job, bar.fraction))
        else:
            _run_pool(jobs, workers, recorder, bar)
        bar.describe("done")
    recorder.close()
    summary.wall_s = time.perf_counter() - clock
    return summary


def should_retry(record: dict[str, Any]) -> bool:
    """A cell that failed with an error (missing data, a bug since fixed) is run again on
    resume; one that diverged is a result and is kept, like ok and skipped cells."""
    reason = record.get("reason") or ""
    return record.get("status") == "failed" and not reason.startswith("diverged")


class _Recorder:
    """Writes each finished cell's record, logs it to MLflow and writes the run id back."""

    def __init__(self, store: ResultsStore, tracker: Any, summary: SweepSummary) -> None:
        self.store, self.tracker, self.summary = store, tracker, summary
        self.bar: SweepProgress | None = None

    def finish(self, record: dict[str, Any]) -> None:
        self.store.write_record(record)
        if not should_retry(record):
            self.store.remove_checkpoints(record["cell_id"])
        self.summary.records[record["cell_id"]] = record
        self._track(record)
        if self.bar is not None:
            self.bar.finish(record)

    def track_untracked(self) -> None:
        """Log resumed records that have no MLflow run yet (not recomputed)."""
        for record in self.summary.records.values():
            if not record.get("mlflow_run_id"):
                self._track(record)

    def _track(self, record: dict[str, Any]) -> None:
        if self.tracker is None:
            return
        try:
            record["mlflow_run_id"] = self.tracker.log_cell(record)
        except Exception as exc:  # noqa: BLE001 - tracking must never cost results
            print(f"warning: MLflow logging failed ({one_line(f'{type(exc).__name__}: {exc}')});"
                  " tracking is off for the rest of this run; records are logged on resume",
                  file=sys.stderr)
            self.tracker = None
            return
        self.store.write_record(record)

    def close(self) -> None:
        if self.tracker is not None:
            self.tracker.close(failed=self.summary.exit_code != 0)


def _jobs(spec: Any, pending: list[Cell], store: ResultsStore, data_dir: str | None,
          bar: SweepProgress) -> Iterator[tuple[CellJob, Cell]]:
    """The jobs of the pending cells in grid order; a tuned method's lambda is tuned (once
    per label and size) right before its first pending cell."""
    from harness.tuning import study_name, tune_lambda

    provenance = Provenance.collect()
    user_checkpoints = bool(os.environ.get(CHECKPOINT_ENV))
    tuned: dict[tuple[str, int], LambdaChoice] = {}
    for cell in pending:
        if cell.tuned:
            key = (cell.label, cell.size)
            if key not in tuned:
                name = study_name(cell.label, cell.size)
                bar.describe(f"tuning {name}")
                tuned[key] = choice = tune_lambda(
                    spec, cell, store.optuna_url, data_dir,
                    on_trial=lambda done, total, n=name: bar.describe(
                        f"tuning {n} ({done}/{total} trials)"),
                )
                bar.message(_tuning_line(name, choice, spec.metric))
            choice = tuned[key]
        else:
            choice = fixed_lambda(cell.entry.lambda_, cell.size)
        own = not user_checkpoints and not cell.config["task"]["params"].get("checkpoint_dir")
        checkpoints = str(store.checkpoint_dir(cell.cell_id).resolve()) if own else None
        yield CellJob(spec.name, cell.cell_id, dict(cell.config), choice, data_dir,
                      provenance, checkpoints), cell


def _tuning_line(name: str, choice: LambdaChoice, metric: str) -> str:
    if choice.error:
        return f"tuning failed: {choice.error}"
    info = choice.tuning or {}
    return (f"tuned {name}: lambda {choice.value:.4g} (best validation {metric} "
            f"{info.get('best_value', float('nan')):.4g} over {info.get('trials')} trials, "
            f"{choice.tune_s:.1f}s)")


def _run_pool(jobs: Iterator[tuple[CellJob, Cell]], workers: int, recorder: _Recorder,
              bar: SweepProgress) -> None:
    """Run jobs in "spawn" worker processes; the main process records results as they come
    (also between submissions, since tuning may keep it busy)."""
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))
    futures: dict[Future[dict[str, Any]], CellJob] = {}

    def collect(future: Future[dict[str, Any]]) -> None:
        job = futures.pop(future)
        try:
            recorder.finish(future.result())
        except BrokenProcessPool:
            recorder.summary.lost += 1
            bar.message(f"lost {job.cell_id}: a worker process died; rerun to retry")
        except Exception as exc:  # noqa: BLE001 - e.g. a result that cannot be unpickled
            recorder.finish(make_record(job, "failed", one_line(f"{type(exc).__name__}: {exc}"),
                                        traceback.format_exc(), {}, utc_now(), 0.0))

    try:
        bar.describe(f"cells ({workers} workers)")
        for job, _cell in jobs:
            futures[pool.submit(run_job_in_worker, job)] = job
            for future in [f for f in futures if f.done()]:
                collect(future)
        for future in as_completed(list(futures)):
            collect(future)
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()


def run_command(args: argparse.Namespace) -> int:
    """``harness run``: load the spec with --set overrides, run it, print a summary, report."""
    from harness.spec import load_spec

    spec = load_spec(args.spec, overrides=dict(args.overrides) or None)
    try:
        summary = run_spec(spec, only=list(args.only), workers=args.workers,
                           tracking_uri=args.tracking_uri, data_dir=args.data_dir,
                           fresh=args.fresh)
    except GridError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{spec.name}: {summary.line()}")
    for record in summary.records.values():
        if record["status"] == "failed":
            print(f"  failed: {record['label']} size={record['size']} seed={record['seed']}: "
                  f"{record['reason']}")
    print(f"results: {summary.results_dir}")
    if not args.no_report:
        _report(summary.results_dir, print)
    return summary.exit_code


def _report(results_dir: Path, say: Callable[[str], None]) -> None:
    from harness.report.command import write_default_report

    try:
        paths = write_default_report(results_dir)
    except Exception as exc:  # noqa: BLE001 - the results are safe; only the report failed
        say(f"report: failed ({one_line(f'{type(exc).__name__}: {exc}')}); "
            f"try `harness report {results_dir}`")
        return
    for path in paths:
        say(f"report: {path}")
