"""The PTB speed figures on whatever device there is (CUDA when available), in under 8
minutes: (1) the epoch ratios of benchmarks/ptb_epoch_speed.py at CPU scale (2 x 200
LSTM, the first --tokens training tokens), each method's peak memory, the k = 20 / k = 1
peak of one k-sample step, and how many host synchronisations each method's steps make
(CUDA: torch.cuda.set_sync_debug_mode); (2) one timed slice of the paper-scale model
(2 x 1500 LSTM, dropout 0.65, all of the training text): seconds per step of each method
over --paper-steps steps after warm-up steps, serialized IMM's refresh pass timed apart
and amortised over an epoch's steps, and peak memory.

Every method starts from the same weights; times are wall seconds with the device
synchronised around each timed block. A --budget-s guard skips what would not finish in
time (said in the output). --smoke: a tiny model and a few thousand tokens, to check the
script on a CPU in seconds (its numbers mean nothing).

Usage: python benchmarks/ptb_gpu.py [--data-dir DIR] [--json FILE] [--smoke]
       [--tokens 30000] [--paper-steps 20] [--budget-s 450]
"""

from __future__ import annotations

import argparse
import json
import math
import time
import warnings
from dataclasses import dataclass
from typing import Any

import torch

from harness.registry import METHODS
from harness.tasks.ptb_lstm.config import PtbLstmParams
from harness.tasks.ptb_lstm.corpus import build_bigram
from harness.tasks.ptb_lstm.sampler import ContextSampler
from harness.tasks.ptb_lstm.task import PtbLstmTask
from harness.tasks.ptb_lstm.train import Trainer
from harness.tasks.ptb_lstm.views import LmViews, batchify, chunks

# (key, method, lambda, method params): the keys of ptb_epoch_speed.py's --json
METHODS_TIMED = [
    ("baseline", "baseline", None, {}),
    ("noising", "noising", 0.25, {}),
    ("reverse_kd", "reverse_kd", 0.2, {}),
    ("imm_serialized", "imm_serialized", 0.2, {"refresh_every": "size"}),
    ("imm_sampled", "imm_sampled", 0.2, {"k": 10, "k_every": 5}),
    ("imm_sampled_every_batch", "imm_sampled", 0.2, {"k": 10, "k_every": 1}),
]
CPU_SCALE: dict[str, Any] = {}
PAPER_SCALE = {"emb_size": 1500, "hidden_size": 1500, "dropout": 0.65}
SMOKE = {"emb_size": 16, "hidden_size": 16, "imm_window": 8, "imm_k": 4}


@dataclass
class Setup:
    params: PtbLstmParams
    task: PtbLstmTask
    bigram: Any
    sampler: ContextSampler
    data: torch.Tensor


def setup(data_dir: str | None, tokens: int, **overrides: Any) -> Setup:
    params = PtbLstmParams(**overrides)
    task = PtbLstmTask(params, data_dir)
    train = task.train_stream(tokens)
    return Setup(params, task, build_bigram(train.cpu(), task.vocab_size),
                 ContextSampler(train, task.vocab_size, params.imm_window, pad=task.eos),
                 batchify(train, params.batch_size))


def method_of(name: str, lam: float | None, settings: dict) -> Any:
    return METHODS.get(name)(METHODS.config(name)(**settings), lam)


def trainer(s: Setup, name: str, lam: float | None, settings: dict) -> Trainer:
    method = method_of(name, lam, settings)
    ctx = s.task.train_context(method, (0, 0, 0), s.data, s.bigram, s.sampler)
    return Trainer(ctx, method, s.data, s.data[:, :10])


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()


def peak_mib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else None


class Stepper:
    """Training steps over an epoch's chunks in order, from a trainer's fresh start."""

    def __init__(self, t: Trainer) -> None:
        self.t = t
        self.state = t.model.zero_state(t.train_data.shape[0])
        t.ctx.stale.reset_state()
        t.model.train()
        self.pairs = iter(zip(t.ctx.plans, chunks(t.train_data, t.p.bptt), strict=True))

    def run(self, count: int) -> None:
        for _ in range(count):
            plan, (inputs, targets) = next(self.pairs)
            views = LmViews(self.t.ctx, inputs, targets, self.state, plan)
            self.t.step(views)
            self.state = views.state_out
            self.t.state.step += 1


def timed(device: torch.device, block) -> float:
    sync(device)
    start = time.perf_counter()
    block()
    sync(device)
    return time.perf_counter() - start


def count_syncs(stepper: Stepper, device: torch.device, steps: int) -> float | None:
    """Host synchronisations per step (CUDA only), over the next ``steps`` steps."""
    if device.type != "cuda":
        return None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            stepper.run(steps)
            sync(device)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(w.message) for w in caught) / steps


