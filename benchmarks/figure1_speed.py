"""Speed of the logistic task: the whole Figure 1 spec end to end, and what batching the
replicates of a cell buys over a Python loop over them (a ratio measured in one run).

Usage:  python benchmarks/figure1_speed.py [--spec specs/logistic.yaml] [--workers 2]
                                           [--skip-sweep] [--loop-runs 30] [--loop-epochs 500]

The sweep runs `harness run SPEC --fresh --workers N` in a temporary directory (MLflow
tracking and the report included, as a user would run it) and reports its wall time
against the 120 s target of the core-harness issue.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from sweep_timer import time_sweep  # benchmarks/ is on sys.path when run as a script

from harness.registry import METHODS, TASKS
from harness.tasks.base import CellRequest

ROOT = Path(__file__).resolve().parents[1]
TARGET_S = 120.0



def time_batched_vs_loop(runs: int, epochs: int, size: int = 20) -> tuple[float, float]:
    """Seconds for one IMM cell of ``runs`` replicates batched, and as ``runs`` cells of 1."""
    torch.set_num_threads(1)
    task = TASKS.get("logistic")(TASKS.config("logistic")(epochs=epochs))
    method = METHODS.get("imm_sampled")(METHODS.config("imm_sampled")(), 1.5)
    start = time.perf_counter()
    task.run(method, CellRequest(size=size, seed=0, runs=runs))
    batched = time.perf_counter() - start
    start = time.perf_counter()
    for seed in range(runs):
        task.run(method, CellRequest(size=size, seed=seed, runs=1))
    return batched, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spec", type=Path, default=ROOT / "specs" / "logistic.yaml")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--skip-sweep", action="store_true")
    parser.add_argument("--loop-runs", type=int, default=30)
    parser.add_argument("--loop-epochs", type=int, default=500)
    args = parser.parse_args()

    batched, loop = time_batched_vs_loop(args.loop_runs, args.loop_epochs)
    print(f"one IMM cell, n=20, {args.loop_runs} replicates x {args.loop_epochs} epochs: "
          f"batched {batched:.2f} s, Python loop over replicates {loop:.2f} s, "
          f"loop/batched = {loop / batched:.1f}x")
    if not args.skip_sweep:
        wall = time_sweep(args.spec.resolve(), args.workers)
        verdict = "within" if wall <= TARGET_S else "OVER"
        print(f"{args.spec.name} end to end with --workers {args.workers}: {wall:.1f} s "
              f"({verdict} the {TARGET_S:.0f} s target, {wall / TARGET_S:.2f} of it)")


if __name__ == "__main__":
    main()
