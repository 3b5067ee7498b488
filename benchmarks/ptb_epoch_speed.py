"""Time per training epoch of each method on the CPU-scale PTB LSTM, as ratios to the
baseline's, all measured in one run, and the peak memory of one k-sample IMM step at
k = 1 and k = 20.

One epoch = one pass of Trainer.run_epoch over the first --tokens training tokens (the
CPU-scale model of specs/ptb_finetune.yaml: 2 x 200 LSTM, batch 20, unroll 35), so serialized
IMM's refresh (a full pass over the training text at the epoch's first step) is included.
Every method starts from the same initial weights. Each config runs in a fresh process
(so that no config inherits another's allocator state: a process's later epochs run up to
a quarter faster than its first), takes its first 6 steps untimed, then times one epoch;
the time is the CPU time of the single-threaded process (the machine is shared: wall time
is printed too). The baseline runs first and last, and the ratios are to the mean of the
two. Peak memory: each k runs in a fresh
subprocess that sets everything up, takes one baseline step, then one k-sample IMM step;
the resident memory is sampled every millisecond during the IMM step, and its peak at
k = 20 over its peak at k = 1 is the reported ratio (the growth above the step's start
is printed too), and, for contrast, the same k = 20 windows in one batched pass without
the flat-memory accumulation.

Usage: python benchmarks/ptb_epoch_speed.py [--data-dir DIR] [--tokens 30000]
       [--threads 1] [--json FILE] [--only KEY,KEY] [--options] [--no-memory]
--json FILE writes {"ratio": {key: epoch ratio to the baseline}, "seconds": {...} (CPU),
"wall_seconds": {...},
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
import threading
import time

import torch

from harness.registry import METHODS
from harness.tasks.ptb_lstm.config import PtbLstmParams
from harness.tasks.ptb_lstm.corpus import build_bigram
from harness.tasks.ptb_lstm.sampler import ContextSampler
from harness.tasks.ptb_lstm.task import PtbLstmTask
from harness.tasks.ptb_lstm.train import Trainer
from harness.tasks.ptb_lstm.views import (
    LmViews,
    TrainContext,
    batchify,
    chunks,
    window_predictions,
)

# (key, label, method, lambda, method params[, task params])
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
# --options: the approximations (task options, never the default): the paper schedule with
# one of them, and the joint clip for the methods whose two parts share a forward; and
# serialized IMM with less of its refresh pass kept (exact: the same numbers).
PAPER = {"k": 10, "k_every": 5}
APPROXIMATIONS = [
    ("approx_window10", "APPROX. imm_sampled, paper schedule, imm_window 10",
     "imm_sampled", 0.2, PAPER, {"imm_window": 10}),
    ("approx_half_words", "APPROX. imm_sampled, paper schedule, imm_word_fraction 0.5",
     "imm_sampled", 0.2, PAPER, {"imm_word_fraction": 0.5}),
    ("approx_joint_clip", "APPROX. imm_sampled, paper schedule, imm_joint_clip",
     "imm_sampled", 0.2, PAPER, {"imm_joint_clip": True}),
    ("approx_serialized_joint_clip", "APPROX. imm_serialized, imm_joint_clip",
     "imm_serialized", 0.2, {"refresh_every": "size"}, {"imm_joint_clip": True}),
    ("approx_reverse_kd_joint_clip", "APPROX. reverse_kd, imm_joint_clip", "reverse_kd", 0.2,
     {}, {"imm_joint_clip": True}),
    # Exact variants: serialized IMM with less of its refresh pass kept (same numbers).
    ("serialized_keep_outputs_only", "imm_serialized keeping top-layer outputs only "
     "(stale_cache_mib 40)", "imm_serialized", 0.2, {"refresh_every": "size"},
     {"stale_cache_mib": 40.0}),
    ("serialized_keep_nothing", "imm_serialized keeping nothing (stale_cache_mib 0)",
     "imm_serialized", 0.2, {"refresh_every": "size"}, {"stale_cache_mib": 0.0}),
]


def setup(data_dir: str | None, tokens: int, **task_params):
    params = PtbLstmParams(**task_params)
    task = PtbLstmTask(params, data_dir)
    train = task.train_stream(tokens)
    bigram = build_bigram(train.cpu(), task.vocab_size)
    sampler = ContextSampler(train, task.vocab_size, params.imm_window, pad=task.eos)
    data = batchify(train, params.batch_size)
    return params, task, bigram, sampler, data


def context(task, method, bigram, sampler, data) -> TrainContext:
    """A replicate's context exactly as a cell builds it (same initial weights for every
    method: seed parts (0, 0, 0))."""
    return task.train_context(method, (0, 0, 0), data, bigram, sampler)


WARM_STEPS = 6  # untimed steps of the same config first (k-sample and single-sample steps)


def time_config(args) -> dict[str, float]:
    """Runs in a subprocess of its own (same allocator history for every config): the
    config's first WARM_STEPS steps untimed, then one timed epoch from the same weights."""
    key, label, name, lam, method_params, *task_params = next(
        c for c in CONFIGS + APPROXIMATIONS if c[0] == args.config)
    params, task, bigram, sampler, data = setup(args.data_dir, args.tokens,
                                                **(task_params[0] if task_params else {}))
    method = METHODS.get(name)(METHODS.config(name)(**method_params), lam)
    warm_data = data[:, : WARM_STEPS * params.bptt + 1]
    warm = Trainer(context(task, method, bigram, sampler, warm_data), method, warm_data,
                   data[:, :10])
    warm.run_epoch()
    trainer = Trainer(context(task, method, bigram, sampler, data), method, data, data[:, :10])
    wall, cpu = time.perf_counter(), time.process_time()
    trainer.run_epoch()
    return {"cpu": time.process_time() - cpu, "wall": time.perf_counter() - wall}


