"""Run a spec's grid: check the data, claim cells, execute (in-process or in worker
processes), record, track (``harness run`` itself, with its report, is
harness.runner.command).

Guarantees (tested with real processes and signals, see the README):

- Each record is written the moment its cell finishes, atomically, so an interrupted
  sweep (Ctrl-C, SIGKILL, a crash) loses at most the cells that were running; the next
  run skips every cell that has a final record and computes the rest.
- Each cell is computed once, also by concurrent runs of one spec: a run computes a cell
  only while it holds the cell's claim (harness.runner.claims); cells held by another
  live run are waited for and then read (counted as resumed). A result whose claim was
  taken over meanwhile (its run was silent too long) is discarded, not recorded.
- The first Ctrl-C (or SIGTERM) stops workers within seconds and keeps finished cells
  and the running cells' checkpoints; a second one exits at once. Workers exit on their
  own when the main process dies.

Checkpoints within a cell: each cell runs with ``$HARNESS_CHECKPOINT_DIR`` =
``<results>/checkpoints/<cell_id>`` (a task with ``checkpoint: true``, e.g. ptb_lstm,
saves there every epoch), so a rerun resumes an interrupted cell from its last completed
epoch. Not set when the variable is already set (the user's directory is used as is and
never cleaned) or when the cell's task params name a ``checkpoint_dir``. Once a cell's
final record is written its checkpoint directory is deleted; a cell that failed with an
error keeps its checkpoints, since the next run retries it.

Warm starts and tuning grids: cells may wait for units (a warm-up whose training state
they start from, the trials of a tuned lambda's grid; harness.cells.units).
Units are claimed, run, resumed and recorded as cells are (their records carry
``unit``; they are no rows of the reports), the units a selection needs are run with it
(``--only`` included), and a cell is started only once every unit it waits for is
recorded; a failed or skipped warm-up fails or skips its cells with its reason. A unit,
or a cell that starts from a warm-up, is a program of its own (never in a cell group);
cells that wait for units may share a group, which takes each only once its units are
recorded. A grid-tuned entry is tuned by its trials, an Optuna-tuned one by the batched
studies (harness.tuning).

Executors and stores are operational: ``--executor local`` (this machine: in-process, or
``--workers N`` processes, each with its own GPU when several are visible) or
``--executor ray [--address HOST:PORT]`` (harness.runner.ray_executor); ``--store URL``
(or the spec's ``store:``) puts claims, leases and results in a shared PostgreSQL
database (harness.runner.dbstore) so that many drivers and ``harness worker`` processes
on many machines share one grid. None of them is in the cell id: a cell computed on a
cluster is the same cell, with the same numbers, as one computed here.
"""

from __future__ import annotations

import functools
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.cells.code import CodeIdentity
from harness.cells.data import CellData
from harness.cells.grid import Cell, GridError, expand, normalize_only
from harness.cells.record import Provenance
from harness.cells.units import units_for, units_only_for
from harness.errors import HarnessError
from harness.runner.claims import Claim, ClaimStore, FileClaims
from harness.runner.execute import (
    CHECKPOINT_ENV,
    CellJob,
    LambdaChoice,
    fixed_lambda,
    one_line,
    run_job,
)
from harness.runner.fresh import clear_fresh
from harness.runner.group import GroupJob, Work, plan_units, prepare_for, run_group_job
from harness.runner.pool import Outcome, WorkerPool
from harness.runner.progress import SweepProgress
from harness.runner.resume import Resume, recorded
from harness.runner.stopping import raise_if_told, stop_on_signals
from harness.runner.store import ResultsStore, is_final

POLL_S = 0.5


@dataclass
class SweepSummary:
    """What a sweep did; ``records`` holds the record of every selected cell by id."""

    results_dir: Path
    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    units: dict[str, dict[str, Any]] = field(default_factory=dict)  # warm-ups and trials
    resumed: int = 0  # finished before, or by another run while this one waited
    lost: int = 0  # cells whose worker process died: no record, retried on the next run
    wall_s: float = 0.0
    read_only: str | None = None  # set when nothing was computed in a read-only folder

    @property
    def counts(self) -> Counter[str]:
        return Counter(r["status"] for r in self.records.values())

    @property
    def computed(self) -> int:
        return len(self.records) - self.resumed

    @property
    def exit_code(self) -> int:
        failed_units = any(r["status"] == "failed" for r in self.units.values())
        return 1 if self.counts["failed"] or self.lost or failed_units else 0

    def keep(self, record: dict[str, Any]) -> None:
        """File a record under ``units`` (a warm-up or trial) or ``records`` (a cell)."""
        (self.units if record.get("unit") else self.records)[record["cell_id"]] = record

    def has(self, cell_id: str) -> bool:
        return cell_id in self.records or cell_id in self.units

    def line(self) -> str:
        c = self.counts
        lost = f", {self.lost} lost (rerun to retry)" if self.lost else ""
        units = ""
        if self.units:
            bad = sum(r["status"] != "ok" for r in self.units.values())
            units = f"; {len(self.units)} warm-up/trial unit(s){f', {bad} not ok' if bad else ''}"
        return (f"{c['ok']} ok, {c['failed']} failed, {c['skipped']} skipped "
                f"({self.resumed} resumed{lost}){units} in {self.wall_s:.1f}s")


