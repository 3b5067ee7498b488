"""The per-cell record (schema 1, shared with harness.report), its provenance fields and
the check that a record is complete."""

from __future__ import annotations

import platform
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, PositiveInt, ValidationError, model_validator

SCHEMA = 1
# Record key -> distribution name (harness is distributed as imm-harness).
PACKAGES = {"harness": "imm-harness", "torch": "torch", "numpy": "numpy",
            "pydantic": "pydantic", "optuna": "optuna", "mlflow": "mlflow",
            "transformers": "transformers"}


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def summarize(values: Any) -> dict[str, float | int]:
    """mean, median, p10, p90 (numpy linear percentiles), std and n of one metric's runs."""
    arr = np.asarray(values, dtype=float)
    p10, median, p90 = np.percentile(arr, [10, 50, 90])
    return {
        "mean": float(arr.mean()),
        "median": float(median),
        "p10": float(p10),
        "p90": float(p90),
        "std": float(arr.std()),
        "n": int(arr.size),
    }


def versions() -> dict[str, str | None]:
    """Versions from package metadata (no import: mlflow alone takes seconds to import)."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name, dist in PACKAGES.items():
        try:
            out[name] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


@dataclass(frozen=True)
class Provenance:
    """Collected once per sweep in the main process and copied into every record."""

    git_commit: str | None = None
    versions: dict[str, str | None] = field(default_factory=dict)
    machine: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def collect(cls) -> Provenance:
        """The harness's own commit (its source tree's, never the working directory's:
        harness.cells.code), library versions and the machine."""
        from harness.cells.code import harness_identity, legacy_commit

        return cls(git_commit=legacy_commit(harness_identity()), versions=versions(),
                   machine=machine())


def machine() -> dict[str, Any]:
    """Where the cells ran: host, OS, CPU model and cores (the device is per cell)."""
    import os
    import socket

    cpu = platform.processor() or ""
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):  # noqa: SIM115
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 0
    return {"host": socket.gethostname(), "platform": platform.platform(), "cpu": cpu,
            "cores": cores}


class CellRecord(BaseModel):
    """What a record must hold to count as a finished cell (extra keys are allowed, so
    newer records stay readable); one that does not validate is rerun, with a warning."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)
    schema_: Literal[1] = Field(alias="schema")
    cell_id: str
    spec: str
    task: str
    method: str
    label: str
    size: int
    seed: int
    runs: PositiveInt
    status: Literal["ok", "failed", "skipped"]
    reason: str | None
    config: dict[str, Any]
    metrics: dict[str, list[float]]

    @model_validator(mode="after")
    def _complete(self) -> CellRecord:
        if self.status == "ok":
            if not self.metrics:
                raise ValueError("an ok record without metrics")
            short = [m for m, v in self.metrics.items() if len(v) != self.runs]
            if short:
                raise ValueError(f"metric {short[0]!r} does not have {self.runs} values")
        elif not self.reason:
            raise ValueError(f"a {self.status} record without a reason")
        return self


# What a record must say about its cell: these fields equal the cell's (see ``expectation``).
CELL_FIELDS = ("task", "method", "label", "size", "seed")


def expectation(config: Mapping[str, Any], metric: str | None) -> dict[str, Any]:
    """What a record of the cell with resolved ``config`` must hold: its task, method,
    label, size and seed, and (when ok) the task's default ``metric``."""
    return {"task": config["task"]["name"], "method": config["method"]["name"],
            "label": config["method"]["label"], "size": config["size"],
            "seed": config["seed"], "metric": metric}


def default_metric(task: str) -> str | None:
    """The first metric the task declares (every ok cell of it must have it); None for a
    task that is not registered here or declares none."""
    from harness.registry import TASKS

    if task not in TASKS:
        return None
    try:
        metrics = TASKS.config(task).metrics
    except Exception:  # noqa: BLE001 - a plugin that does not load: nothing to expect
        return None
    return str(metrics[0]) if metrics else None


def record_problem(data: Any, cell_id: str | None = None,
                   expect: Mapping[str, Any] | None = None) -> str | None:
    """Why ``data`` is not a complete record (of ``cell_id``, and of the cell described
    by ``expect``: see ``cell_problem``), or None when it is."""
    try:
        record = CellRecord.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        return f"{where + ': ' if where else ''}{err['msg'].removeprefix('Value error, ')}"
    if cell_id is not None and record.cell_id != cell_id:
        return f"it is the record of cell {record.cell_id}"
    return None if expect is None else cell_problem(data, expect)


def cell_problem(record: Mapping[str, Any], expect: Mapping[str, Any]) -> str | None:
    """Why a complete ``record`` is not the record of the cell ``expect`` describes
    (``expectation``): another task, method, label, size or seed, or an ok record
    without the task's default metric; None when it is."""
    for name in CELL_FIELDS:
        want, have = expect.get(name), record.get(name)
        if want is not None and have != want:
            return f"it is the record of {name} {have!r}, this cell's is {want!r}"
    metric = expect.get("metric")
    metrics = record.get("metrics") or {}
    if record.get("status") == "ok" and metric and metric not in metrics:
        return (f"its metrics ({', '.join(metrics)}) lack {metric!r}, which task "
                f"{record.get('task')!r} declares")
    return None