def run_config(args, key: str) -> dict[str, float]:
    cmd = [sys.executable, __file__, "--config", key, "--tokens", str(args.tokens),
           "--threads", str(args.threads)]
    if args.data_dir:
        cmd += ["--data-dir", args.data_dir]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def epoch_seconds(args) -> tuple[list[tuple[str, str, float, float]], list[float]]:
    """Per config (key, label, CPU seconds, ratio to the baseline). Each config runs in
    a fresh process; the baseline runs first and last and its time is the mean of the
    two (the machine is shared: the two say how much it drifted)."""
    only = set(args.only.split(",")) if args.only else None
    pool = CONFIGS[1:] + (APPROXIMATIONS if args.options else [])
    configs = [c for c in pool if only is None or c[0] in only]
    first = run_config(args, "baseline")
    print(f"  baseline: {first['cpu']:.1f} s CPU ({first['wall']:.1f} s wall)", flush=True)
    found = {}
    for key, label, *_ in configs:
        found[key] = run_config(args, key)
        print(f"  {label}: {found[key]['cpu']:.1f} s CPU ({found[key]['wall']:.1f} s wall)",
              flush=True)
    last = run_config(args, "baseline")
    print(f"  baseline again: {last['cpu']:.1f} s CPU ({last['wall']:.1f} s wall)", flush=True)
    base = (first["cpu"] + last["cpu"]) / 2
    WALL.update({"baseline": (first["wall"] + last["wall"]) / 2,
                 **{k: v["wall"] for k, v in found.items()}})
    rows = [(key, label, found[key]["cpu"], found[key]["cpu"] / base)
            for key, label, *_ in configs]
    return rows, [first["cpu"], last["cpu"]]


WALL: dict[str, float] = {}


def float64_copy_clip(grads: list[torch.Tensor], limit: float) -> list[torch.Tensor]:
    """The previous clip (float64 copies of every gradient, the norm read back to the
    host), kept to time the clip against."""
    norm = torch.sqrt(sum((g.double() ** 2).sum() for g in grads))
    scale = min(1.0, limit / (float(norm) + 1e-6))
    return [g * scale for g in grads]


