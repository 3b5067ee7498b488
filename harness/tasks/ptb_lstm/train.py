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

Warm starts (``harness.tasks.base.WarmStart``): a warm-up trains until its rule holds
(``valid_ppl_below``: the first epoch whose validation perplexity is below the value;
``epochs``: that many epochs; ``converged``: the stopping rule above) and writes its
state in the checkpoint's format; a cell that starts from it takes the model, the
schedule (lr, epoch, step, decays, best weights, history) and the dropout stream, and the
method's own random streams only when the warm-up trained the same method (its stream is
then the same one). With a fork ``lr`` the lr is reset and the term switched on, as
``finetune_below`` does within one run (the two give the same numbers, tested); without
one the schedule carries on (a warm-up's own method continues exactly as one run).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from harness.atomic import fresh_file, refuse_link, temp_prefix
from harness.errors import Diverged, WarmUpNotReached
from harness.methods.base import Method
from harness.tasks.base import WarmStart
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
    def blob(self) -> dict[str, Any]:
        """The complete training state (a checkpoint, or a warm-up's saved state)."""
        s, ctx = self.state, self.ctx
        return {
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

    def save(self) -> None:
        if self.path is not None:
            write_state(self.blob(), self.path)

    def load(self) -> bool:
        """Resume from this run's own checkpoint, if there is one."""
        if self.path is None or not self.path.exists():
            return False
        self._restore(self._read(self.path), streams=True)
        return True

    def fork(self, path: Path, lr: float | None, same_method: bool = False) -> None:
        """Start from a warm-up's saved state (see the module docstring)."""
        blob = self._read(path)
        mine = {k: tuple(v.shape) for k, v in self.model.state_dict().items()}
        theirs = {k: tuple(v.shape) for k, v in blob["model"].items()}
        if mine != theirs:
            raise ValueError(f"warm start: the warm-up's model ({path}) has other shapes than "
                             "this cell's (emb_size, hidden_size, layers, vocabulary or "
                             "tie_weights differ)")
        self._restore(blob, streams=same_method)
        if lr is not None:
            self.state.lr, self.state.term_on = lr, True

    def _read(self, path: Path) -> dict[str, Any]:
        return torch.load(path, map_location=self.train_data.device, weights_only=False)

    def _restore(self, blob: dict[str, Any], streams: bool) -> None:
        """Model, schedule and dropout stream; with ``streams`` also the method's random
        streams and the serialized snapshot."""
        self.model.load_state_dict(blob["model"])
        for k, v in blob["state"].items():
            setattr(self.state, k, v)
        self.state.best_weights = blob["best_weights"]
        self.model.dropout_generator.set_state(blob["dropout_generator"])
        if not streams:
            return
        self.ctx.generator.set_state(blob["generator"])
        if blob.get("host_generator") is not None and self.ctx.host_generator is not None:
            self.ctx.host_generator.set_state(blob["host_generator"])
        if blob["stale"] is not None:
            snapshot = model_copy(self.model)
            snapshot.load_state_dict(blob["stale"])
            ratios = blob.get("stale_ratios", True)
            self.ctx.stale.refresh(snapshot, self.ctx.restricted_rows if ratios else None)
            self.ctx.snapshot.value = self.ctx.stale

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

    def train(self, warm: WarmStart | None = None, run: int = 0) -> TrainState:
        """Train to the end (or, for a warm-up, until its rule holds, then save its state);
        the best weights are in the model afterwards."""
        stop = warm.stop if warm is not None else None
        if not self.load() and warm is not None and warm.start is not None:
            self.fork(Path(warm.start) / f"run{run}.pt", warm.lr, warm.same_method)
        while not self.state.done and not (stop and rule_met(self.state, stop)):
            self.run_epoch()
            self.end_epoch()
            self.save()
            if self.progress is not None:
                self.progress.update(min(1.0, self.state.epoch / self.p.max_epochs))
        if stop is not None and warm is not None and warm.save is not None:
            if not rule_met(self.state, stop):
                raise WarmUpNotReached(not_reached(self.state, stop))
            write_state(self.blob(), Path(warm.save) / f"run{run}.pt", own_folder=True)
        if self.progress is not None:  # the whole history: also the epochs before a resume
            for epoch, val in enumerate(self.state.history, 1):
                self.progress.curve(epoch, val_ppl=val)
        if self.state.best_weights is not None:
            self.model.load_state_dict(self.state.best_weights)
        return self.state


def write_state(blob: dict[str, Any], path: Path, own_folder: bool = False) -> None:
    """Save a training state atomically (a kill leaves the old file or the new one),
    never through a symbolic link at the file; ``own_folder``: nor at its folder (a
    warm-up's folder in the results folder is harness's; a checkpoint folder the user
    names may be a link of the user's choice)."""
    if own_folder:
        refuse_link(path.parent)
    path.parent.mkdir(parents=True, exist_ok=True)
    refuse_link(path)
    tmp = path.parent / f"{temp_prefix(path.name)}{os.urandom(4).hex()}.tmp"
    try:
        with fresh_file(tmp) as handle:  # O_EXCL | O_NOFOLLOW
            torch.save(blob, handle)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def rule_met(state: TrainState, rule: tuple[str, float | None]) -> bool:
    """Whether a warm-up's rule holds at this epoch boundary (PtbLstmParams.warm_up_rules)."""
    name, value = rule
    if name == "converged":
        return state.done
    if name == "epochs":
        return value is not None and state.epoch >= value
    if name == "valid_ppl_below":
        return bool(state.history) and value is not None and state.history[-1] < value
    raise ValueError(f"unknown warm-up rule {name!r}")


def not_reached(state: TrainState, rule: tuple[str, float | None]) -> str:
    name, value = rule
    ended = f"training stopped after {state.epoch} epochs ({state.decays} lr decays)"
    if name == "valid_ppl_below":
        return (f"validation perplexity never fell below {value:g}: best {state.best_val:.2f}; "
                f"{ended}")
    return f"{ended}, before the warm-up's {name} {value:g}"


def describe(state: TrainState) -> dict[str, Any]:
    return {"epochs": state.epoch, "decays": state.decays, "best_val": state.best_val,
            "lr": state.lr, "history": list(state.history)}
