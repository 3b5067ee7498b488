"""Cell groups: several claimed cells that one task trains as one program.

A group is plain data, like a job: the ``CellJob`` of each of its cells, all of one task
configuration, thread count and data folder (``group_key``). ``run_group_job`` builds the
task once, asks it to train the members together (``Task.run_group``) and turns each
member's outcome into that cell's own record (with its own code identity, learning
curve and masked failure), yielded the moment the task is done with it; so a group is
recorded, tracked and resumable cell by cell, and an interrupted group loses only its
cells still training. Which cells form a group is decided by
``plan_units`` (the runner holds one claim per cell of a group).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from harness.cells.record import utc_now
from harness.runner.execute import (
    CellJob,
    build_method,
    build_task,
    check_data_unchanged,
    checked_metrics,
    device_name,
    failure,
    make_record,
    skip_reason,
    torch_threads,
)


@dataclass(frozen=True)
class GroupJob:
    """The jobs of a group's cells (one task configuration, threads and data folder)."""

    jobs: tuple[CellJob, ...]

    @property
    def cell_id(self) -> str:
        """A name for the group (executors name their tasks by it)."""
        return f"group-{self.jobs[0].cell_id}-{len(self.jobs)}"

    @property
    def resources(self) -> dict[str, float] | None:
        return self.jobs[0].resources

    def describe(self) -> str:
        sizes = sorted({job.config["size"] for job in self.jobs})
        return f"{len(self.jobs)} cells (sizes {', '.join(map(str, sizes))})"


Work = CellJob | GroupJob  # what an executor runs


def group_key(job: CellJob) -> str:
    """What cells must share to be trained in one program: the task and its params, the
    threads, the data folder, the plugins and the resources."""
    return json.dumps([job.config["task"], job.threads, job.data_dir, job.plugins,
                       job.resources], sort_keys=True, default=str)


def run_group_job(group: GroupJob, progress: Any = None) -> Iterator[dict[str, Any]]:
    """Train ``group``'s cells together and yield each cell's record as soon as it is done
    (never raises but KeyboardInterrupt: a failure fails the cells it touches)."""
    from harness.runner.curves import CellProgress
    from harness.tasks.base import CellRequest, GroupMember

    jobs = group.jobs
    started, clock = utc_now(), time.perf_counter()
    first = jobs[0]
    curves = {job.cell_id: CellProgress() for job in jobs}  # each cell's own curve

    def record(job: CellJob, exc: BaseException | None, metrics: dict | None = None,
               device: str | None = None) -> dict[str, Any]:
        status, reason, trace = ("ok", None, None) if exc is None else failure(exc)
        made = make_record(job, status, reason, trace, metrics or {}, started,
                           time.perf_counter() - clock, device)
        made["timings"]["group_cells"] = len(jobs)  # train_s: from the group's start
        made["curves"] = curves[job.cell_id].curves()  # also of a failed cell
        return made

    try:
        if first.plugins:
            from harness.registry.plugins import load_spec_plugins

            load_spec_plugins(list(first.plugins), None)
        with torch_threads(first.threads):
            task = _task_for(first)
    except Exception as exc:  # noqa: BLE001 - every cell of the group fails with it
        for job in jobs:
            yield record(job, exc)
        return
    device = device_name(task.device)
    members: list[GroupMember] = []
    member_jobs: list[CellJob] = []
    for job in jobs:
        try:
            if job.choice.error:
                from harness.runner.execute import _NoLambda

                raise _NoLambda(job.choice.error)
            method = build_method(job.config, job.choice.value)
            reason = skip_reason(task, method)
            if reason:
                from harness.errors import SkipCell

                raise SkipCell(reason)
        except Exception as exc:  # noqa: BLE001 - this cell's outcome
            yield record(job, exc, device=device)
            continue
        config = job.config
        members.append(GroupMember(method, CellRequest(
            size=config["size"], seed=config["seed"], runs=config["runs"], split="test",
            data_dir=job.data_dir, checkpoint_dir=job.checkpoint_dir),
            curves[job.cell_id].curve))
        member_jobs.append(job)
    if not members:
        return
    done: set[int] = set()

    def outcome(index: int, result: Any) -> dict[str, Any]:
        job = member_jobs[index]
        try:
            if isinstance(result, Exception):
                raise result
            metrics = checked_metrics(task, result, job.config["runs"])
            check_data_unchanged(job)
        except Exception as exc:  # noqa: BLE001 - this cell's outcome
            return record(job, exc, device=device)
        return record(job, None, metrics, device)

    with torch_threads(first.threads):
        try:
            for index, result in task.run_group(members, progress):
                done.add(index)
                yield outcome(index, result)
        except Exception as exc:  # noqa: BLE001 - the program failed
            left = [index for index in range(len(members)) if index not in done]
            if len(members) == 1:
                yield record(member_jobs[0], exc, device=device)
                return
            # Which member raised is unknown (e.g. a plugin method's term of the wrong
            # shape): each member not done trains alone, with the numbers it has in the
            # group, so that one member's error fails that member only.
            for index in left:
                yield _alone(task, member_jobs[index], members[index], curves, outcome,
                             index, record, device)


