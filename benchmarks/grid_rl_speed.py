"""Speed of the grid RL task: the whole Figure 2 spec (15 sizes x 6 methods x 30 runs) end
to end, and the per-epoch cost of one batched cell.

Usage:  python benchmarks/grid_rl_speed.py [--spec specs/grid_rl.yaml] [--workers 2]
                                           [--skip-sweep] [--epochs 200]

The sweep runs `harness run SPEC --fresh --workers N` in a temporary directory (MLflow
tracking and the report included, as a user would run it) and reports its wall time
against the 180 s target of the grid RL issue.
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
TARGET_S = 180.0



def time_cell(method_name: str, epochs: int, runs: int = 30) -> float:
    """Milliseconds per epoch of one cell of ``runs`` batched replicates."""
    torch.set_num_threads(1)
    task = TASKS.get("grid_rl")(TASKS.config("grid_rl")())
    lam = None if method_name == "baseline" else 0.25
    method = METHODS.get(method_name)(METHODS.config(method_name)(), lam)
    task.run(method, CellRequest(size=5, seed=0, runs=runs))  # warm-up
    start = time.perf_counter()
    task.run(method, CellRequest(size=epochs, seed=0, runs=runs))
    return 1000.0 * (time.perf_counter() - start) / epochs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spec", type=Path, default=ROOT / "specs" / "grid_rl.yaml")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--skip-sweep", action="store_true")
    parser.add_argument("--epochs", type=int, default=200)
    args = parser.parse_args()

    for name in ("baseline", "imm_sampled"):
        ms = time_cell(name, args.epochs)
        print(f"one {name} cell, 30 replicates x {args.epochs} epochs: {ms:.2f} ms per epoch "
              f"(50-step rollout + update, all replicates)")
    if not args.skip_sweep:
        wall = time_sweep(args.spec.resolve(), args.workers)
        verdict = "within" if wall <= TARGET_S else "OVER"
        print(f"{args.spec.name} end to end with --workers {args.workers}: {wall:.1f} s "
              f"({verdict} the {TARGET_S:.0f} s target, {wall / TARGET_S:.2f} of it)")


if __name__ == "__main__":
    main()
