"""Run one cell and turn whatever happens into a record: ok, failed (with a reason and the
traceback) or skipped. Nothing here raises except KeyboardInterrupt, so one bad cell
never stops a sweep.

Jobs carry only plain data (the hashed config, not pydantic objects), so that they can be
sent to "spawn" worker processes; the task and method are rebuilt from the config, which
also guarantees that what runs is exactly what was hashed.
"""

from __future__ import annotations

import copy
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harness.cells.record import SCHEMA, Provenance, summarize, utc_now
from harness.errors import Diverged, SkipCell, WarmUpNotReached
from harness.masking import mask
from harness.spec.lambdas import TuneLambda, resolve_lambda

CHECKPOINT_ENV = "HARNESS_CHECKPOINT_DIR"  # a user's own checkpoint root (never cleaned)


@dataclass(frozen=True)
class LambdaChoice:
    """The lambda a cell trains with, where it came from, and why there is none if so."""

    value: float | None
    source: str  # "fixed" | "schedule" | "tuned" | "none"
    tuning: dict[str, Any] | None = None
    tune_s: float = 0.0
    error: str | None = None  # set when no lambda could be chosen: the cell fails


@dataclass(frozen=True)
class CellJob:
    """Everything a (possibly remote) process needs to run one cell."""

    spec_name: str
    cell_id: str
    config: dict[str, Any]
    choice: LambdaChoice
    data_dir: str | None
    provenance: Provenance
    # The data files the cell reads, as recorded: {role: {path, size, sha256} or {source}}.
    data: dict[str, Any] = field(default_factory=dict)
    # torch intra-op threads the cell runs with (None: leave the process's setting).
    threads: int | None = None
    # The spec's plugins (module names, absolute .py paths): a worker imports them first.
    plugins: tuple[str, ...] = ()
    # Where the cell may checkpoint (CellRequest.checkpoint_dir; tasks with
    # ``checkpoint: true`` resume from it); None = the task's own setting.
    checkpoint_dir: str | None = None
    # What the cell needs on a cluster node ({cpus, gpus}, the spec's resources);
    # operational: neither in the cell id nor in the record.
    resources: dict[str, float] | None = None
    # None for a cell of the table; "warm-up" or "trial" (harness.cells.units).
    unit: str | None = None
    # Where the cell starts from and where a warm-up stops (harness.runner.dependencies).
    warm: dict[str, Any] | None = None
    # (status, reason) when a unit it starts from failed or was skipped: not run.
    blocked: tuple[str, str] | None = None
    # The split its metrics are evaluated on (a tuning trial's: validation).
    split: str = "test"
    # The code that computes it (harness.cells.code): the record's ``code`` block.
    code: dict[str, Any] = field(default_factory=dict)


def fixed_lambda(lambda_spec: Any, size: int) -> LambdaChoice:
    """The lambda of a non-tuned entry: a number, a schedule/table value, or none."""
    if isinstance(lambda_spec, TuneLambda):
        raise ValueError("a tuned lambda is chosen by harness.tuning")
    if lambda_spec is None:
        return LambdaChoice(None, "none")
    source = "fixed" if isinstance(lambda_spec, int | float) else "schedule"
    try:
        return LambdaChoice(resolve_lambda(lambda_spec, size), source)
    except ValueError as exc:
        return LambdaChoice(None, source, error=f"lambda: {one_line(str(exc))}")


def build(config: dict[str, Any], lam: float | None, data_dir: str | None) -> tuple[Any, Any]:
    """The task and method a config describes, from the registries (installed plugins
    discovered first)."""
    return build_task(config, data_dir), build_method(config, lam)


def build_task(config: dict[str, Any], data_dir: str | None) -> Any:
    """The task of a config (a group's cells share one)."""
    from harness.registry import TASKS, discover

    discover()
    task_cfg = config["task"]
    task_params = TASKS.config(task_cfg["name"]).model_validate(task_cfg["params"])
    return TASKS.get(task_cfg["name"])(task_params, data_dir)


def build_method(config: dict[str, Any], lam: float | None) -> Any:
    """The method of a config, with its lambda."""
    from harness.registry import METHODS, discover

    discover()
    method_cfg = config["method"]
    method_params = METHODS.config(method_cfg["name"]).model_validate(method_cfg["params"])
    return METHODS.get(method_cfg["name"])(method_params, lam)


