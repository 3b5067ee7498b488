"""Time per training epoch of each method on the CPU-scale PTB LSTM, as ratios to the
baseline's, all measured in one run, and the peak memory of one k-sample IMM step at
k = 1 and k = 20.

One epoch = one pass of Trainer.run_epoch over the first --tokens training tokens (the
CPU-scale model of specs/ptb.yaml: 2 x 200 LSTM, batch 20, unroll 35), so serialized
IMM's refresh (a full pass over the training text at the epoch's first step) is included.
Every method starts from the same initial weights. Peak memory: each k runs in a fresh
subprocess that sets everything up, takes one baseline step, then one k-sample IMM step;
the peak RSS (ru_maxrss) after the setup and after the IMM step are printed, and, for
contrast, the same k = 20 windows in one batched pass without the flat-memory
accumulation.

Usage: python benchmarks/ptb_epoch_speed.py [--data-dir DIR] [--tokens 30000]
       [--threads 1] [--json FILE] [--only KEY,KEY]
--json FILE writes {"ratio": {key: epoch ratio to the baseline}, "seconds": {...},
"peak_memory_ratio_k20_k1": m, "memory_mib": {...}, "settings": {...}}; ``imm_sampled`` is
the paper schedule (k = 10 every 5th batch) at the spec's defaults.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
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

# (key, label, method, lambda, method params)
CONFIGS = [
    ("baseline", "baseline", "baseline", None, {}),
    ("noising", "noising", "noising", 0.25, {}),
    ("reverse_kd", "reverse_kd", "reverse_kd", 0.2, {}),
    ("imm_serialized", "imm_serialized (refresh once an epoch, included)", "imm_serialized",
     0.2, {"refresh_every": "size"}),
    ("imm_sampled", "imm_sampled, paper schedule (k = 10 every 5th batch, own single sample)",
     "imm_sampled", 0.2, {"k": 10, "k_every": 5}),
    ("imm_sampled_fresh_single", "the same with a freshly sampled single sample",
     "imm_sampled", 0.2, {"k": 10, "k_every": 5, "single_sample": "sampled"}),
    ("imm_sampled_every_batch", "imm_sampled, k = 10 on every batch", "imm_sampled", 0.2,
     {"k": 10, "k_every": 1}),
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


def epoch_seconds(args) -> list[tuple[str, str, float]]:
    params, task, bigram, sampler, data = setup(args.data_dir, args.tokens)
    only = set(args.only.split(",")) | {"baseline"} if args.only else None
    times = []
    for key, label, name, lam, method_params in CONFIGS:
        if only is not None and key not in only:
            continue
        method = METHODS.get(name)(METHODS.config(name)(**method_params), lam)
        ctx = context(params, task, bigram, sampler, data, label)
        trainer = Trainer(ctx, method, data, data[:, :10])
        start = time.perf_counter()
        trainer.run_epoch()
        times.append((key, label, time.perf_counter() - start))
        print(f"  {label}: {times[-1][2]:.1f} s", flush=True)
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
    cmd = [sys.executable, __file__, "--probe-k", str(k), "--tokens", str(args.tokens),
           "--threads", str(args.threads)]
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
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--json", default=None, help="write the figures to this file")
    parser.add_argument("--only", default=None,
                        help="comma-separated config keys (the baseline always runs)")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory probes")
    parser.add_argument("--probe-k", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--batched", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.probe_k is not None:
        print(json.dumps(memory_probe(args)))
        return
    print(f"time per epoch on the first {args.tokens} training tokens (CPU-scale model, "
          f"{args.threads} thread(s)):")
    times = epoch_seconds(args)
    base = times[0][2]
    print("\n| method | s / epoch | ratio to baseline |\n|---|---:|---:|")
    for _, label, seconds in times:
        print(f"| {label} | {seconds:.1f} | {seconds / base:.2f}x |")
    out = {"ratio": {key: seconds / base for key, _, seconds in times[1:]},
           "seconds": {key: seconds for key, _, seconds in times},
           "settings": {"tokens": args.tokens, "threads": args.threads,
                        "torch": torch.__version__, "machine": platform.machine(),
                        "omp_num_threads": os.environ.get("OMP_NUM_THREADS")}}
    if not args.no_memory:
        print("\npeak RSS of one k-sample IMM step (fresh process each):")
        print("| k | peak after setup + baseline step (MiB) | peak after the IMM step (MiB) |")
        print("|---|---:|---:|")
        rows = [("1", probe(args, 1)), ("20", probe(args, 20)),
                ("20, one batched pass (no accumulation)", probe(args, 20, batched=True))]
        for label, mem in rows:
            print(f"| {label} | {mem['setup_mib']:.0f} | {mem['peak_mib']:.0f} |")
        k1, k20 = rows[0][1]["peak_mib"], rows[1][1]["peak_mib"]
        print(f"\nk=20 peak / k=1 peak: {k20 / k1:.3f} (target <= 1.10)")
        out["peak_memory_ratio_k20_k1"] = k20 / k1
        out["memory_mib"] = {"k1": rows[0][1], "k20": rows[1][1], "k20_batched": rows[2][1]}
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(out, f, indent=2)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