def clip_milliseconds(repeats: int = 30) -> dict[str, float] | None:
    """ms per call of the previous clip and of ``train.clipped`` on the CPU-scale model's
    gradient shapes, alternated in one process (None with code that predates it)."""
    try:
        from harness.tasks.ptb_lstm.train import clipped
    except ImportError:
        return None
    from harness.tasks.ptb_lstm.model import LstmLm

    params = list(LstmLm(10000, 200, 200, 2, 0.5, 0.1).parameters())
    gen = torch.Generator().manual_seed(0)
    grads = [torch.randn(p.shape, generator=gen) for p in params]
    total = {"float64_copies": 0.0, "foreach": 0.0}
    for _ in range(repeats):
        start = time.process_time()
        float64_copy_clip(grads, 5.0)
        total["float64_copies"] += time.process_time() - start
        copies = [g.clone() for g in grads]
        start = time.process_time()
        clipped(copies, 5.0)
        total["foreach"] += time.process_time() - start
    return {k: v / repeats * 1000 for k, v in total.items()}


def stale_milliseconds(args, rounds: int = 3) -> dict[str, float] | None:
    """ms per step of serialized IMM's Q_stale over the epoch's chunks, alternated in one
    process after one refresh: from the kept top-layer outputs (the stale decoder) and
    from nothing (the stale LSTM from its carried state, then the decoder, as the previous
    code did every step); from kept predictions it is a hand-over (no work). None with
    code that predates it."""
    try:
        from harness.tasks.ptb_lstm.stale import stale_probs
    except ImportError:
        return None
    params, task, bigram, sampler, data = setup(args.data_dir, args.tokens)
    method = METHODS.get("imm_serialized")(METHODS.config("imm_serialized")(), 0.2)
    ctx = context(task, method, bigram, sampler, data)
    stale = ctx.stale
    model = task.build_model((0, 0, 0))
    stale.refresh(model, ctx.restricted_rows)
    stale.kept = []  # not needed here
    total = {"kept_outputs": 0.0, "nothing": 0.0}
    with torch.no_grad():
        for _ in range(rounds):
            start = time.process_time()
            for hidden in stale.hidden:
                stale_probs(stale.model, hidden)
            total["kept_outputs"] += time.process_time() - start
            start, state = time.process_time(), None
            for inputs in stale.inputs:
                hidden, state = stale.model.hidden(inputs, state, dropout=False)
                stale_probs(stale.model, hidden)
            total["nothing"] += time.process_time() - start
    return {k: v / rounds / len(stale.inputs) * 1000 for k, v in total.items()}


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class RssWatch:
    """The process's resident memory sampled every millisecond by a thread while a block
    runs (torch releases the GIL in its kernels): its peak and its value at the start."""

    def __init__(self) -> None:
        self.page = os.sysconf("SC_PAGE_SIZE") / 2**20
        self.start = self.peak = self.now()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def now(self) -> float:
        with open("/proc/self/statm", encoding="ascii") as f:
            return int(f.read().split()[1]) * self.page

    def _watch(self) -> None:
        while not self._stop.wait(0.001):
            self.peak = max(self.peak, self.now())

    def __enter__(self) -> RssWatch:
        self.start = self.peak = self.now()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.now())


