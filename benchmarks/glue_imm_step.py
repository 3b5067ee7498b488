"""The GLUE BERT task's real training steps, timed per method in one run (CPU scale).

For each GLUE task of a spec (default specs/glue.yaml: MiniLM, its max_length, batch size,
IMM positions and training subset), every method's replicate is prepared exactly as a
cell does (same checkpoint, seeded heads, same training subset) and runs the SAME first
training batches through ``Trainer.step`` (forward, the method's loss parts, separately
clipped backward passes, AdamW): ``mlm`` (task + MLM), ``imm_sampled`` with k = 5
(+ ``views.induced(5)``: the sampled contexts' causal predictions in one batched pass, the
crosstalk backward), and with ``--all`` the other methods. serialized IMM's refresh (its
stale induced table, once per epoch) is timed apart from its steps.

Usage: python benchmarks/glue_imm_step.py [--spec specs/glue.yaml] [--steps 8]
       [--threads 1] [--all | --methods baseline,...] [--data-dir DIR]
       [--no-imm] [--precisions fp32,bf16]
The issue's target: the IMM step (k = 5) at most 3x the MLM step. With ``--precisions``
the whole timing runs once per precision (the encoder in float32, or under bfloat16
autocast) and the last lines give each method's step time as a ratio between them: on a
CPU without AVX512-BF16, bfloat16 is emulated and slower.
"""

from __future__ import annotations

import argparse
import itertools
import os
import time
from pathlib import Path

import torch

from harness.registry import METHODS
from harness.spec import load_spec
from harness.tasks.base import stable_seed
from harness.tasks.glue_bert.config import GlueBertParams
from harness.tasks.glue_bert.corpus import splits
from harness.tasks.glue_bert.task import GlueBertTask
from harness.tasks.glue_bert.train import Trainer

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


def method(name: str, k: int):
    params = METHODS.config(name)(**({"k": k} if name == "imm_sampled" else {}))
    return METHODS.get(name)(params, None if name in ("baseline", "mlm") else 0.2)


def clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def since(start: tuple[float, float]) -> tuple[float, float]:
    now = clock()
    return now[0] - start[0], now[1] - start[1]


def time_method(task: GlueBertTask, glue_task: str, name: str, k: int, size: int,
                steps: int) -> tuple[tuple[float, float], tuple[float, float]]:
    """((wall, CPU) seconds of ``steps`` training steps after one warm-up step,
    (wall, CPU) seconds of the warm-up step when it is serialized IMM's first refresh)."""
    train_split, _ = splits(glue_task, size, 0, "test", task.data_dir, 0.1)
    seed_parts = (glue_task, 0, size, 0)
    m = method(name, k)
    _, ctx, gens = task.prepare(glue_task, m, seed_parts, train_split)
    trainer = Trainer(ctx, m, gens)
    batches = trainer.batches()[: steps + 1]
    if len(batches) < steps + 1:
        raise SystemExit(f"{glue_task}: only {len(batches)} batches; lower --steps")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(stable_seed("bench", glue_task))
        trainer.model.train()
        start = clock()
        trainer.step(batches[0])  # warm-up (serialized IMM: the first refresh)
        refresh = since(start) if name == "imm_serialized" else (0.0, 0.0)
        start = clock()
        for index in batches[1:]:
            trainer.step(index)
        return since(start), refresh


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spec", default=str(ROOT / "specs" / "glue.yaml"))
    ap.add_argument("--tasks", default=None, help="comma-separated; default: the spec's")
    ap.add_argument("--steps", type=int, default=8, help="timed steps per method and task")
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1, help="1 = as a --workers cell runs")
    ap.add_argument("--all", action="store_true", help="also the other methods")
    ap.add_argument("--methods", default=None,
                    help="comma-separated methods to time besides mlm and imm_sampled "
                    "(e.g. baseline)")
    ap.add_argument("--data-dir", default=os.environ.get("HARNESS_DATA_DIR") or str(DATA))
    ap.add_argument("--no-imm", action="store_true",
                    help="leave imm_sampled out (its pass holds several GB)")
    ap.add_argument("--precisions", default=None,
                    help="comma-separated, e.g. fp32,bf16 (default: the spec's precision)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    spec = load_spec(args.spec)
    params = spec.task.params
    if args.tasks:
        params = params.model_copy(update={"tasks": args.tasks.split(",")})
    precisions = args.precisions.split(",") if args.precisions else [params.precision]
    cpu = {p: time_spec(params.model_copy(update={"precision": p}), spec.sizes[0], args)
           for p in precisions}
    for first, other in itertools.pairwise(precisions):
        print(f"{other} / {first}, CPU time per step: " + ", ".join(
            f"{name} {cpu[other][name] / cpu[first][name]:.2f}x" for name in cpu[first]))


def time_spec(params: GlueBertParams, size: int, args: argparse.Namespace) -> dict[str, float]:
    """Time every method's steps under ``params``; returns CPU seconds per method."""
    task = GlueBertTask(params, args.data_dir)
    names = ["mlm"] if args.no_imm else ["mlm", "imm_sampled"]
    if args.all:
        names += ["baseline", "noising", "reverse_kd", "imm_serialized"]
    elif args.methods:
        names += [n for n in args.methods.split(",") if n not in names]
    print(f"{params.model}, {params.precision}, max_length {params.max_length}, "
          f"batch {params.batch_size}, "
          f"imm_fraction {params.imm_fraction}, imm_max_positions {params.imm_max_positions}, "
          f"training subset {size}, {args.steps} steps after a warm-up, {args.threads} "
          f"thread(s), device {task.device}")
    print("ms/step as wall time and as CPU time (on a machine shared with other jobs, the "
          "CPU time of this single-threaded process is the quiet-machine wall time)")
    totals = {name: [0.0, 0.0] for name in names}
    for glue_task in params.tasks:
        times = {}
        for name in names:
            times[name], refresh = time_method(task, glue_task, name, args.k, size, args.steps)
            totals[name] = [a + b for a, b in zip(totals[name], times[name], strict=True)]
            wall, cpu = (1e3 * t / args.steps for t in times[name])
            extra = (f"  (+ refresh of the stale table: {refresh[0]:.1f} s wall, "
                     f"{refresh[1]:.1f} s CPU)" if name == "imm_serialized" else "")
            label = f"imm_sampled k={args.k}" if name == "imm_sampled" else name
            print(f"  {glue_task:5s} {label:16s} {wall:7.0f} wall {cpu:7.0f} CPU ms/step  = "
                  f"{times[name][1] / times['mlm'][1]:5.2f}x mlm (CPU){extra}")
    if "imm_sampled" in totals:
        wall, cpu = (totals["imm_sampled"][i] / totals["mlm"][i] for i in (0, 1))
        print(f"all tasks: imm_sampled (k={args.k}) step / mlm step = {cpu:.2f}x by CPU "
              f"time, {wall:.2f}x by wall time (target <= 3x)")
    return {name: total[1] for name, total in totals.items()}


if __name__ == "__main__":
    main()