EXECUTORS = ("local", "ray")


def run_spec(
    spec: Any,
    *,
    only: Any = None,
    workers: int | None = 1,
    tracking_uri: str | None = None,
    data_dir: str | None = None,
    fresh: bool = False,
    progress_console: Any = None,
    threads: int | None = None,
    executor: str = "local",
    address: str | None = None,
    store: str | None = None,
    enqueue_only: bool = False,
    reuse_changed_code: bool = False,
    groups: bool = True,
) -> SweepSummary:
    """Run (or resume) ``spec``'s grid and return a summary; see the module docstring.
    Bad input (filters, data, a folder harness did not make) raises a one-line
    HarnessError or GridError before anything is computed or written.

    ``workers``: local worker processes (None: chosen from the grid and the cores, see
    ``auto_workers``), or for Ray the most cells in flight (None: as many as the cluster
    has room for). ``store``: a PostgreSQL URL (else the
    spec's ``store``, else the results folder's file claims). ``enqueue_only``: put the
    selected cells in the store's cells table for ``harness worker`` and return.
    ``fresh``: clear earlier results first (only the selected cells when ``only`` is
    given; harness.runner.fresh). ``reuse_changed_code``: resume records whose task or
    method code changed instead of recomputing them (harness.runner.resume).
    ``groups``: cells of a task that supplies "cell_groups" train together, and tuning
    trials in batches (False: each cell, each trial its own program; same numbers)."""
    if executor not in EXECUTORS:
        raise GridError(f"--executor {executor}: use one of {', '.join(EXECUTORS)}")
    if address and executor != "ray":
        raise GridError("--address is the address of a Ray cluster: use it with "
                        "--executor ray")
    store_url = store or getattr(spec, "store", None)
    if enqueue_only and not store_url:
        raise GridError("--enqueue puts cells in a shared store: give --store URL")
    if workers is not None and workers < 1:
        raise GridError(f"--workers {workers}: must be at least 1")
    if threads is not None and threads < 1:
        raise GridError(f"--threads {threads}: must be at least 1")
    from harness.spec.requirements import missing_requirements

    unmet = missing_requirements(spec)  # else every cell would fail on it
    if unmet:
        raise HarnessError(f"{unmet[0]}; nothing was run")
    clock = time.perf_counter()
    data = CellData.for_spec(spec, data_dir)
    cells = expand(spec, only, data)  # bad filters and missing data fail here
    grid = expand(spec, None, data)
    units = units_for(spec, cells, data)  # the warm-ups and trials the selection needs
    check_data(spec, cells, data)
    store: ResultsStore = ResultsStore.for_spec(spec)
    summary = SweepSummary(results_dir=store.root)
    resume = Resume(CodeIdentity(), reuse_changed_code)
    if not fresh and store.root.is_dir():
        for record in recorded(store, resume, units + cells).values():
            summary.keep(record)
        if len(summary.records) == len(cells) and store.writable() is not None:
            summary.read_only = store.writable()
            summary.resumed = len(cells)
            summary.wall_s = time.perf_counter() - clock
            return summary
    store.claim_folders()
    cleared: list[str] | None = None  # --fresh --only: the ids cleared (None: everything)
    if fresh:
        scoped = bool(normalize_only(only))
        # A scoped --fresh clears the units only the selection waits for; a warm-up or
        # trial an unselected cell also needs is kept (that cell started from it).
        alone = units_only_for(spec, cells, grid, data) if scoped else []
        kept = clear_fresh(store, cells + alone, grid, scoped=scoped)
        cleared = [c.cell_id for c in cells + alone] if scoped else None
        summary.records.clear()
        summary.units.clear()
        if kept:
            print(f"note: --fresh kept {len(kept)} file(s) harness did not make in "
                  f"{store.root}: {', '.join(kept[:5])}", file=sys.stderr)
    problem = store.writable()
    if problem:
        raise HarnessError(f"{problem}; nothing was run")
    store.prepare(spec, [c.cell_id for c in grid], _data_summary(grid),
                  {c.cell_id: resume.expect(c) for c in grid})
    shared = None
    if store_url:
        from harness.runner.dbstore import CellStore, DbClaims, SharedResults

        shared = CellStore(store_url)
        try:
            store = SharedResults(store.root, shared, spec.name)
            _enqueue(spec, shared, store, units + cells, grid, summary, data, tracking_uri,
                     fresh, resume, cleared)
        except BaseException:
            shared.close()
            raise
        ids = {c.cell_id for c in grid + units_for(spec, grid, data)}
        claims: ClaimStore = DbClaims(shared, spec.name, ids)
    else:
        claims = FileClaims(store.claims_dir)
    for line in resume.notes(store):
        print(line, file=sys.stderr)
    summary.resumed = len(summary.records)
    pending = [c for c in units + cells if not summary.has(c.cell_id)]
    parallel = executor == "ray" or (workers or 1) > 1
    if parallel:
        pending.sort(key=lambda c: -c.size)  # largest first: no worker idles at the end
    groupable = _groupable(spec) if groups else (lambda cell: None)
    from harness.registry import TASKS

    apart = bool(getattr(TASKS.get(spec.task.name), "sizes_apart", False))
    local_auto = executor == "local" and workers is None
    if local_auto:  # from the whole grid, so that a cell's threads never depend on --only
        workers = auto_workers(len(plan_units(grid + units_for(spec, grid, data), groupable,
                                              available_cores(), apart)))
    plan = plan_units(pending, groupable, workers or (available_cores()
                                                      if executor == "ray" else 1), apart)
    plan.sort(key=lambda unit: unit[0].unit is None)  # warm-ups and trials first (stable)
    if enqueue_only:
        claims.close()
        if shared is not None:
            shared.close()
        summary.wall_s = time.perf_counter() - clock
        return summary

    from harness.tracking import open_tracker

    try:
        untracked = any(not r.get("mlflow_run_id") for r in summary.records.values())
        tracker = (open_tracker(spec, store, tracking_uri, claims) if pending or untracked
                   else None)
        runner = (_executor(spec, executor, workers, address, cells, local_auto, len(plan))
                  if pending else InlineExecutor())
    except BaseException:
        claims.close()
        if shared is not None:
            shared.close()
        raise
    recorder = _Recorder(store, claims, tracker, summary,
                         background=isinstance(claims, FileClaims))
    jobs = _JobFactory(spec, store, claims, data, threads or spec.threads, workers or 1,
                       executor, resume.code, groups=groups)
    jobs.tuning_cells = [c for c in pending if c.tuned]
    executor_ = runner
    try:
        with stop_on_signals(executor_.kill), SweepProgress(
                len(cells) + len(units), summary.resumed + len(summary.units), spec.metric,
                progress_console) as bar:
            recorder.bar = executor_.bar = jobs.bar = bar
            recorder.track_untracked()
            _schedule(plan, store, claims, executor_, recorder, jobs, bar, resume)
            bar.describe("done")
    except BaseException:
        executor_.terminate()
        store.journal("interrupted", running=len(recorder.running))
        recorder.close(drain=False)
        raise
    finally:
        executor_.close()
        recorder.close()
        claims.close()
        if shared is not None:
            shared.close()
    summary.wall_s = time.perf_counter() - clock
    return summary


