"""Threads that do not fight (issue 16): the default torch threads of a cell process
against every fixed choice, on a quiet machine and beside a busy process.

Usage:  python benchmarks/threads.py [--tasks logistic grid_rl ptb glue] [--data-dir DIR]
                                     [--fixed 1 2] [--repeat 1] [--busy-tasks logistic ptb]
                                     [--json FILE]

For each task's smoke spec (`specs/smoke/<task>.yaml`) it times `harness run SPEC --fresh
--workers 1 --no-report` (MLflow tracking off) with the default threads (no `--threads`:
the task's own choice, else the cores / workers) and with each `--threads N` of
`--fixed`, all on a quiet machine: the default should be no slower than the best fixed
choice by more than 10%. Then it times the smoke specs of `--busy-tasks` (default:
logistic) with the default threads beside a busy process (one process spinning on a core
for the whole run) against their quiet time: at most 1.5x (and, for comparison, with
one thread beside the same busy process). The PTB and GLUE specs need `--data-dir`
(skipped without it). The fastest of `--repeat` runs is kept. Each run's record says
which threads it used.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sweep_timer import into  # benchmarks/ is on sys.path when run as a script

ROOT = Path(__file__).resolve().parents[1]
DATA_TASKS = {"ptb", "glue"}


def run_spec(spec: Path, threads: int | None, data_dir: Path | None) -> tuple[float, int]:
    """(wall seconds, the threads the records name) of one fresh run of ``spec``: with
    ``threads`` None the defaults (threads and workers), else one worker and that many
    threads."""
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT"):
        env.pop(name, None)  # the harness chooses, as on a user's machine
    with tempfile.TemporaryDirectory() as scratch:
        cmd = [sys.executable, "-m", "harness.cli", "run", str(spec), "--fresh",
               "--no-report", "--set", "tracking.enabled=false", *into(scratch)]
        if threads is not None:
            cmd += ["--workers", "1", "--threads", str(threads)]
        if data_dir is not None:
            cmd += ["--data-dir", str(data_dir)]
        start = time.perf_counter()
        proc = subprocess.run(cmd, cwd=scratch, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            sys.exit(f"harness run failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
        used = {json.loads(p.read_text()).get("threads") for p in
                Path(scratch).rglob("cells/*.json")}
        return wall, int(max(t for t in used if t is not None))


def best_of(repeat: int, spec: Path, threads: int | None, data_dir: Path | None
            ) -> tuple[float, int]:
    runs = [run_spec(spec, threads, data_dir) for _ in range(repeat)]
    return min(runs)


def _spin(stop: multiprocessing.synchronize.Event) -> None:
    while not stop.is_set():
        sum(i * i for i in range(10_000))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", default=["logistic", "grid_rl", "ptb", "glue"])
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--fixed", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--busy-tasks", nargs="+", default=["logistic"])
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    result: dict[str, dict] = {"quiet": {}, "busy": {}, "cores": os.cpu_count()}
    for task in args.tasks:
        if task in DATA_TASKS and args.data_dir is None:
            print(f"{task}: skipped (needs --data-dir)")
            continue
        spec = ROOT / "specs" / "smoke" / f"{task}.yaml"
        default_s, default_t = best_of(args.repeat, spec, None, args.data_dir)
        fixed = {n: best_of(args.repeat, spec, n, args.data_dir)[0] for n in args.fixed}
        best = min(fixed, key=fixed.get)
        ratio = default_s / fixed[best]
        result["quiet"][task] = {"default_threads": default_t, "default_s": default_s,
                                 "fixed_s": fixed, "best_fixed": best,
                                 "default_over_best": ratio}
        cells = ", ".join(f"{n} thread(s) {s:.1f} s" for n, s in fixed.items())
        verdict = "ok" if ratio <= 1.10 else "OVER"
        print(f"{task}: default ({default_t} thread(s)) {default_s:.1f} s; {cells}; "
              f"default / best = {ratio:.2f} (target 1.10: {verdict})")

    for task in args.busy_tasks:
        spec = ROOT / "specs" / "smoke" / f"{task}.yaml"
        data = args.data_dir if task in DATA_TASKS else None
        if task in DATA_TASKS and data is None:
            continue
        quiet = result["quiet"].get(task, {}).get("default_s") or best_of(
            args.repeat, spec, None, data)[0]
        stop = multiprocessing.Event()
        spinner = multiprocessing.Process(target=_spin, args=(stop,), daemon=True)
        spinner.start()
        try:
            busy, used = best_of(args.repeat, spec, None, data)
            one = busy if used == 1 else best_of(args.repeat, spec, 1, data)[0]
        finally:
            stop.set()
            spinner.join(5)
        ratio = busy / quiet
        result["busy"][task] = {"quiet_s": quiet, "busy_s": busy, "threads": used,
                                "busy_one_thread_s": one, "busy_over_quiet": ratio}
        verdict = "ok" if ratio <= 1.5 else "OVER"
        print(f"{task} smoke beside a busy process: {busy:.1f} s with the default "
              f"({used} thread(s)) against {quiet:.1f} s quiet: {ratio:.2f}x (target 1.5: "
              f"{verdict}); with 1 thread {one:.1f} s")
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
