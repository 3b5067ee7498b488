"""What a group saves per epoch: the CPU seconds of one logistic program training the
Figure 1 methods of one size together, against each cell alone, and of ten tuning trials
of one method (lambdas batched) against each trial alone, in one run of this script.

Usage:  python benchmarks/groups_epoch.py [--epochs 500] [--sizes 2 50] [--runs 300]

CPU time of this process (time.process_time, one torch thread), so that other jobs on a
shared machine disturb the figures less than a wall clock's; per epoch in milliseconds.
"""

from __future__ import annotations

import argparse
import time

import torch

from harness.registry import METHODS, TASKS
from harness.spec.lambdas import LinearRatioSchedule
from harness.tasks.base import CellRequest, GroupMember

FIGURE1 = ("baseline", "interpolation", "noising", "imm_sampled")


def cpu(work) -> float:  # noqa: ANN001 - a callable
    start = time.process_time()
    work()
    return time.process_time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=500)
    parser.add_argument("--sizes", type=int, nargs="+", default=[2, 50])
    parser.add_argument("--runs", type=int, default=300)
    args = parser.parse_args()
    torch.set_num_threads(1)
    task = TASKS.get("logistic")(TASKS.config("logistic")(epochs=args.epochs))
    schedule = LinearRatioSchedule(schedule="linear_ratio", slope=-0.0111, intercept=0.818)
    per_epoch = 1000.0 / args.epochs
    for size in args.sizes:
        members = [GroupMember(METHODS.get(name)(METHODS.config(name)(),
                                                 schedule.resolve(size)),
                               CellRequest(size=size, seed=0, runs=args.runs))
                   for name in FIGURE1]
        alone = {m.method.name: cpu(lambda m=m: task.run(m.method, m.request))
                 for m in members}
        grouped = cpu(lambda members=members: list(task.run_group(members)))
        cells = ", ".join(f"{k} {v * per_epoch:.2f}" for k, v in alone.items())
        total = sum(alone.values())
        print(f"n={size}: the 4 Figure 1 cells alone {total * per_epoch:.2f} ms/epoch "
              f"({cells}); as one group {grouped * per_epoch:.2f} ms/epoch: "
              f"{total / grouped:.2f}x")
        trials = [GroupMember(METHODS.get("reverse_kd")(METHODS.config("reverse_kd")(),
                                                        0.2 * (i + 1)),
                              CellRequest(size=size, seed=9, runs=100, split="validation"))
                  for i in range(10)]
        alone_t = sum(cpu(lambda m=m: task.run(m.method, m.request)) for m in trials)
        batched = cpu(lambda trials=trials: list(task.run_group(trials, lambdas=True)))
        print(f"n={size}: 10 reverse-KD trials (100 runs) alone {alone_t * per_epoch:.2f} "
              f"ms/epoch, lambdas batched {batched * per_epoch:.2f} ms/epoch: "
              f"{alone_t / batched:.2f}x")


if __name__ == "__main__":
    main()
