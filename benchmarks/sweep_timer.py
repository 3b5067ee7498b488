"""Shared by the speed benchmarks: the wall time of a fresh `harness run` of a spec."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def time_sweep(spec: Path, workers: int) -> float:
    """Wall seconds of `harness run SPEC --fresh --workers N` in a scratch directory (MLflow
    tracking and the report included, as a user would run it)."""
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    with tempfile.TemporaryDirectory() as scratch:
        start = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "harness.cli", "run", str(spec), "--fresh",
             "--workers", str(workers)],
            cwd=scratch, env=env, capture_output=True, text=True,
        )
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            sys.exit(f"harness run failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
        return wall
