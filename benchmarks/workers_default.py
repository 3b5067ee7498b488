"""Workers that pay their way: a worker process's start-up, and each smoke spec with the
default workers against `--workers 1`, in one run of this script.

Usage:  python benchmarks/workers_default.py [--tasks logistic grid_rl ptb glue]
            [--data-dir DIR] [--repeat 2] [--json FILE]

Start-up: the seconds from starting a worker process (spawn) to its message that it has
imported what a cell needs (torch, the registries, the runner), the fastest of three.
Then for each task's smoke spec (`specs/smoke/<task>.yaml`; PTB and GLUE need
`--data-dir`) it times `harness run SPEC --fresh --no-report` (tracking off) with
`--workers` left out and with `--workers 1`, alternating, the fastest of `--repeat` each:
the default must be no more than 1.10x the one-worker time.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sweep_timer import finish, into, timed  # benchmarks/ is on sys.path when run as a script

ROOT = Path(__file__).resolve().parents[1]
DATA_TASKS = {"ptb", "glue"}


def startup_s() -> float:
    """Seconds until a fresh worker of harness.runner.pool says it is ready."""
    from harness.runner.pool import WorkerPool
    from harness.runner.sweep import run_work

    best = float("inf")
    for _ in range(3):
        pool = WorkerPool(1, run_work, threads=None)
        start = time.perf_counter()
        pool.start()
        while not pool.ready:
            pool.wait(0.05)
        best = min(best, time.perf_counter() - start)
        pool.close()
    return best


def run(spec: Path, extra: list[str], data_dir: Path | None) -> float:
    """Wall seconds of one fresh run."""
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    cmd = [sys.executable, "-m", "harness.cli", "run", str(spec), "--fresh", "--no-report",
           "--set", "tracking.enabled=false", *extra]
    if data_dir is not None:
        cmd += ["--data-dir", str(data_dir)]
    with tempfile.TemporaryDirectory() as scratch:
        return timed([*cmd, *into(scratch)], scratch, env)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", default=["logistic", "grid_rl", "ptb", "glue"])
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    result: dict[str, Any] = {"cores": os.cpu_count(), "load_before": os.getloadavg()}
    result["worker_startup_s"] = startup_s()
    print(f"worker start-up (spawn to ready): {result['worker_startup_s']:.2f} s")
    for task in args.tasks:
        data = args.data_dir if task in DATA_TASKS else None
        if task in DATA_TASKS and data is None:
            print(f"{task}: skipped (needs --data-dir)")
            continue
        spec = ROOT / "specs" / "smoke" / f"{task}.yaml"
        default, one = float("inf"), float("inf")
        for _ in range(args.repeat):
            default = min(default, run(spec, [], data))
            one = min(one, run(spec, ["--workers", "1"], data))
        ratio = default / one
        verdict = "ok" if ratio <= 1.10 else "OVER"
        result[task] = {"default_s": default, "one_worker_s": one, "ratio": ratio}
        print(f"{task} smoke: default workers {default:.1f} s, --workers 1 {one:.1f} s: "
              f"{ratio:.2f}x (target 1.10: {verdict})")
    finish(result, args.json)


if __name__ == "__main__":
    main()