def cpu_scale(args: argparse.Namespace, deadline: float) -> dict[str, Any]:
    """Epoch ratios, peak memory and synchronisations at CPU scale, on the device."""
    s = setup(args.data_dir, args.tokens, **(SMOKE if args.smoke else CPU_SCALE))
    device = s.task.device
    out: dict[str, Any] = {"seconds": {}, "peak_mib": {}, "syncs_per_step": {},
                           "skipped": []}
    for key, name, lam, settings in METHODS_TIMED:
        if time.perf_counter() > deadline:
            out["skipped"].append(key)
            continue
        Stepper(trainer(s, name, lam, settings)).run(3)  # warm-up (kernels, allocator)
        t = trainer(s, name, lam, settings)
        reset_peak(device)
        out["seconds"][key] = timed(device, t.run_epoch)
        out["peak_mib"][key] = peak_mib(device)
        stepper = Stepper(trainer(s, name, lam, settings))
        stepper.run(1)  # step 0 (serialized IMM's refresh: once an epoch) not counted
        out["syncs_per_step"][key] = count_syncs(stepper, device, 6)
        print(f"  cpu scale, {key}: {out['seconds'][key]:.2f} s/epoch, syncs/step "
              f"{out['syncs_per_step'][key]}", flush=True)
    base = out["seconds"]["baseline"]
    out["ratio"] = {k: v / base for k, v in out["seconds"].items() if k != "baseline"}
    peaks = {}
    for k in (1, 20):
        stepper = Stepper(trainer(s, "imm_sampled", 0.2, {"k": k}))
        stepper.run(1)  # warm-up
        reset_peak(device)
        stepper.run(1)  # a k-sample step (k_every = 1)
        sync(device)
        peaks[k] = peak_mib(device)
    if peaks[1] is not None:
        out["peak_memory_ratio_k20_k1"] = peaks[20] / peaks[1]
    return out


def paper_scale(args: argparse.Namespace, deadline: float) -> dict[str, Any]:
    """Seconds per step of each method on the paper-scale model (one slice)."""
    overrides = SMOKE if args.smoke else {**PAPER_SCALE, "stale_cache_mib": args.stale_cache_mib}
    s = setup(args.data_dir, args.paper_tokens, **overrides)
    device = s.task.device
    spe = len(list(chunks(s.data, s.params.bptt)))
    out: dict[str, Any] = {"step_seconds": {}, "peak_mib": {}, "steps_per_epoch": spe,
                           "skipped": []}
    for key, name, lam, settings in METHODS_TIMED:
        if time.perf_counter() > deadline:
            out["skipped"].append(key)
            continue
        stepper = Stepper(trainer(s, name, lam, settings))
        first = timed(device, lambda stepper=stepper: stepper.run(1))  # + the refresh
        stepper.run(args.warm_steps)
        reset_peak(device)
        seconds = timed(device, lambda stepper=stepper: stepper.run(args.paper_steps))
        out["step_seconds"][key] = seconds / args.paper_steps
        out["peak_mib"][key] = peak_mib(device)
        if name == "imm_serialized":
            out["refresh_seconds"] = max(first - out["step_seconds"][key], 0.0)
        print(f"  paper scale, {key}: {out['step_seconds'][key]:.3f} s/step", flush=True)
    base = out["step_seconds"]["baseline"]
    ratio = {k: v / base for k, v in out["step_seconds"].items() if k != "baseline"}
    if "imm_serialized" in ratio and "refresh_seconds" in out:  # the refresh, amortised
        ratio["imm_serialized"] += out["refresh_seconds"] / spe / base
    out["ratio"] = ratio
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--json", default=None)
    ap.add_argument("--smoke", action="store_true", help="tiny model, seconds on a CPU")
    ap.add_argument("--tokens", type=int, default=30000)
    ap.add_argument("--paper-tokens", type=int, default=929589)
    ap.add_argument("--paper-steps", type=int, default=20)
    ap.add_argument("--warm-steps", type=int, default=5)
    ap.add_argument("--stale-cache-mib", type=float, default=32768.0,
                    help="serialized IMM's kept refresh outputs at paper scale (GPU memory)")
    ap.add_argument("--budget-s", type=float, default=450.0)
    args = ap.parse_args()
    if args.smoke:
        args.tokens, args.paper_tokens = min(args.tokens, 4000), min(args.paper_tokens, 4000)
        args.paper_steps, args.warm_steps = min(args.paper_steps, 3), min(args.warm_steps, 1)
    begin = time.perf_counter()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    info = {"device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
            "torch": torch.__version__, "smoke": args.smoke,
            "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
            "matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32}
    print(f"device: {info['device']}", flush=True)
    # The CPU-scale part gets 40% of the budget, the paper-scale slice the rest.
    small = cpu_scale(args, begin + 0.4 * args.budget_s)
    large = paper_scale(args, begin + args.budget_s)
    out = {"info": info, "cpu_scale": small, "paper_scale": large,
           "total_seconds": time.perf_counter() - begin}
    print(json.dumps(out, indent=2))
    for part in ("cpu_scale", "paper_scale"):
        bad = [k for k, v in out[part]["ratio"].items() if not math.isfinite(v)]
        if bad:
            raise SystemExit(f"{part}: non-finite ratios {bad}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
