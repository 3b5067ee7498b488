"""Time single logistic cells (all methods of Figure 1 at a few sizes) on this machine's
default device (cuda when available) and print medians, for a quick GPU/CPU comparison.

Usage: python benchmarks/logistic_cells.py [--runs 300] [--epochs 5000] [--sizes 5 20 50]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from harness.registry import METHODS, TASKS
from harness.spec.lambdas import LinearRatioSchedule
from harness.tasks.base import CellRequest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--epochs", type=int, default=5000)
    parser.add_argument("--sizes", type=int, nargs="+", default=[5, 20, 50])
    args = parser.parse_args()
    schedule = LinearRatioSchedule(schedule="linear_ratio", slope=-0.0111, intercept=0.818)
    task = TASKS.get("logistic")(TASKS.config("logistic")(epochs=args.epochs))
    print(f"device: {task.device}")
    for size in args.sizes:
        lam = schedule.resolve(size)
        for name in ("baseline", "interpolation", "noising", "imm_sampled", "imm_serialized"):
            method = METHODS.get(name)(METHODS.config(name)(), lam)
            start = time.perf_counter()
            out = task.run(method, CellRequest(size=size, seed=0, runs=args.runs))
            seconds = time.perf_counter() - start
            acc = out["accuracy"] * 100
            p10, p90 = np.percentile(acc, [10, 90])
            print(f"n={size:3d} {name:15s} median {np.median(acc):6.2f} "
                  f"[{p10:6.2f}, {p90:6.2f}]  {seconds:6.2f} s")


if __name__ == "__main__":
    main()