def first_cell(spec: Any, method: str, data_dir: str | None = None, **task_updates: Any
               ) -> tuple[Any, Any, Any]:
    """The first cell (first size and seed) of ``spec``'s method ``method`` (name or label)
    with its task and method built as a worker builds them (per-method task params and
    lambda schedules included), ``task_updates`` over the task params: for benchmarks
    that rerun part of a cell with one setting changed. Returns (cell, task, method)."""
    from harness.cells.data import CellData
    from harness.cells.grid import expand

    data = CellData.for_spec(spec, data_dir)
    cell = expand(spec, {"method": method}, data)[0]
    config = copy.deepcopy(dict(cell.config))
    config["task"]["params"].update(task_updates)
    choice = fixed_lambda(cell.entry.lambda_, cell.size)
    if choice.error:
        raise ValueError(choice.error)
    task, built = build(config, choice.value, data.data_dir)
    return cell, task, built


def evaluate(task: Any, method: Any, request: Any, progress: Any = None
             ) -> dict[str, list[float]]:
    """Run the task; return per-run metric lists, raising Diverged on a non-finite value
    and SkipCell when the method (or the task) says it does not apply."""
    reason = skip_reason(task, method)
    if reason:
        raise SkipCell(reason)
    warm = getattr(request, "warm_start", None)
    return checked_metrics(task, task.run(method, request, progress), request.runs,
                           warm_up=warm is not None and warm.save is not None)


def skip_reason(task: Any, method: Any) -> str | None:
    """Why ``task`` does not run ``method`` (capabilities first), or None."""
    from harness.capabilities import missing

    return missing(method, task) or method.skip(task) or task.skip(method)


def checked_metrics(task: Any, out: dict[str, Any], runs: int, warm_up: bool = False
                    ) -> dict[str, list[float]]:
    """A task's {metric: values} as lists of floats, one per run; raises ValueError on a
    metric its params do not declare (or a declared one missing, ``check_metric_names``;
    a warm-up's: its ``warm_up_metrics``) or a wrong count, and Diverged on a non-finite
    value."""
    check_metric_names(task, out, warm_up)
    metrics: dict[str, list[float]] = {}
    for name, values in out.items():
        arr = np.asarray(values, dtype=float).reshape(-1)
        if arr.size != runs:
            raise ValueError(f"metric {name!r} has {arr.size} values for {runs} runs")
        if not np.isfinite(arr).all():
            raise Diverged(f"non-finite {name}")
        metrics[name] = [float(v) for v in arr]
    return metrics


def check_metric_names(task: Any, out: dict[str, Any], warm_up: bool = False) -> None:
    """The task's metrics must be those its params declare: no name it does not declare
    (a typo such as "acc" would be reported as "no data") and every one of
    ``expected_metrics()`` (a warm-up's: exactly ``warm_up_metrics``). Raises ValueError
    (the cell fails) naming the task and both."""
    params = getattr(task, "params", None)
    kind = "warm_up_metrics" if warm_up else "metrics"
    declared = tuple(getattr(type(params), kind, ()) or ())
    if not declared:
        return
    name = type(task).__name__
    what = "warm-up metric(s)" if warm_up else "metric(s)"
    unknown = [m for m in out if m not in declared]
    if unknown:
        raise ValueError(f"task {name} returned {what} {', '.join(map(repr, unknown))} "
                         f"that its params do not declare (declared: {', '.join(declared)})")
    expected = declared if warm_up else params.expected_metrics()
    missing = [m for m in expected if m not in out]
    if missing:
        raise ValueError(f"task {name} did not return declared {what} "
                         f"{', '.join(map(repr, missing))} (returned: {', '.join(out) or 'none'})")


def run_job(job: CellJob, progress: Any = None) -> dict[str, Any]:
    """Run one cell and return its complete record (never raises but KeyboardInterrupt).
    After the cell, its data files are fingerprinted again (cheap: cached by size and
    mtime); a change fails the cell rather than recording numbers of mixed data."""
    from harness.runner.curves import CellProgress
    from harness.runner.dependencies import request_of, state_files, state_problem
    from harness.tasks.base import CellRequest

    config, choice = job.config, job.choice
    started, clock = utc_now(), time.perf_counter()
    status, reason, trace, metrics = "ok", None, None, {}
    cell_progress = CellProgress(progress)
    device: str | None = None
    warm = dict(job.warm["record"]) if job.warm else None
    try:
        if job.blocked:
            raise _Blocked(*job.blocked)
        if choice.error:
            raise _NoLambda(choice.error)
        problem = state_problem(job.warm)
        if problem:
            raise _NoLambda(problem)
        if job.plugins:
            from harness.registry.plugins import load_spec_plugins

            load_spec_plugins(list(job.plugins), None)
        with torch_threads(job.threads):
            task, method = build(config, choice.value, job.data_dir)
            device = device_name(task.device)
            request = CellRequest(size=config["size"], seed=config["seed"],
                                  runs=config["runs"], split=job.split,  # type: ignore[arg-type]
                                  data_dir=job.data_dir, checkpoint_dir=job.checkpoint_dir,
                                  warm_start=request_of(job.warm))
            metrics = evaluate(task, method, request, cell_progress)
        check_data_unchanged(job)
        if warm is not None and request.warm_start.save:  # type: ignore[union-attr]
            warm["files"] = state_files(request.warm_start.save)  # type: ignore[union-attr]
    except Exception as exc:  # noqa: BLE001 - any error fails this cell only
        status, reason, trace = failure(exc)
        metrics = {} if isinstance(exc, _NoLambda | _DataChanged | _Blocked
                                   | WarmUpNotReached) else metrics
    record = make_record(job, status, reason, trace, metrics, started,
                         time.perf_counter() - clock, device)
    record["curves"] = cell_progress.curves()  # per-epoch metrics, also of a failed cell
    if job.unit:
        record["unit"] = job.unit
    if warm is not None:
        record["warm_start"] = warm
    return record


