"""The per-cell record (schema 1, shared with harness.report), its provenance fields and
the check that a record is complete."""

from __future__ import annotations

import platform
import subprocess
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


def git_commit(cwd: str | None = None) -> str | None:
    """HEAD of the repository around ``cwd`` ("-dirty" if it has changes), None outside one."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True,
                              text=True, timeout=10)
        if head.returncode != 0:
            return None
        status = subprocess.run(["git", "status", "--porcelain"], cwd=cwd,
                                capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    commit = head.stdout.strip()
    return f"{commit}-dirty" if status.stdout.strip() else commit


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
        return cls(git_commit=git_commit(), versions=versions(), machine=machine())


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


def record_problem(data: Any, cell_id: str | None = None) -> str | None:
    """Why ``data`` is not a complete record (of ``cell_id``), or None when it is."""
    try:
        record = CellRecord.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        return f"{where + ': ' if where else ''}{err['msg'].removeprefix('Value error, ')}"
    if cell_id is not None and record.cell_id != cell_id:
        return f"it is the record of cell {record.cell_id}"
    return None
