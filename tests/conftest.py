"""Shared fixtures and markers: small inline specs, the shared data folder, one torch
thread."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"  # ../shared/data
needs_ptb = pytest.mark.skipif(not (DATA / "ptb" / "ptb.train.txt").is_file(),
                               reason=f"PTB files not at {DATA}/ptb")


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread, as a --workers cell runs (two threads on a loaded 2-core machine
    spin against each other)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def small_spec(**changes: Any) -> dict[str, Any]:
    """A logistic spec that runs in about a second; ``changes`` replace top-level fields."""
    spec: dict[str, Any] = {
        "name": "tiny",
        "task": {"name": "logistic", "params": {"epochs": 40}},
        "methods": [
            {"name": "baseline"},
            {"name": "imm_sampled", "label": "imm", "lambda": 1.0},
            {"name": "noising", "lambda": {"schedule": "linear_ratio", "slope": -0.0111,
                                           "intercept": 0.818}},
        ],
        "sizes": [2, 5],
        "seeds": [0, 1],
        "runs": 4,
        "tracking": {"enabled": False},
    }
    spec.update(changes)
    return spec


@pytest.fixture
def write_spec(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Path]:
    """Write a spec dict to tmp_path (the working directory) and return its path."""
    monkeypatch.chdir(tmp_path)

    def write(data: dict[str, Any], name: str = "spec.yaml") -> Path:
        path = tmp_path / name
        path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        return path

    return write