def check_data_unchanged(job: CellJob) -> None:
    """Raise when a data file the cell read changed while it ran (its numbers would belong
    to no data)."""
    changed = _data_changed(job.data)
    if changed:
        raise _DataChanged(f"data changed during the run: {changed}; rerun the cell")


def failure(exc: BaseException) -> tuple[str, str, str | None]:
    """(status, reason, traceback) of a cell that raised ``exc``: skipped, diverged
    (failed, no traceback), failed for a stated reason, or failed with the traceback;
    the reason and traceback masked (a URL's password in an error is never recorded)."""
    if isinstance(exc, _Blocked):  # a unit it starts from failed or was skipped
        status, reason, trace = exc.args[0], one_line(exc.args[1]), None
    elif isinstance(exc, SkipCell):
        status, reason, trace = "skipped", one_line(str(exc)) or "skipped", None
    elif isinstance(exc, Diverged):
        status, reason, trace = "failed", f"diverged: {one_line(str(exc))}", None
    elif isinstance(exc, WarmUpNotReached):
        status, reason, trace = "failed", f"warm-up not reached: {one_line(str(exc))}", None
    elif isinstance(exc, _NoLambda | _DataChanged):
        status, reason, trace = "failed", str(exc), None
    else:
        status, reason = "failed", one_line(f"{type(exc).__name__}: {exc}")
        trace = "".join(traceback.format_exception(exc))
    return status, mask(reason), mask(trace) if trace else trace


def make_record(job: CellJob, status: str, reason: str | None, trace: str | None,
                metrics: dict[str, list[float]], started: str, train_s: float,
                device: str | None = None) -> dict[str, Any]:
    """The schema-1 record (the contract with harness.report: exactly these keys, and
    for warm starts ``unit`` and ``warm_start``, added by ``run_job``)."""
    config, choice = job.config, job.choice
    ok = status == "ok"
    return {
        "schema": SCHEMA,
        "cell_id": job.cell_id,
        "spec": job.spec_name,
        "task": config["task"]["name"],
        "method": config["method"]["name"],
        "label": config["method"]["label"],
        "size": config["size"],
        "seed": config["seed"],
        "runs": config["runs"],
        "status": status,
        "reason": reason,
        "traceback": trace,
        "lambda": choice.value,
        "lambda_source": choice.source,
        "tuning": choice.tuning,
        "config": config,
        "data": dict(job.data),
        "metrics": metrics if ok else {},
        "summary": {k: summarize(v) for k, v in metrics.items()} if ok else {},
        "timings": {"train_s": round(train_s, 4), "tune_s": round(choice.tune_s, 4)},
        "threads": job.threads,
        "git_commit": job.provenance.git_commit,
        "code": dict(job.code) or None,
        "versions": dict(job.provenance.versions),
        "machine": {**job.provenance.machine, "device": device},
        "started": started,
        "finished": utc_now(),
        "mlflow_run_id": None,
    }


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """torch's intra-op threads = ``threads`` for the duration (restored afterwards)."""
    if threads is None:
        yield
        return
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def device_name(device: Any) -> str:
    """'cpu', or 'cuda:0 (NVIDIA H200)': what a cell's numbers were computed on."""
    text = str(device)
    if text.startswith("cuda"):
        import torch

        index = torch.device(text).index or 0
        return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    return text


def _data_changed(data: dict[str, Any]) -> str | None:
    if not data:
        return None
    from harness.cells.data import CellData

    return CellData(None).changed(data)


class _Blocked(RuntimeError):
    """A unit the cell starts from failed or was skipped: (status, reason)."""


class _NoLambda(RuntimeError):
    """No lambda could be chosen (e.g. its tuning failed); the reason is already a line."""


class _DataChanged(RuntimeError):
    """A data file's content changed while the cell ran: its numbers belong to no data."""


def one_line(text: str, limit: int = 500) -> str:
    """Collapse a message to one line (records and tables show reasons on one line)."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 3] + "..."
