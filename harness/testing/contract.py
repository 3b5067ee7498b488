"""Contract tests for every registered task and method, plugins included.

Run them on an installed plugin with ``pytest --pyargs harness.testing.contract`` (set
``HARNESS_DATA_DIR`` for tasks that read data files; those tasks are skipped, saying so,
without it). For each task x method pair, through the runner's own path (a spec, its grid,
a job, a record):

- a method that does not apply is skipped with a one-line reason;
- the record of a cell validates (``harness.cells.record.CellRecord``);
- the same seed gives the same numbers;
- a method whose lambda is 0 gives the numbers of its base: the baseline, or ``mlm`` on a
  task with an auxiliary loss branch for a method that trains it (a regulariser there
  acts on that branch).

Each task's params declare the tiny settings these cells use (``contract_params``,
``contract_size``, ``contract_runs``).
"""

from __future__ import annotations

import functools
from typing import Any

import pytest

from harness.registry import METHODS, TASKS, discover

LAMBDA = 0.5

discover()
PAIRS = [(task, method) for task in TASKS.names() for method in METHODS.names()]


def _spec(task: str, method: str, lam: float | None) -> Any:
    from harness.spec import validate_spec

    params = TASKS.config(task)
    entry: dict[str, Any] = {"name": method}
    if METHODS.config(method).uses_lambda:
        entry["lambda"] = LAMBDA if lam is None else lam
    return validate_spec({
        "name": f"contract_{task}_{method}",
        "task": {"name": task, "params": dict(params.contract_params)},
        "methods": [entry],
        "sizes": [params.contract_size],
        "seeds": [0],
        "runs": params.contract_runs,
        "tracking": {"enabled": False},
    })


@functools.cache
def record(task: str, method: str, lam: float | None = None, attempt: int = 0
           ) -> dict[str, Any]:
    """The record of the pair's one cell, run as a sweep runs it (cached per process;
    ``attempt`` makes an independent rerun)."""
    from harness.cells.data import CellData
    from harness.cells.grid import expand
    from harness.cells.record import Provenance
    from harness.errors import DataError
    from harness.runner.execute import CellJob, fixed_lambda, run_job
    from harness.runner.sweep import check_data

    spec = _spec(task, method, lam)
    data = CellData.for_spec(spec)
    try:
        [cell] = expand(spec, None, data)
        check_data(spec, [cell], data)  # as a run does, before any compute
    except DataError as exc:
        pytest.skip(f"{task} needs its data files (set HARNESS_DATA_DIR): {exc}")
    job = CellJob(spec.name, cell.cell_id, dict(cell.config),
                  fixed_lambda(cell.entry.lambda_, cell.size), data.data_dir, Provenance(),
                  dict(cell.data), threads=1)
    return run_job(job)


def applies(task: str, method: str) -> bool:
    return record(task, method)["status"] != "skipped"


@pytest.mark.parametrize(("task", "method"), PAIRS)
def test_a_record_validates_and_a_skip_has_a_reason(task: str, method: str) -> None:
    from harness.cells.record import record_problem

    out = record(task, method)
    assert record_problem(out, out["cell_id"]) is None
    assert out["status"] in ("ok", "skipped"), out.get("reason")
    if out["status"] == "skipped":
        reason = out["reason"] or ""
        assert reason.strip() and "\n" not in reason, f"{method} on {task}: no reason"
    else:
        declared = TASKS.config(task).metrics
        assert set(out["metrics"]) <= set(declared) and out["metrics"]


@pytest.mark.parametrize(("task", "method"), PAIRS)
def test_the_same_seed_gives_the_same_numbers(task: str, method: str) -> None:
    if not applies(task, method):
        pytest.skip(record(task, method)["reason"])
    assert record(task, method, None, 1)["metrics"] == record(task, method)["metrics"]


def base_method(task: str, method: str) -> str:
    """What a method reduces to at lambda = 0 (see the module docstring)."""
    cls, task_cls = METHODS.get(method), TASKS.get(task)
    if "auxiliary_loss" in task_cls.supplies and cls.regularises:
        return "mlm"
    return "baseline"


@pytest.mark.parametrize(("task", "method"), PAIRS)
def test_lambda_zero_gives_the_base_numbers(task: str, method: str) -> None:
    if not METHODS.config(method).uses_lambda:
        pytest.skip(f"{method} has no lambda")
    if not applies(task, method):
        pytest.skip(record(task, method)["reason"])
    base = base_method(task, method)
    if base not in METHODS or not applies(task, base):
        pytest.skip(f"{base} does not run on {task}")
    assert record(task, method, 0.0)["metrics"] == record(task, base)["metrics"], (
        f"{method} at lambda 0 differs from {base} on {task}")