def _enqueue(spec: Any, shared: Any, store: Any, cells: list[Cell], grid: list[Cell],
             summary: SweepSummary, data: CellData, tracking_uri: str | None,
             fresh: bool, resume: Resume, cleared: list[str] | None) -> None:
    """Save the spec in the shared store and add its selected cells to the cells table
    (final records of the folder as done; done cells whose code changed pending again);
    then the store's records of cells the folder lacks are read (written into the folder
    too)."""
    from harness.runner.dbstore import spec_version
    from harness.tracking import tracking_uri as resolve_tracking

    if fresh:
        shared.clear(spec.name, cleared)
    else:
        stale = []
        for cell in cells:
            done = shared.final_record(spec.name, cell.cell_id)
            if done is not None and not summary.has(cell.cell_id) and \
                    not resume.usable(cell, done):
                stale.append(cell.cell_id)
        if stale:
            shared.clear(spec.name, stale)
    from harness.masking import masked_spec

    body = masked_spec(spec.model_dump(mode="json", by_alias=True))
    version = spec_version(body)
    uri = resolve_tracking(spec, tracking_uri) if spec.tracking.enabled else None
    shared.save_spec(spec.name, version, body,
                     {"cells": [c.cell_id for c in grid], "data": _data_summary(grid)},
                     str(store.root.resolve()),
                     str(Path(data.data_dir).resolve()) if data.data_dir else None, uri)
    ordered = sorted(cells, key=queue_order)
    shared.enqueue(spec.name, version, ordered, {**summary.records, **summary.units})
    for cell in cells:
        if not summary.has(cell.cell_id):
            record = resume.final(store, cell)
            if record is not None:
                summary.keep(record)


def queue_order(cell: Cell) -> tuple[bool, int]:
    """Units before cells (cells wait for them), then the largest size first (a sort
    is stable: units stay after the units they wait for)."""
    return cell.unit is None, -cell.size


def _executor(spec: Any, kind: str, workers: int | None, address: str | None,
              cells: list[Cell], auto: bool = False, units: int = 2) -> Executor:
    """The executor of ``kind`` (see the module docstring); ``auto``: ``workers`` was
    chosen by ``auto_workers``, and this process computes beside workers - 1 helpers
    (none when ``units``, the units of work left, are fewer than two)."""
    from harness.spec.models import resources_for

    if kind == "ray":
        from harness.runner.ray_executor import RayExecutor

        ray = RayExecutor(address, workers, resources=_job_resources)
        needs = [resources_for(spec, c.entry) for c in cells]
        if needs:
            ray.set_default_need(min(needs, key=lambda n: (n["gpus"], n["cpus"])))
        return ray  # type: ignore[return-value]
    workers = workers or 1
    if workers == 1:
        return InlineExecutor()
    from harness.runner.placement import assign_gpus, visible_gpus

    if auto and not visible_gpus():
        return HybridExecutor(workers - 1) if units > 1 else InlineExecutor()
    per = max([resources_for(spec, c.entry)["gpus"] for c in cells] or [0.0])
    envs, warning = assign_gpus(workers, visible_gpus(), per)
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    slot_env = [{"CUDA_VISIBLE_DEVICES": e} if e is not None else {} for e in envs]
    return PoolExecutor(WorkerPool(workers, run_work, threads=None, envs=slot_env))