def _alone(task: Any, job: CellJob, member: Any, curves: dict[str, Any],
           outcome: Callable[[int, Any], dict[str, Any]], index: int,
           record: Callable[..., dict[str, Any]], device: str) -> dict[str, Any]:
    """Member ``index`` of a failed group program trained as a group of one (a method
    rebuilt, a learning curve started afresh)."""
    from harness.runner.curves import CellProgress
    from harness.tasks.base import GroupMember

    curves[job.cell_id] = CellProgress()
    try:
        method = build_method(job.config, job.choice.value)
        alone = GroupMember(method, member.request, curves[job.cell_id].curve)
        ((_, result),) = list(task.run_group([alone]))
    except Exception as exc:  # noqa: BLE001 - this cell's outcome
        return record(job, exc, device=device)
    return outcome(index, result)


def prepare_for(work: Work) -> None:
    """What a helper does while it starts, so that its first unit costs what the next
    one does: the task of ``work`` built (and kept for the groups to come) when the task
    trains groups, else its class imported."""
    from harness.capabilities import groups_cells
    from harness.registry import TASKS

    job = work.jobs[0] if isinstance(work, GroupJob) else work
    if job.plugins:
        from harness.registry.plugins import load_spec_plugins

        load_spec_plugins(list(job.plugins), None)
    if groups_cells(TASKS.get(job.config["task"]["name"])):
        with torch_threads(job.threads):
            _task_for(job)


_TASKS: dict[str, Any] = {}  # the last task built here, for the next group of its config


def _task_for(job: CellJob) -> Any:
    """The task of ``job``'s config, reused from the previous group of the same config in
    this process when the task trains groups (its ``run_group`` keeps nothing between
    calls; building one can cost seconds, e.g. grid RL's POMDP policy)."""
    from harness.capabilities import groups_cells

    key = json.dumps([job.config["task"], job.data_dir], sort_keys=True)
    task = _TASKS.get(key)
    if task is None:
        task = build_task(job.config, job.data_dir)
        if groups_cells(task):
            _TASKS.clear()
            _TASKS[key] = task
    return task


def plan_units(cells: Sequence[Any], key: Callable[[Any], str | None], workers: int,
               sizes_apart: bool = False) -> list[list[Any]]:
    """Split ``cells`` into units of work: the cells whose ``key`` is None alone, the rest
    in at most ``workers`` groups per key (so that every worker gets one), each group
    holding whole sizes, balanced by the sum of their sizes (the work grows with the
    size), largest first. ``sizes_apart``: the task trains each size as a program of its
    own anyway, so each size is a unit (workers then take sizes as they come free)."""
    units: list[list[Any]] = []
    by_key: dict[str, list[Any]] = {}
    for cell in cells:
        k = key(cell)
        if k is None:
            units.append([cell])
        else:
            by_key.setdefault(k, []).append(cell)
    for same in by_key.values():
        sizes: dict[int, list[Any]] = {}
        for cell in same:
            sizes.setdefault(cell.size, []).append(cell)
        count = len(sizes) if sizes_apart else max(1, min(workers, len(sizes)))
        bins: list[list[Any]] = [[] for _ in range(count)]
        loads = [0] * len(bins)
        for size in sorted(sizes, reverse=True):
            lightest = loads.index(min(loads))
            bins[lightest].extend(sizes[size])
            loads[lightest] += size * len(sizes[size])
        units.extend(b for b in bins if b)
    units.sort(key=lambda unit: -sum(cell.size for cell in unit))
    return units