def memory_probe(args) -> dict[str, float]:
    """Runs in a subprocess: one baseline step, then one k-sample step (or, with
    --batched, the same windows as one batched pass with no flat-memory accumulation);
    the resident memory at the IMM step's start and its peak during the step."""
    params, task, bigram, sampler, data = setup(args.data_dir, args.tokens)
    imm = METHODS.get("imm_sampled")(METHODS.config("imm_sampled")(k=args.probe_k), 0.2)
    ctx = context(task, imm, bigram, sampler, data)
    inputs, targets = next(iter(chunks(data, params.bptt)))
    state = ctx.model.zero_state(params.batch_size)
    baseline = METHODS.get("baseline")(METHODS.config("baseline")(), None)
    Trainer(ctx, baseline, data, data[:, :10]).step(LmViews(ctx, inputs, targets, state))
    before = peak_rss_mib()
    views = LmViews(ctx, inputs, targets, state)
    trainer = Trainer(ctx, imm, data, data[:, :10])
    with RssWatch() as watch:
        if args.batched:
            words, _ = views.distinct()
            positions = ctx.sampler.sample(words, args.probe_k, ctx.generator)
            probs = window_predictions(ctx.model, ctx.sampler.windows(positions.reshape(-1)))
            probs.sum().backward()
        else:
            trainer.step(views)
    return {"setup_mib": before, "peak_mib": peak_rss_mib(), "step_start_mib": watch.start,
            "step_peak_mib": watch.peak}


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
    parser.add_argument("--options", action="store_true",
                        help="also time the approximation options and serialized IMM's "
                        "cache budgets (APPROXIMATIONS)")
    parser.add_argument("--probe-k", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--config", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--batched", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.probe_k is not None:
        print(json.dumps(memory_probe(args)))
        return
    if args.config is not None:
        print(json.dumps(time_config(args)))
        return
    print(f"time per epoch on the first {args.tokens} training tokens (CPU-scale model, "
          f"{args.threads} thread(s)):")
    rows, base = epoch_seconds(args)
    mean = sum(base) / len(base)
    print("\n| method | CPU s / epoch | ratio to baseline |\n|---|---:|---:|")
    print(f"| baseline (first and last: {base[0]:.1f} and {base[1]:.1f} s) | "
          f"{mean:.1f} | 1.00x |")
    for _, label, seconds, ratio in rows:
        print(f"| {label} | {seconds:.1f} | {ratio:.2f}x |")
    out = {"ratio": {key: ratio for key, _, _, ratio in rows},
           "seconds": {"baseline": mean, **{key: sec for key, _, sec, _ in rows}},
           "baseline_first_last": base,
           "wall_seconds": dict(WALL),
           "settings": {"tokens": args.tokens, "threads": args.threads,
                        "timing": "CPU time of the process",
                        "torch": torch.__version__, "machine": platform.machine(),
                        "omp_num_threads": os.environ.get("OMP_NUM_THREADS")}}
    stale = stale_milliseconds(args)
    if stale is not None:
        print(f"\nserialized IMM's Q_stale per step: {stale['kept_outputs']:.1f} ms from the "
              f"kept top-layer outputs, {stale['nothing']:.1f} ms from nothing (the stale "
              "LSTM each step); from kept predictions: none")
        out["stale_ms"] = stale
    clip = clip_milliseconds()
    if clip is not None:
        print(f"\nclip of the CPU-scale model's gradients: {clip['float64_copies']:.1f} ms a call "
              f"with float64 copies (the previous code), {clip['foreach']:.1f} ms with the "
              "float64 foreach norm")
        out["clip_ms"] = clip
    if not args.no_memory:
        print("\nresident memory of one k-sample IMM step (fresh process each; MiB):")
        print("| k | peak of the setup + a baseline step | at the step's start | peak during "
              "the step (sampled every ms) |")
        print("|---|---:|---:|---:|")
        rows = [("1", probe(args, 1)), ("20", probe(args, 20)),
                ("20, one batched pass (no accumulation)", probe(args, 20, batched=True))]
        for label, mem in rows:
            print(f"| {label} | {mem['setup_mib']:.0f} | {mem['step_start_mib']:.0f} | "
                  f"{mem['step_peak_mib']:.0f} |")
        k1, k20 = rows[0][1], rows[1][1]
        ratio = k20["step_peak_mib"] / k1["step_peak_mib"]
        growth = ((k20["step_peak_mib"] - k20["step_start_mib"])
                  / max(k1["step_peak_mib"] - k1["step_start_mib"], 1.0))
        print(f"\nk=20 / k=1 peak during the step: {ratio:.3f} (target <= 1.10); "
              f"of the growth above the step's start: {growth:.2f}")
        out["peak_memory_ratio_k20_k1"] = ratio
        out["step_growth_ratio_k20_k1"] = growth
        out["memory_mib"] = {"k1": k1, "k20": k20, "k20_batched": rows[2][1]}
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(out, f, indent=2)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
