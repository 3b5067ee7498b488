"""Training of the LSTM LM: truncated BPTT with carried, detached state; SGD; the primary
gradient and the regulariser's gradient clipped separately, then added (App. D.2.2).

Epoch end: validation perplexity; no improvement -> lr *= lr_decay and the best weights
are restored; stop after max_decays decays or max_epochs. The best weights are loaded
before returning (the authors' code tested the last weights; not copied here, nor its
skipping of batch 0 in every epoch).

Fine-tuning mode (``finetune_below``): every method trains with the baseline objective
until validation perplexity falls below the threshold; then the lr is reset to
``finetune_lr`` and the regularised methods add their term. The reset applies to the
baseline too, so that the baseline is the control for it: at CPU scale the reset alone is
worth 7 perplexity points (benchmarks/ptb_curve.py), which a reset for the regularised
methods only would credit to the regulariser.

Gradients come from ``harness.tasks.ptb_lstm.objectives`` (each method's exact fused
path); the clip and the check for a non-finite loss stay on the device (the first bad
step is remembered there and raised as ``Diverged`` at the epoch's end), so that a GPU
step never waits for a value to reach the host.

Checkpoints (every epoch, when a path is given): model, lr, decays, epoch, best weights
and perplexity, the method, host-sampling and dropout generator states, the serialized snapshot's
weights (its induced table is recomputed on resume: deterministic) and the history. Each
epoch starts from a zero state, so an epoch boundary is a complete resumption point.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from harness.atomic import fresh_file, refuse_link
from harness.errors import Diverged
from harness.methods.base import Method
from harness.tasks.kit import FiniteWatch, ProgressMeter, clip_norm_, model_copy
from harness.tasks.ptb_lstm.evaluate import batched_ppl
from harness.tasks.ptb_lstm.objectives import step_gradients
from harness.tasks.ptb_lstm.plan import plan_batches
from harness.tasks.ptb_lstm.views import LmViews, TrainContext, chunks


@dataclass
class TrainState:
    lr: float
    epoch: int = 0
    step: int = 0
    decays: int = 0
    best_val: float = math.inf
    best_weights: dict[str, Tensor] | None = None
    term_on: bool = True
    done: bool = False
    history: list[float] = field(default_factory=list)


def clipped(grads: list[Tensor], limit: float) -> list[Tensor]:
    """The gradients scaled in place to global norm at most ``limit``, the norm in
    float64 (the kit's clip; the same float32 scale as the float64 reference)."""
    return list(clip_norm_(grads, limit, norm_dtype=torch.float64))


def _clone(weights: dict[str, Tensor]) -> dict[str, Tensor]:
    return {k: v.detach().clone() for k, v in weights.items()}


class Trainer:
    def __init__(self, ctx: TrainContext, method: Method, train_data: Tensor,
                 valid: Tensor, checkpoint: Path | None = None,
                 progress: ProgressMeter | None = None) -> None:
        self.ctx, self.method = ctx, method
        self.p = ctx.params
        self.model = ctx.model
        self.train_data, self.valid = train_data, valid
        self.path = checkpoint
        self.progress = progress
        self.plain = Method(None, None)
        self.state = TrainState(lr=self.p.lr, term_on=self.p.finetune_below is None)
        if ctx.plans is None:
            ctx.plans = plan_batches(train_data, self.p.bptt, ctx.bigram)
        self.fused = True  # False: autograd on the method's loss parts (the reference)
        self.finite = FiniteWatch()  # the first step with a non-finite loss, on the device

    # ---- checkpoints ---------------------------------------------------------------
    def save(self) -> None:
        if self.path is None:
            return
        s, ctx = self.state, self.ctx
        blob = {
            "model": self.model.state_dict(),
            "state": {k: getattr(s, k) for k in
                      ("lr", "epoch", "step", "decays", "best_val", "term_on", "done",
                       "history")},
            "best_weights": s.best_weights,
            "generator": ctx.generator.get_state(),
            "host_generator": None if ctx.host_generator is None
            else ctx.host_generator.get_state(),
            "dropout_generator": self.model.dropout_generator.get_state(),
            "stale": None if ctx.stale.model is None else ctx.stale.model.state_dict(),
            "stale_ratios": ctx.stale.ratio is not None,
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        refuse_link(self.path)
        with fresh_file(tmp) as handle:  # never written through a link
            torch.save(blob, handle)
        os.replace(tmp, self.path)

    def load(self) -> bool:
        if self.path is None or not self.path.exists():
            return False
        blob = torch.load(self.path, map_location=self.train_data.device, weights_only=False)
        self.model.load_state_dict(blob["model"])
        for k, v in blob["state"].items():
            setattr(self.state, k, v)
        self.state.best_weights = blob["best_weights"]
        self.ctx.generator.set_state(blob["generator"])
        if blob.get("host_generator") is not None and self.ctx.host_generator is not None:
            self.ctx.host_generator.set_state(blob["host_generator"])
        self.model.dropout_generator.set_state(blob["dropout_generator"])
        if blob["stale"] is not None:
            snapshot = model_copy(self.model)
            snapshot.load_state_dict(blob["stale"])
            ratios = blob.get("stale_ratios", True)
            self.ctx.stale.refresh(snapshot, self.ctx.restricted_rows if ratios else None)
            self.ctx.snapshot.value = self.ctx.stale
        return True

    # ---- training ------------------------------------------------------------------
    def step(self, views: LmViews) -> None:
        s, p = self.state, self.p
        params = [q for q in self.model.parameters() if q.requires_grad]
        grads = step_gradients(self.method, views, s.step, s.term_on, params,
                               joint=p.imm_joint_clip, fused=self.fused)
        self.finite.watch(s.step, grads.primary_value, grads.term_value)
        update = clipped(grads.primary, p.clip)
        if grads.term is not None:
            torch._foreach_add_(update, clipped(grads.term, p.imm_clip))
        with torch.no_grad():
            torch._foreach_mul_(update, s.lr)
            torch._foreach_sub_(params, update)

    def check_finite(self) -> None:
        self.finite.check(f"loss at epoch {self.state.epoch}")

    def run_epoch(self) -> None:
        self.model.train()
        state = self.model.zero_state(self.train_data.shape[0])
        self.ctx.stale.reset_state()
        assert self.ctx.plans is not None
        s, steps = self.state, len(self.ctx.plans)
        for i, (plan, (inputs, targets)) in enumerate(zip(
                self.ctx.plans, chunks(self.train_data, self.p.bptt), strict=True)):
            views = LmViews(self.ctx, inputs, targets, state, plan)
            views.epoch = s.epoch
            views.progress = min(1.0, (s.epoch + i / steps) / self.p.max_epochs)
            self.step(views)
            state = views.state_out if views.state_out is not None else state
            s.step += 1
            if self.progress is not None:
                self.progress.update(views.progress)
        self.check_finite()

    def end_epoch(self) -> None:
        s, p = self.state, self.p
        val = batched_ppl(self.model, self.valid, p.eval_batch_size, p.bptt, self.plain, None)
        if not math.isfinite(val):
            raise Diverged(f"non-finite validation perplexity at epoch {s.epoch}")
        s.history.append(val)
        s.epoch += 1
        if val < s.best_val:
            s.best_val = val
            s.best_weights = _clone(self.model.state_dict())
        else:
            s.lr *= p.lr_decay
            s.decays += 1
            self.model.load_state_dict(s.best_weights)
        if not s.term_on and p.finetune_below is not None and val < p.finetune_below:
            s.term_on = True
            s.lr = p.finetune_lr
        if s.decays >= p.max_decays or s.epoch >= p.max_epochs:
            s.done = True
            self.model.load_state_dict(s.best_weights)

    def train(self) -> TrainState:
        self.load()
        while not self.state.done:
            self.run_epoch()
            self.end_epoch()
            self.save()
            if self.progress is not None:
                self.progress.update(min(1.0, self.state.epoch / self.p.max_epochs))
        if self.progress is not None:  # the whole history: also the epochs before a resume
            for epoch, val in enumerate(self.state.history, 1):
                self.progress.curve(epoch, val_ppl=val)
        if self.state.best_weights is not None:
            self.model.load_state_dict(self.state.best_weights)
        return self.state


def describe(state: TrainState) -> dict[str, Any]:
    return {"epochs": state.epoch, "decays": state.decays, "best_val": state.best_val,
            "lr": state.lr, "history": list(state.history)}
