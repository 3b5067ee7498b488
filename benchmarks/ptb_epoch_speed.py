"""Time per training epoch of each method on the CPU-scale PTB LSTM, as ratios to the
baseline's, all measured in one run (issue: serialized IMM <= 1.5x including its refresh
pass; sampled IMM with the paper's schedule, k = 10 every 5th batch, <= 3x; k = 10 on every
batch reported as measured), and the peak memory of one k-sample IMM step at k = 1 and
k = 20 (target: within 10%).

One epoch = one pass of Trainer.run_epoch over the first --tokens training tokens (the
CPU-scale model of specs/ptb.yaml: 2 x 200 LSTM, batch 20, unroll 35), so serialized
IMM's refresh (a full pass over the training text at the epoch's first step) is included.
Every method starts from the same initial weights. Peak memory: each k runs in a fresh
subprocess that sets everything up, takes one baseline step, then one k-sample IMM step;
the peak RSS (ru_maxrss) after the setup and after the IMM step are printed, and, for
contrast, the same k = 20 windows in one batched pass without the flat-memory
accumulation.

Usage: python benchmarks/ptb_epoch_speed.py [--data-dir DIR] [--tokens 30000]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import torch

from harness.registry import METHODS
from harness.tasks.base import make_generator
from harness.tasks.ptb_lstm.config import PtbLstmParams
from harness.tasks.ptb_lstm.corpus import build_bigram
from harness.tasks.ptb_lstm.sampler import ContextSampler
from harness.tasks.ptb_lstm.task import PtbLstmTask
from harness.tasks.ptb_lstm.train import Trainer
from harness.tasks.ptb_lstm.views import (
    LmViews,
    StaleModel,
    TrainContext,
    batchify,
    chunks,
    window_predictions,
)

CONFIGS = [
    ("baseline", "baseline", None, {}),
    ("noising", "noising", 0.25, {}),
    ("reverse_kd", "reverse_kd", 0.2, {}),
    ("imm_serialized (refresh once an epoch)", "imm_serialized", 0.2,
     {"refresh_every": "size"}),
    ("imm_sampled k=10 every 5th, own single sample (default)", "imm_sampled", 0.2,
     {"k": 10, "k_every": 5}),
    ("imm_sampled k=10 every 5th, sampled single sample", "imm_sampled", 0.2,
     {"k": 10, "k_every": 5, "single_sample": "sampled"}),
    ("imm_sampled k=10 every batch", "imm_sampled", 0.2, {"k": 10, "k_every": 1}),
]


def setup(data_dir: str | None, tokens: int):
    params = PtbLstmParams()
    task = PtbLstmTask(params, data_dir)
    train = task.train_stream(tokens)
    bigram = build_bigram(train.cpu(), task.vocab_size)
    sampler = ContextSampler(train, task.vocab_size, params.imm_window, pad=task.eos)
    data = batchify(train, params.batch_size)
    return params, task, bigram, sampler, data


def context(params, task, bigram, sampler, data, name: str) -> TrainContext:
    model = task.build_model((0, 0, 0))
    return TrainContext(
        params=params, model=model, bigram=bigram, sampler=sampler,
        generator=make_generator(task.device, "bench", name),
        steps_per_epoch=-(-(data.shape[1] - 1) // params.bptt),
        stale=StaleModel(data, params.bptt, task.vocab_size))


def epoch_seconds(args) -> list[tuple[str, float]]:
    params, task, bigram, sampler, data = setup(args.data_dir, args.tokens)
    times = []
    for label, name, lam, method_params in CONFIGS:
        method = METHODS.get(name)(METHODS.config(name)(**method_params), lam)
        ctx = context(params, task, bigram, sampler, data, label)
        trainer = Trainer(ctx, method, data, data[:, :10])
        start = time.perf_counter()
        trainer.run_epoch()
        times.append((label, time.perf_counter() - start))
        print(f"  {label}: {times[-1][1]:.1f} s", flush=True)
    return times


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def memory_probe(args) -> dict[str, float]:
    """Runs in a subprocess: one baseline step, then one k-sample step (or, with
    --batched, the same windows as one batched pass with no flat-memory accumulation)."""
    params, task, bigram, sampler, data = setup(args.data_dir, args.tokens)
    ctx = context(params, task, bigram, sampler, data, "memory")
    inputs, targets = next(iter(chunks(data, params.bptt)))
    state = ctx.model.zero_state(params.batch_size)
    baseline = METHODS.get("baseline")(METHODS.config("baseline")(), None)
    Trainer(ctx, baseline, data, data[:, :10]).step(LmViews(ctx, inputs, targets, state))
    before = peak_rss_mib()
    views = LmViews(ctx, inputs, targets, state)
    if args.batched:
        words, _ = views.distinct()
        positions = ctx.sampler.sample(words, args.probe_k, ctx.generator)
        probs = window_predictions(ctx.model, ctx.sampler.windows(positions.reshape(-1)))
        probs.sum().backward()
    else:
        imm = METHODS.get("imm_sampled")(METHODS.config("imm_sampled")(k=args.probe_k), 0.2)
        Trainer(ctx, imm, data, data[:, :10]).step(views)
    return {"setup_mib": before, "peak_mib": peak_rss_mib()}


def probe(args, k: int, batched: bool = False) -> dict[str, float]:
    cmd = [sys.executable, __file__, "--probe-k", str(k), "--tokens", str(args.tokens)]
    if args.data_dir:
        cmd += ["--data-dir", args.data_dir]
    if batched:
        cmd.append("--batched")
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--tokens", type=int, default=30000)
    parser.add_argument("--probe-k", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--batched", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    if args.probe_k is not None:
        print(json.dumps(memory_probe(args)))
        return
    print(f"time per epoch on the first {args.tokens} training tokens (CPU-scale model):")
    times = epoch_seconds(args)
    base = times[0][1]
    print("\n| method | s / epoch | ratio to baseline |\n|---|---|---|")
    for label, seconds in times:
        print(f"| {label} | {seconds:.1f} | {seconds / base:.2f}x |")
    print("\npeak RSS of one k-sample IMM step (fresh process each):")
    print("| k | peak after setup + baseline step (MiB) | peak after the IMM step (MiB) |")
    print("|---|---|---|")
    rows = [(f"{k}", probe(args, k)) for k in (1, 20)]
    rows.append(("20, one batched pass (no accumulation)", probe(args, 20, batched=True)))
    for label, mem in rows:
        print(f"| {label} | {mem['setup_mib']:.0f} | {mem['peak_mib']:.0f} |")
    k1, k20 = rows[0][1]["peak_mib"], rows[1][1]["peak_mib"]
    print(f"\nk=20 peak / k=1 peak: {k20 / k1:.3f} (target <= 1.10)")


if __name__ == "__main__":
    main()