def run_work(work: Work, progress: Any = None) -> Any:
    """A worker's job: one cell's record, or a group's records one by one."""
    if isinstance(work, GroupJob):
        return run_group_job(work, progress)
    return run_job(work, progress)


def auto_workers(units: int) -> int:
    """``--workers`` left out: one computing process per core, at most one per unit of
    work of the whole grid (a cell, or a group of cells trained as one program). This
    process computes too, and the others take work only once they have started
    (harness.runner.pool), so a grid that one process finishes first never waits for
    them. The count is the grid's and the machine's, never the load's: it sets the
    default threads per cell (cores / workers), which can change a cell's numbers."""
    return max(1, min(available_cores(), units))


def _groupable(spec: Any) -> Callable[[Cell], str | None]:
    """The key under which cells may share a group (None: the cell runs alone): cells of a
    task that supplies "cell_groups", with the same task params (harness.runner.group)."""
    from harness.capabilities import groups_cells
    from harness.registry import TASKS

    if not groups_cells(TASKS.get(spec.task.name)):
        return lambda cell: None
    import json

    def key(cell: Cell) -> str | None:
        if cell.unit is not None or cell.config.get("warm_start"):
            return None  # warm-ups, trials and forks: each its own program
        return json.dumps(cell.config["task"], sort_keys=True)

    return key


def _job_resources(job: CellJob) -> dict[str, float]:
    return dict(job.resources or {"cpus": 1.0, "gpus": 0.0})


def check_data(spec: Any, cells: Iterable[Cell], data: CellData) -> None:
    """The task's checks of its data files, before any compute (once per distinct task
    params among ``cells``)."""
    from harness.spec.models import task_params_for

    seen: set[int] = set()
    for cell in cells:
        if cell.index not in seen:
            seen.add(cell.index)
            data.check(task_params_for(spec, cell.entry), list(spec.sizes))


