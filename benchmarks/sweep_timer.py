"""Shared by the speed benchmarks: the wall time of a fresh `harness run` of a spec."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def into(scratch: Path | str) -> list[str]:
    """The options that put a run's results in ``scratch``: a spec's relative output_dir
    is taken from its project folder (the checkout), which every timed run would share."""
    return ["--set", f"output_dir={Path(scratch).resolve() / 'results'}"]


def time_sweep(spec: Path, workers: int) -> float:
    """Wall seconds of `harness run SPEC --fresh --workers N` in a scratch directory (MLflow
    tracking and the report included, as a user would run it)."""
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    with tempfile.TemporaryDirectory() as scratch:
        start = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "harness.cli", "run", str(spec), "--fresh",
             "--workers", str(workers), *into(scratch)],
            cwd=scratch, env=env, capture_output=True, text=True,
        )
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            sys.exit(f"harness run failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
        return wall


def finish(result: dict[str, Any], json_path: Path | None) -> None:
    """Print the load average around a benchmark's run (its figures are only comparable
    on a quiet machine) and write ``result`` as JSON when asked."""
    result["load_after"] = os.getloadavg()
    print(f"load average before {result['load_before'][0]:.1f}, after "
          f"{result['load_after'][0]:.1f} ({result['cores']} cores)")
    if json_path is not None:
        json_path.write_text(json.dumps(result, indent=2))


def timed(cmd: list[str], cwd: Path | str, env: dict[str, str]) -> float:
    """Wall seconds of ``cmd`` run in ``cwd``; exits with its stderr if it fails."""
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return wall
