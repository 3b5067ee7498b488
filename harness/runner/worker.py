"""``harness worker --store URL``: drain the shared cells table, for clusters without Ray
(a SLURM array of N workers, say; see the README).

A worker claims up to ``--group`` runnable cells at a time (``SELECT ... FOR UPDATE SKIP
LOCKED``: pending, or running under an expired lease; a group is several cell claims held
together, each renewed and recorded on its own), trains those that can share a program
as one group (harness.runner.group) and the others one by one. It rebuilds each cell
from the spec saved in the store by the ``harness run`` that queued it (the same grid
expansion: a worker whose data files differ gets other cell ids and leaves the cell to
others), computes it in this process while its heartbeat renews the lease, and records it
only if it is still the cell's owner and attempt (a worker that was paused past its lease
has its late result refused). Records go to the store and, when this machine sees the
results folder (a shared file system), into it as well; MLflow logging is as in
``harness run``.

``--until-empty`` exits once no cell is pending or running (it waits while others run
cells, to take over any whose owner dies); without it the worker waits for more cells.
The first SIGINT/SIGTERM gives the running cells back (pending again) and exits.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.runner.pool import Outcome

POLL_S = 1.0
DEFAULT_GROUP = 8  # cells a worker claims at once (trained together where they can be)


@dataclass
class _Context:
    """One saved spec version, rebuilt once: its cells by id and how to make and record
    their jobs."""

    spec: Any
    cells: dict[str, Any]
    jobs: Any
    recorder: Any
    summary: Any
    problem: str | None = None
    groupable: Any = None  # cell -> group key or None (harness.runner.sweep._groupable)


class Worker:
    def __init__(self, store_url: str, *, spec: str | None = None, threads: int | None = None,
                 until_empty: bool = False, poll: float = POLL_S,
                 max_cells: int | None = None, say: Any = print, group: int = 1) -> None:
        from harness.runner.dbstore import CellStore

        self.cells = CellStore(store_url)
        self.spec_filter, self.threads = spec, threads
        self.until_empty, self.poll, self.max_cells = until_empty, poll, max_cells
        self.say = say
        self.group = max(1, group)
        self.contexts: dict[tuple[str, str], _Context] = {}
        self.skip: list[str] = []  # 'spec/cell_id' this worker cannot build
        self.recorded = self.refused = self.failed = 0

    def run(self) -> int:
        """Claim and compute cells until told to stop (or empty); how many it recorded."""
        done = 0
        while self.max_cells is None or done < self.max_cells:
            limit = self.group if self.max_cells is None else min(self.group,
                                                                  self.max_cells - done)
            got = self.cells.claim_cells(self.spec_filter, None, limit, exclude=self.skip)
            if not got:
                if self.until_empty and self.cells.left(self.spec_filter, self.skip) == 0:
                    break
                time.sleep(self.poll)
                continue
            self._compute_all(got)
            done += len(got)
        return self.recorded

    def _compute_all(self, got: list[Any]) -> None:
        """Compute claimed cells: those of one spec version that can share a program as a
        group, the others alone."""
        from harness.runner.group import group_key

        units: dict[tuple, list[tuple[Any, Any, Any]]] = {}
        for index, one in enumerate(got):
            ctx = self._context(one.spec, one.version)
            cell = ctx.cells.get(one.cell_id) if ctx.problem is None else None
            if cell is None:
                self._unbuildable(one, ctx)
                continue
            job = ctx.jobs.make(cell)
            groups = ctx.groupable(cell) is not None
            key = (one.spec, one.version, group_key(job)) if groups else (index,)
            units.setdefault(key, []).append((one, cell, job))
        for unit in units.values():
            self._compute(unit)

    def _unbuildable(self, got: Any, ctx: _Context) -> None:
        why = ctx.problem or "its cell id is not in this host's grid (other data files?)"
        key = f"{got.spec}/{got.cell_id}"
        self.cells.release(got.claim)
        self.cells.event(got.spec, got.cell_id, "unbuildable", int(got.claim.token),
                         reason=why)
        self.say(f"left {key} to other workers: {why}")
        self.skip.append(key)

    def _compute(self, unit: list[tuple[Any, Any, Any]]) -> None:
        """Compute one cell, or a group, and record each cell as it is done."""
        from harness.runner.execute import run_job
        from harness.runner.group import GroupJob, run_group_job

        for one, cell, _ in unit:
            self.say(f"computing {one.spec}: {cell.describe()} (attempt {one.claim.token})")
        jobs = {job.cell_id: (one, cell, job) for one, cell, job in unit}
        left = dict(jobs)
        try:
            if len(unit) == 1:
                records = iter([run_job(unit[0][2])])
            else:
                records = run_group_job(GroupJob(tuple(job for _, _, job in unit)))
            for record in records:
                self._record(*left.pop(record["cell_id"]), record)
        except BaseException:
            for one, _, _ in left.values():
                self.cells.release(one.claim)
            raise

    def _record(self, got: Any, cell: Any, job: Any, record: dict[str, Any]) -> None:
        ctx = self._context(got.spec, got.version)
        ctx.recorder.running[cell.cell_id] = got.claim
        ctx.recorder.outcome(Outcome(job, record))
        kept = ctx.summary.units if cell.unit else ctx.summary.records
        if kept.get(cell.cell_id) is record:
            self.recorded += 1
            self.failed += record["status"] == "failed"
            self.say(f"recorded {got.spec}: {cell.describe()}: {record['status']}"
                     f"{' (' + record['reason'] + ')' if record.get('reason') else ''}")
        else:
            self.refused += 1
            self.say(f"refused {got.spec}: {cell.describe()}: this worker's lease ran out "
                     "and the cell was taken over; its result is not recorded")

    def _context(self, spec_name: str, version: str) -> _Context:
        key = (spec_name, version)
        if key not in self.contexts:
            self.contexts[key] = self._build(spec_name, version)
        return self.contexts[key]

    def _build(self, spec_name: str, version: str) -> _Context:
        from harness.cells.data import CellData
        from harness.cells.grid import expand
        from harness.cells.units import units_for
        from harness.runner.dbstore import DbClaims, SharedResults
        from harness.runner.ownership import is_marked
        from harness.runner.sweep import (
            SweepSummary,
            _groupable,
            _JobFactory,
            _Recorder,
            check_data,
        )
        from harness.spec.loader import load_plugins_of, validate_spec
        from harness.spec.requirements import missing_requirements
        from harness.tracking import open_tracker

        row = self.cells.spec_row(spec_name, version)
        if row is None:
            raise HarnessError(f"store: spec {spec_name} version {version} is missing")
        root = Path(row["results_dir"] or ".")
        files = root.is_dir() and is_marked(root)
        results = SharedResults(root, self.cells, spec_name, files=files)
        if files and results.writable() is not None:
            results.files = False
        summary = SweepSummary(results_dir=root)
        claims = DbClaims(self.cells, spec_name, set())
        try:
            body = copy.deepcopy(row["body"])
            load_plugins_of(body, None)
            spec = validate_spec(body, f"store spec {spec_name}")
            unmet = missing_requirements(spec)
            if unmet:
                raise HarnessError(unmet[0])
            data = CellData.for_spec(spec, row["data_dir"])
            grid = expand(spec, None, data)
            check_data(spec, grid, data)
            grid += units_for(spec, grid, data)  # warm-ups and trials are claimed alike
        except Exception as exc:  # noqa: BLE001 - this host cannot build the spec's cells
            problem = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
            return _Context(None, {}, None, None, summary, problem)
        tracker = None
        if spec.tracking.enabled and row["tracking_uri"]:
            tracker = open_tracker(spec, results, row["tracking_uri"], claims)
        recorder = _Recorder(results, claims, tracker, summary)
        jobs = _JobFactory(spec, results, claims, data, self.threads or spec.threads, 1)
        if not files:
            self.say(f"note: {root} is not reachable from this host: records of "
                     f"{spec_name} go to the store only")
        return _Context(spec, {c.cell_id: c for c in grid}, jobs, recorder, summary,
                        groupable=_groupable(spec))

    def close(self) -> None:
        for ctx in self.contexts.values():
            if ctx.recorder is not None and ctx.recorder.tracker is not None:
                try:
                    ctx.recorder.tracker.client.set_terminated(ctx.recorder.tracker.parent_id,
                                                               status="FINISHED")
                except Exception:  # noqa: BLE001 - results are safe
                    pass
        self.cells.close()


def argument_problem(args: argparse.Namespace) -> str | None:
    """One line when an argument of ``harness worker`` is out of range, else None."""
    if args.threads is not None and args.threads < 1:
        return f"--threads {args.threads}: must be at least 1"
    if args.max_cells is not None and args.max_cells < 1:
        return f"--max-cells {args.max_cells}: must be at least 1"
    if not args.poll > 0:
        return f"--poll {args.poll}: must be a positive number of seconds"
    group = getattr(args, "group", DEFAULT_GROUP)
    if group < 1:
        return f"--group {group}: must be at least 1"
    return None


def worker_command(args: argparse.Namespace) -> int:
    """``harness worker``: see the module docstring."""
    from harness.runner.stopping import stop_on_signals

    problem = argument_problem(args)
    if problem is not None:  # before the store is touched: nothing is claimed or failed
        raise HarnessError(problem)
    worker = Worker(args.store, spec=args.spec, threads=args.threads,
                    until_empty=args.until_empty, poll=args.poll, max_cells=args.max_cells,
                    say=lambda text: print(text, flush=True),
                    group=getattr(args, "group", DEFAULT_GROUP))
    clock = time.perf_counter()
    try:
        with stop_on_signals(lambda: None):
            worker.run()
    except KeyboardInterrupt:
        print("interrupted: the running cell was given back (pending again)", file=sys.stderr)
        return 130
    finally:
        worker.close()
    print(f"worker: {worker.recorded} recorded ({worker.failed} failed), {worker.refused} "
          f"refused, {len(worker.skip)} left to others, in {time.perf_counter() - clock:.1f}s",
          flush=True)
    return 1 if worker.failed else 0