def _data_summary(cells: Iterable[Cell]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for cell in cells:
        out.update(cell.data)
    return out


# ---- scheduling -------------------------------------------------------------------------
def _schedule(units: list[list[Cell]], store: ResultsStore, claims: ClaimStore,
              executor: Executor, recorder: _Recorder, jobs: _JobFactory,
              bar: SweepProgress, resume: Resume) -> None:
    """Claim and run units of cells (a cell, or a group trained as one program) until none
    is left; wait for cells other runs hold (and read their records when ``resume``
    accepts them). A group runs the cells of its unit whose claims this run got; the
    others stay queued."""
    queue = [list(unit) for unit in units]
    announced = False
    while queue or executor.running:
        raise_if_told()  # a stop the garbage collector swallowed
        started = blocked = False
        for unit in list(queue):
            if executor.free_for(len(queue)) <= 0:
                break
            claimed = _claim(unit, store, claims, recorder, resume)
            if not unit:
                queue.remove(unit)
            if not claimed:
                blocked = blocked or any(recorder.ready(c) for c in unit)
                continue  # another live run holds them, or they wait for units: wait
            made = [jobs.make(cell, recorder.settled)  # tuning, code identity first
                    for cell, _ in claimed]
            for cell, claim in claimed:
                store.journal("started", cell.cell_id, label=cell.label, size=cell.size,
                              seed=cell.seed, **({"unit": cell.unit} if cell.unit else {}))
                recorder.running[cell.cell_id] = claim
            executor.submit(made[0] if len(made) == 1 else GroupJob(tuple(made)))
            started = True
        outcomes = executor.wait(POLL_S if queue else None)
        for outcome in outcomes:
            recorder.outcome(outcome)
        bar.running(executor.fractions())
        if queue and blocked and not started and executor.running == 0:
            if not announced:
                held = [c for u in queue for c in u if recorder.ready(c)]  # not waiting
                holders = sorted({h for c in held if (h := claims.holder(c.cell_id))})
                bar.message(f"waiting for {len(held)} cell(s) held by other runs "
                            f"({', '.join(holders) or 'finishing'}); they will be read, "
                            "not recomputed")
                announced = True
            time.sleep(POLL_S)


def _claim(unit: list[Cell], store: ResultsStore, claims: ClaimStore,
           recorder: _Recorder, resume: Resume) -> list[tuple[Cell, Claim]]:
    """Claim what ``unit`` still needs: cells finished meanwhile (with a record ``resume``
    accepts, or a failure another process recorded in a shared store) are read and leave
    the unit, cells claimed here leave it with their claim, cells another run holds stay,
    and so do cells whose warm-ups or tuning trials are not recorded yet."""
    claimed = []
    for cell in list(unit):
        if not recorder.ready(cell):
            continue  # a unit it waits for is not recorded yet
        done = resume.settled(store, cell)
        claim = None if done is not None else claims.acquire(cell.cell_id)
        if done is None and claim is not None:
            done = resume.final(store, cell)  # finished just before the claim
            if done is not None:
                claims.release(claim)
        if done is not None:
            unit.remove(cell)
            recorder.resumed(done)
        elif claim is not None:
            unit.remove(cell)
            claimed.append((cell, claim))
    return claimed


def settled_record(store: ResultsStore, cell_id: str) -> dict[str, Any] | None:
    """A record that ends the cell for this run: a final one, or (a shared store) any
    record another process wrote since this run queued the cell, a failure included
    (the store does not hand that cell out again before the next ``harness run``)."""
    settled = getattr(store, "settled_record", None)
    return settled(cell_id) if settled is not None else store.final_record(cell_id)


class Executor:
    """Where jobs run: ``free`` slots, ``submit``, ``wait`` for outcomes, stop."""

    bar: SweepProgress | None = None

    @property
    def free(self) -> int:
        raise NotImplementedError

    @property
    def running(self) -> int:
        raise NotImplementedError

    def free_for(self, left: int) -> int:
        """Free slots for the next of ``left`` queued units of work."""
        return self.free

    def submit(self, job: CellJob) -> None:
        raise NotImplementedError

    def wait(self, timeout: float | None) -> list[Outcome]:
        raise NotImplementedError

    def fractions(self) -> list[float]:
        return []

    def terminate(self) -> None:
        """Stop running jobs now (an interrupt)."""

    def kill(self) -> None:
        """Kill child processes at once (a second interrupt)."""

    def close(self) -> None:
        """Release resources at the end."""


class InlineExecutor(Executor):
    """Runs work in this process (``--workers 1``), with its progress on the bar: a
    group's cells one by one, each ``wait`` computing until the next cell is done."""

    def __init__(self) -> None:
        self._stream: Iterator[Outcome] | None = None
        self._left = 0  # cells of the running work without an outcome yet

    @property
    def free(self) -> int:
        return 0 if self._stream is not None else 1

    @property
    def running(self) -> int:
        return 0 if self._stream is None else 1

    def submit(self, job: Work) -> None:
        if self.bar is not None:
            self.bar.describe(work_label(job))
        progress = self.bar.fraction if self.bar is not None else None
        self._stream = _outcomes(job, progress)
        self._left = len(getattr(job, "jobs", (job,)))

    def wait(self, timeout: float | None) -> list[Outcome]:
        if self._stream is None:
            return []
        outcome = next(self._stream, None)
        self._left -= outcome is not None
        if outcome is None or self._left <= 0:  # free as soon as its last cell is out
            self._stream = None
        return [] if outcome is None else [outcome]


def _outcomes(work: Work, progress: Any) -> Iterator[Outcome]:
    """The outcome of each cell of ``work``, computed here, as each is done."""
    if isinstance(work, GroupJob):
        jobs = {job.cell_id: job for job in work.jobs}
        for record in run_group_job(work, progress):
            yield Outcome(jobs[record["cell_id"]], record)
    else:
        yield Outcome(work, run_job(work, progress))


class PoolExecutor(Executor):
    """Runs jobs in worker processes (harness.runner.pool)."""

    def __init__(self, pool: WorkerPool) -> None:
        self.pool = pool

    @property
    def free(self) -> int:
        return self.pool.free

    @property
    def running(self) -> int:
        return self.pool.running

    def submit(self, job: Work) -> None:
        if self.bar is not None:
            self.bar.describe(f"cells ({self.pool.workers} workers)")
        self.pool.submit(job)

    def wait(self, timeout: float | None) -> list[Outcome]:
        return self.pool.wait(timeout)

    def fractions(self) -> list[float]:
        return self.pool.fractions()

    def terminate(self) -> None:
        self.pool.terminate()

    def kill(self) -> None:
        self.pool.kill()

    def close(self) -> None:
        self.pool.close()


class HybridExecutor(PoolExecutor):
    """This process computes (as ``InlineExecutor``) while ``helpers`` worker processes
    start; a helper begins work only once it is ready, so start-up is paid only by grids
    with work left for it (``--workers`` left out; harness.runner.pool)."""

    def __init__(self, helpers: int) -> None:
        super().__init__(WorkerPool(helpers, run_work, threads=None))
        self.inline = InlineExecutor()
        self._started = False
        self._seen_ready = 0

    @property
    def free(self) -> int:
        return self.inline.free + self.pool.ready

    def free_for(self, left: int) -> int:
        """This process takes the first unit; a helper, ready or still starting (the unit
        waits in its pipe), takes the others: a unit left when this process already has
        one, or any but the last while this process is free. The last one waits for this
        process only when it has nothing else to do (a helper's first unit costs it its
        imports and the task's set-up, about a second). Waiting for a helper to be ready
        is no choice: this process computes its own unit without returning to the
        scheduler, so a helper that became ready meanwhile would idle until it is done.
        For the same reason a helper that has begun its unit is handed its next one in
        advance while this process computes. A unit a helper has not begun when this
        process is free comes back (``wait``)."""
        if self.inline.free:
            return self.inline.free + (self.pool.free if left > 1 else 0)
        return self.pool.free + self.pool.queueable

    @property
    def running(self) -> int:
        return self.inline.running + self.pool.running

    def submit(self, job: Work) -> None:
        if not self._started:  # helpers start with the first work, and prepare for it
            self._started = True
            self.pool.start(functools.partial(prepare_for, job))
        if self.inline.free:  # this process first: it has no start-up left to pay
            self.inline.bar = self.bar
            self.inline.submit(job)
        else:
            self.pool.submit(job, queue=True)
            self.used = True

    used = False  # whether a helper took work (else close() just stops them)

    def close(self) -> None:
        if not self.used:
            self.pool.terminate()
        self.pool.close()

    def wait(self, timeout: float | None) -> list[Outcome]:
        """Helpers' outcomes, else the next cell computed here; a helper that became
        ready returns at once, so that the scheduler can hand it work. This process,
        free, takes back a unit a helper has not begun (one still starting, or busy with
        the unit before) and computes it: on a small grid it is done before the helper
        could begin, and at the end of a large one no unit waits behind another."""
        if not self.inline.running:
            job = self.pool.withdraw()
            if job is not None:
                self.inline.bar = self.bar
                self.inline.submit(job)
        outcomes = self.pool.wait(0 if self.inline.running else timeout)
        ready, seen = self.pool.ready, self._seen_ready
        self._seen_ready = ready
        if outcomes or ready > seen:
            return outcomes
        return self.inline.wait(timeout)


def work_label(work: Work) -> str:
    return work.describe() if isinstance(work, GroupJob) else job_label(work)


def job_label(job: CellJob) -> str:
    c = job.config
    return f"{c['method']['label']} size={c['size']} seed={c['seed']}"


# ---- recording --------------------------------------------------------------------------
class _Recorder:
    """Writes each finished cell's record while its claim is held, logs it to MLflow,
    then releases the claim."""

    def __init__(self, store: ResultsStore, claims: ClaimStore, tracker: Any,
                 summary: SweepSummary, background: bool = False) -> None:
        self.store, self.claims, self.tracker, self.summary = store, claims, tracker, summary
        self.bar: SweepProgress | None = None
        self.running: dict[str, Claim] = {}
        # Records of this run's grid that units' dependants may read (any status).
        self.settled: dict[str, dict[str, Any]] = {**summary.records, **summary.units}
        # MLflow logging in a thread (harness.runner.later), the claim released after it
        self.later = None
        if background and tracker is not None:
            from harness.runner.later import LaterTracking

            self.later = LaterTracking(self._track_and_release)

    def ready(self, cell: Cell) -> bool:
        """Whether every unit ``cell`` waits for is settled in this run: resumed (its code
        checked), recorded here, or read once another run recorded it (every unit a
        selected cell waits for is in this run's queue, so the queue's own resume check
        fills ``settled``; a unit record whose code changed is never started from)."""
        return all(unit in self.settled for unit in cell.after)

    def _say(self, text: str) -> None:
        if self.bar is not None:
            self.bar.message(text)

    def resumed(self, record: dict[str, Any]) -> None:
        """A cell another run finished while this one was running or waiting."""
        self.summary.keep(record)
        self.settled[record["cell_id"]] = record
        self.summary.resumed += not record.get("unit")
        if self.bar is not None:
            self.bar.finish(record, note="(by another run)")

    def outcome(self, outcome: Outcome) -> None:
        job = outcome.job
        claim = self.running.pop(job.cell_id)
        if outcome.record is None:
            self.summary.lost += 1
            self.store.journal("lost", job.cell_id, reason=outcome.lost)
            self._say(f"lost {job_label(job)}: {outcome.lost}; rerun to retry")
            self.claims.release(claim)
            return
        record = outcome.record
        if not accept(self.claims, claim, record):
            holder = self.claims.holder(job.cell_id) or "another run"
            self.store.journal("discarded", job.cell_id, reason=f"claim taken by {holder}")
            self._say(f"discarded {job_label(job)}: this run was silent too long and "
                      f"{holder} took the cell over; its result counts")
            return
        self.store.write_record(record)
        self.store.journal("recorded", job.cell_id, status=record["status"])
        if is_final(record):
            self.store.remove_checkpoints(job.cell_id)
        self.summary.keep(record)
        self.settled[job.cell_id] = record
        if record.get("unit"):  # warm-ups and trials are in the records, not MLflow
            self.claims.release(claim)
        elif self.later is not None and self.tracker is not None:
            self.later.put(record, claim)
        else:
            self._track_and_release(record, claim)
        if self.bar is not None:
            self.bar.finish(record)

    def _track_and_release(self, record: dict[str, Any], claim: Claim) -> None:
        try:
            self._track(record)
        finally:
            self.claims.release(claim)

    def track_untracked(self) -> None:
        """Log resumed records that have no MLflow run yet (not recomputed), each under
        its claim so that concurrent runs do not log it twice."""
        if self.tracker is None:
            return
        for cell_id, record in list(self.summary.records.items()):
            if record.get("mlflow_run_id"):
                continue
            claim = self.claims.acquire(tracking_key(self.claims, cell_id))
            if claim is None:
                continue  # another run holds it and will log it
            try:
                fresh = self.store.read_record(cell_id) or record
                if not fresh.get("mlflow_run_id"):
                    self._track(fresh)
                self.summary.records[cell_id] = fresh
            finally:
                self.claims.release(claim)

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

    def close(self, drain: bool = True) -> None:
        """Finish the MLflow logging (``drain``; an interrupt leaves the rest to the next
        run) and close the tracker."""
        if self.later is not None:
            self.later.stop(drain)
            self.later = None
        if self.tracker is not None:
            try:
                self.tracker.close(failed=self.summary.exit_code != 0)
            except Exception:  # noqa: BLE001 - the results are safe
                pass


def accept(claims: ClaimStore, claim: Claim, record: dict[str, Any]) -> bool:
    """Whether ``record`` may be recorded: the claim store's compare-and-set where it has
    one (the database: current owner and attempt), else whether the claim is still held
    (file claims: the token in the lock file)."""
    check = getattr(claims, "accept", None)
    if check is not None:
        return bool(check(claim, record, is_final(record)))
    return claims.holds(claim)


def tracking_key(claims: ClaimStore, cell_id: str) -> str:
    """The claim under which a recorded cell is logged to MLflow: the cell's own file
    claim, or in the database (where a done cell cannot be claimed) a lock of its own."""
    return cell_id if isinstance(claims, FileClaims) else f"track-{cell_id}"


# ---- jobs -------------------------------------------------------------------------------
class _JobFactory:
    """The job of a claimed cell; a tuned method's lambda is tuned (once per label and
    size, under a claim of its own) right before its first cell."""

    def __init__(self, spec: Any, store: ResultsStore, claims: ClaimStore, data: CellData,
                 threads: int | None, workers: int, executor: str = "local",
                 code: CodeIdentity | None = None, groups: bool = True) -> None:
        self.spec, self.store, self.claims, self.data = spec, store, claims, data
        self.threads, self.workers, self.executor = threads, workers, executor
        self.groups = groups
        # The sweep's tuned cells: their studies are tuned together, trials batched.
        self.tuning_cells: list[Cell] = []
        self.provenance = Provenance.collect()
        self.code = code or CodeIdentity()
        self.user_checkpoints = os.environ.get(CHECKPOINT_ENV) or None
        self.tuned: dict[tuple[str, int], LambdaChoice] = {}
        self.bar: SweepProgress | None = None

    def make(self, cell: Cell, settled: Mapping[str, dict[str, Any]] | None = None
             ) -> CellJob:
        """The job of ``cell``; ``settled``: records of the units it waits for (else read
        from the store)."""
        from harness.cells.units import TRIAL
        from harness.runner.dependencies import blocked_by, warm_plan
        from harness.spec.models import resources_for

        known = {unit: (settled or {}).get(unit) or self._record(unit) for unit in cell.after}
        blocked = blocked_by(cell, known)
        if blocked:
            choice, warm = LambdaChoice(None, "none"), None
        else:
            if cell.tuned:
                choice = self._tuned(cell, known)
            elif cell.unit == TRIAL:
                choice = fixed_lambda(cell.config["method"]["lambda"], cell.size)
            else:
                choice = fixed_lambda(cell.entry.lambda_, cell.size)
            warm = warm_plan(cell, known, self.store.warmup_dir)
        resources = resources_for(self.spec, cell.entry)
        return CellJob(self.spec.name, cell.cell_id, dict(cell.config), choice,
                       self.data.data_dir, self.provenance, dict(cell.data),
                       self._threads(cell, resources), tuple(self.spec.plugins),
                       self._checkpoints(cell), resources, cell.unit, warm, blocked,
                       "validation" if cell.unit == TRIAL else "test",
                       self.code.of_cell(cell.config))

    def _record(self, cell_id: str) -> dict[str, Any]:
        """The record of a unit a cell waits for, from the store (a worker's path)."""
        record = settled_record(self.store, cell_id) or self.store.read_record(cell_id)
        if record is None:
            raise HarnessError(f"unit {cell_id} has no record yet; its cells cannot start")
        return record

    def _checkpoints(self, cell: Cell) -> str | None:
        """The user's $HARNESS_CHECKPOINT_DIR as is (never cleaned); else None when the
        task params name a checkpoint_dir (the task uses it); else the results folder's
        ``checkpoints/<cell id>`` (deleted once the cell's final record is written)."""
        if self.user_checkpoints:
            return self.user_checkpoints
        if cell.config["task"]["params"].get("checkpoint_dir"):
            return None
        return str(self.store.checkpoint_dir(cell.cell_id).resolve())

    def _threads(self, cell: Cell, resources: dict[str, float]) -> int:
        """--threads, else the spec's threads, else the task's default, else the cores
        shared among the workers (on Ray: the cell's reserved cpus)."""
        if self.threads is not None:
            return self.threads
        from harness.registry import TASKS

        default = TASKS.config(self.spec.task.name).default_threads
        if default is not None:
            return default
        if self.executor == "ray":
            return max(1, int(resources["cpus"]))
        return max(1, available_cores() // self.workers)

    def _tuned(self, cell: Cell, known: Mapping[str, dict[str, Any]]) -> LambdaChoice:
        """``cell``'s tuned lambda: from its grid's trial records (``values``), else by
        Optuna: on the first call, every study of the sweep's tuned cells that no other
        run is tuning and that needs no warm-up is tuned together with ``cell``'s
        (harness.tuning, trials batched); a study another run holds is waited for. A
        warm-started entry's study is tuned on its own, its trials starting from its
        warm-up at the tuning seed (a unit ``cell`` waited for: in ``known``)."""
        from harness.runner.dependencies import tuning_warm_start
        from harness.tuning import study_name, tune_lambdas
        from harness.tuning_lanes import tune_in_lanes

        key = (cell.label, cell.size)
        if key in self.tuned:
            return self.tuned[key]
        if cell.entry.lambda_.values is not None:
            self.tuned[key] = self._grid_choice(cell, known)
            if self.bar is not None:
                self.bar.message(_tuning_line(study_name(*key), self.tuned[key],
                                              self.spec.metric))
            return self.tuned[key]
        warm, error = tuning_warm_start(self.spec, cell, known, self.store.warmup_dir)
        if error:
            self.tuned[key] = LambdaChoice(None, "tuned", error=f"tuning: {error}")
            return self.tuned[key]
        alongside = [] if cell.entry.warm_start is not None else [
            c for c in self.tuning_cells
            if c.entry.lambda_.values is None and c.entry.warm_start is None]
        describe = self.bar.describe if self.bar is not None else (lambda _text: None)
        claims: dict[tuple[str, int], tuple[Cell, Claim]] = {}
        for other in [cell, *alongside]:
            other_key = (other.label, other.size)
            if other_key in self.tuned or other_key in claims:
                continue
            name = study_name(other.label, other.size)
            claim = self.claims.acquire(f"tune-{name}")
            while claim is None and other is cell:  # another run is tuning it: wait
                describe(f"waiting for {name}'s tuning "
                         f"({self.claims.holder(f'tune-{name}')})")
                time.sleep(POLL_S)
                claim = self.claims.acquire(f"tune-{name}")
            if claim is not None:
                claims[other_key] = (other, claim)
        what = (study_name(*key) if len(claims) == 1
                else f"{len(claims)} studies")
        try:
            describe(f"tuning {what}")
            from harness.registry import TASKS

            threads = self.threads or TASKS.config(self.spec.task.name).default_threads
            tuned = [c for c, _ in claims.values()]

            def counted(done: int, total: int) -> None:
                describe(f"tuning {what} ({done}/{total} trials)")

            lanes = self._tuning_lanes() if warm is None else 1
            if lanes > 1:
                choices = tune_in_lanes(self.spec, tuned, self.store.optuna_url,
                                        self.data.data_dir, lanes=lanes, threads=threads,
                                        on_trial=counted)
            else:
                choices = tune_lambdas(self.spec, tuned, self.store.optuna_url,
                                       self.data.data_dir, threads=threads,
                                       batched=self.groups, on_trial=counted,
                                       warm_starts={key: warm})
        finally:
            for _, claim in claims.values():
                self.claims.release(claim)
        for tuned_key, choice in choices.items():
            self.tuned[tuned_key] = choice
            if self.bar is not None:
                self.bar.message(_tuning_line(study_name(*tuned_key), choice,
                                              self.spec.metric))
        return self.tuned[key]

    def _tuning_lanes(self) -> int:
        """Processes that tune studies of different sizes at once (harness.tuning_lanes):
        one per local worker, at most one per core; one with --no-groups (trials one at a
        time, as before groups) or on Ray (the driver's machine need not compute)."""
        if self.executor != "local" or not self.groups:
            return 1
        return max(1, min(self.workers, available_cores()))

    def _grid_choice(self, cell: Cell, known: Mapping[str, dict[str, Any]]) -> LambdaChoice:
        """The grid value whose trial did best on validation (dependencies.choose)."""
        from harness.cells.units import TRIAL
        from harness.runner.dependencies import choose

        trials = [r for r in known.values() if r.get("unit") == TRIAL]
        higher = type(self.spec.task.params).higher_is_better.get(self.spec.metric, False)
        value, info, error = choose(cell, trials, self.spec.metric, higher,
                                    self.spec.tuning.objective)
        seconds = sum(r.get("timings", {}).get("train_s", 0.0) for r in trials)
        return LambdaChoice(value, "tuned", info, seconds, error)


def _tuning_line(name: str, choice: LambdaChoice, metric: str) -> str:
    if choice.error:
        return f"tuning failed: {choice.error}"
    info = choice.tuning or {}
    return (f"tuned {name}: lambda {choice.value:.4g} (best validation {metric} "
            f"{info.get('best_value', float('nan')):.4g} over {info.get('trials')} trials, "
            f"{choice.tune_s:.1f}s)")


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1
