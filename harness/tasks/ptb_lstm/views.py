"""What a method sees of one (B, T) training batch of the LSTM LM.

- ``targets``: the next tokens; ``log_q()``: log-softmax of the main forward (with dropout,
  from the carried state; the new state is left in ``state_out`` for the trainer);
  ``main()`` gives that forward's top-layer outputs and logits.
- ``restricted()``: Kneser-Ney rows for the previous tokens (the inputs), formed once per
  distinct previous word of the batch (on the training device, ``harness.ngram.kn_device``)
  and mapped back with an index; the batch's distinct words come from its ``BatchPlan``
  (computed once per run).
- ``log_q_imm()``: the batch's own contexts as the IMM branch sees them: a forward from
  the carried state WITHOUT dropout whose new state is discarded.
- ``induced(k)``: per distinct previous word w, k training positions whose previous word
  is w, each run as a window of ``imm_window`` tokens from a zero state WITHOUT dropout;
  the softmax of each window's last step is one Q_j; uniform weights. Each distinct
  sampled window is run once, weighted by its count, in chunks whose graphs are
  recomputed in the backward (``harness.tasks.ptb_lstm.windows``), so peak memory does not
  grow with k. The main carried state is not touched.
- ``stale_correction(refresh)``: Q_stale(.|x_t) / Qbar_stale(.|x_{t-1}) from a snapshot;
  ``stale_target(refresh)``: that correction times the KN row, formed from per-word
  ratios kept by the refresh (``harness.tasks.ptb_lstm.stale``).
- ``noise(ratio)``: Xie et al.'s noising of inputs and targets (``noising = "task"``,
  ``harness.tasks.ptb_lstm.noising``).

The trainer computes the regularised methods' gradients through
``harness.tasks.ptb_lstm.objectives``, which reads these views.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from harness.methods.induced import Induced
from harness.ngram.kn_device import DeviceBigram
from harness.ngram.kneser_ney import KneserNeyBigram
from harness.tasks.base import Views
from harness.tasks.kit import GroupMean, Snapshot
from harness.tasks.ptb_lstm.config import PtbLstmParams
from harness.tasks.ptb_lstm.corpus import ArpaRestricted
from harness.tasks.ptb_lstm.model import LstmLm, State, detach_state
from harness.tasks.ptb_lstm.noising import NoisingCounts, noise_batch
from harness.tasks.ptb_lstm.plan import BatchPlan, plan_batch
from harness.tasks.ptb_lstm.sampler import ContextSampler
from harness.tasks.ptb_lstm.stale import StaleModel
from harness.tasks.ptb_lstm.windows import (
    DedupMixture,
    DeviceWindows,
    WindowSet,
    sample_windows,
    window_predictions,
)

__all__ = ["LmViews", "StaleModel", "TrainContext", "batchify", "chunks", "induced_table",
           "window_predictions"]


def chunks(data: Tensor, bptt: int):
    """(inputs, targets) pairs of a batchified (B, L) stream, unrolled bptt at a time."""
    length = data.shape[1]
    for i in range(0, length - 1, bptt):
        seq = min(bptt, length - 1 - i)
        yield data[:, i:i + seq], data[:, i + 1:i + 1 + seq]


def batchify(stream: Tensor, rows: int) -> Tensor:
    """(rows, L): the stream cut into ``rows`` contiguous parts (remainder dropped)."""
    n = len(stream) // rows
    if n < 2:
        raise ValueError(f"a stream of {len(stream)} tokens is too short for {rows} rows")
    return stream[: n * rows].view(rows, n)


class InducedTable:
    """The induced bigram Qbar(.|w) of a model, stored compactly: one row per previous word
    seen in the pass, plus a last row (the average over all positions) for the others."""

    def __init__(self, sums: Tensor, counts: Tensor, row_of: Tensor) -> None:
        total = sums.sum(0, keepdim=True) / counts.sum().clamp_min(1.0)
        self.table = torch.cat([sums / counts.clamp_min(1.0)[:, None], total])
        self.row_of = row_of  # (V,) word -> row, unseen words -> the last row

    def rows(self, prev: Tensor) -> Tensor:
        return self.table[self.row_of[prev]]

    def prob(self, prev: Tensor, nxt: Tensor) -> Tensor:
        return self.table[self.row_of[prev], nxt]


@torch.no_grad()
def induced_table(model: LstmLm, data: Tensor, bptt: int, vocab_size: int) -> InducedTable:
    """One no-grad pass (carried state, no dropout) over a batchified training stream:
    Qbar(.|w) = the model's predicted distributions averaged over the positions whose
    previous word is w (harness.tasks.kit.GroupMean)."""
    device = data.device
    words = torch.unique(data[:, :-1])
    row_of = torch.full((vocab_size,), len(words), dtype=torch.long, device=device)
    row_of[words] = torch.arange(len(words), device=device)
    table = GroupMean(len(words), vocab_size, device)
    state: State | None = None
    for inputs, _ in chunks(data, bptt):
        logits, state = model(inputs, state, dropout=False)
        table.add(row_of[inputs.reshape(-1)], torch.softmax(logits.reshape(-1, vocab_size), -1))
    return InducedTable(table.sums, table.counts, row_of)



@dataclass
class TrainContext:
    """Everything the views of one training run share.

    ``host_generator``: the CPU generator that draws the sampled contexts (they are drawn
    on the host); None = ``generator`` itself, which must then be a CPU generator (on the
    CPU it is, so the draws are those of ``generator``). ``plans``: the training chunks'
    BatchPlans (the trainer fills them in)."""

    params: PtbLstmParams
    model: LstmLm
    bigram: Any
    sampler: ContextSampler
    generator: torch.Generator
    steps_per_epoch: int
    stale: StaleModel
    blank_id: int | None = None
    host_generator: torch.Generator | None = None
    plans: list[BatchPlan] | None = None
    snapshot: Snapshot[StaleModel] = field(default_factory=Snapshot)  # when ``stale`` was taken
    _kn: DeviceBigram | None = field(default=None, repr=False)
    _noising: NoisingCounts | None = field(default=None, repr=False)

    @property
    def device(self) -> torch.device:
        return self.model.decoder.weight.device

    @property
    def sampling_generator(self) -> torch.Generator:
        gen = self.host_generator if self.host_generator is not None else self.generator
        if gen.device.type != "cpu":
            raise ValueError("sampled contexts are drawn on the host: give TrainContext a "
                             "CPU host_generator when the model is on an accelerator")
        return gen

    def restricted_rows(self, words: Tensor) -> Tensor:
        """P(.|w) of the restricted model for ``words``, on the training device (the
        bigram forms its rows on the host)."""
        return self.bigram.rows(words.cpu()).to(self.device)

    def noising_counts(self) -> NoisingCounts:
        """The training text's counts that noising reads, on the training device (from the
        KN fit of the prefix, also when the restricted model is an ARPA file)."""
        if self._noising is None:
            kn = self.bigram.counts if isinstance(self.bigram, ArpaRestricted) else self.bigram
            self._noising = NoisingCounts.of(kn).to(self.device)
        return self._noising

    def kn(self) -> DeviceBigram | None:
        """The KN bigram's parts on the training device (None for other bigrams)."""
        if self._kn is None and isinstance(self.bigram, KneserNeyBigram):
            self._kn = DeviceBigram(self.bigram, self.device)
        return self._kn


class LmViews(Views):
    """One (B, T) batch of the batchified training stream."""

    loss_form = "additive"
    noising = "task"

    def __init__(self, ctx: TrainContext, inputs: Tensor, targets: Tensor, state: State,
                 plan: BatchPlan | None = None) -> None:
        self.ctx = ctx
        self.inputs = inputs          # the observed previous words (short contexts)
        self.model_inputs = inputs    # what the main forward reads (noising may change it)
        self.targets = targets
        self.state_in = state
        self.state_out: State | None = None
        self.generator = ctx.generator
        self.plan = plan if plan is not None else plan_batch(inputs, ctx.bigram)
        # "size" for serialized IMM's refresh_every: one epoch of steps, so that
        # refresh_every: size refreshes the snapshot once per epoch.
        self.refresh_period = ctx.steps_per_epoch
        self._main: tuple[Tensor, Tensor] | None = None
        self._log_q: Tensor | None = None
        self._rows: Tensor | None = None
        self._restricted: Tensor | None = None

    # ---- main branch ---------------------------------------------------------------
    def main(self) -> tuple[Tensor, Tensor]:
        """(top-layer outputs (B, T, H), logits (B, T, V)) of the main forward."""
        if self._main is None:
            model = self.ctx.model
            hidden, state = model.hidden(self.model_inputs, self.state_in, dropout=True)
            self.state_out = detach_state(state)
            self._main = (hidden, model.decoder(hidden))
        return self._main

    def log_q(self) -> Tensor:
        if self._log_q is None:
            self._log_q = F.log_softmax(self.main()[1], -1)
        return self._log_q

    def imm_logits(self) -> Tensor:
        """Logits of the batch's own contexts as the IMM branch sees them (no dropout,
        from the carried state, the new state discarded)."""
        logits, _ = self.ctx.model(self.inputs, self.state_in, dropout=False)
        return logits

    def log_q_imm(self) -> Tensor:
        return F.log_softmax(self.imm_logits(), -1)

    def primary_loss(self, targets: Tensor) -> Tensor:
        return -self.log_q().gather(-1, targets[..., None]).squeeze(-1)

    def reduce(self, per_item: Tensor) -> Tensor:
        """Summed over the unroll, averaged over the rows: the loss scale of Zaremba et al.,
        Xie et al. and the paper's code (lr 1.0 and clip 5 are tuned for it; a mean over
        all B x T items would shrink every step 35-fold before clipping)."""
        return per_item.sum() / per_item.shape[0]

    # ---- restricted model ------------------------------------------------------------
    def distinct(self) -> tuple[Tensor, Tensor]:
        """(distinct previous words (D,), index (B, T) -> row)."""
        return self.plan.words, self.plan.index

    def kn_rows(self) -> Tensor:
        """(D, V) restricted rows of the distinct previous words, on the device."""
        if self._rows is None:
            kn = self.ctx.kn()
            if kn is not None and self.plan.rows is not None:
                self._rows = kn.rows(self.plan.rows)
            else:
                self._rows = self.ctx.bigram.rows(self.plan.host_words).to(self.inputs.device)
        return self._rows

    def restricted(self) -> Tensor:
        if self._restricted is None:
            self._restricted = self.kn_rows()[self.plan.index]
        return self._restricted

    # ---- induced model -------------------------------------------------------------
    def sample(self, k: int, words: Tensor | None = None) -> tuple[WindowSet, DeviceWindows]:
        """k sampled positions per word (default: every distinct previous word), each
        distinct (word, position) once, drawn on the host; their windows on the device."""
        sampler = self.ctx.sampler
        host = self.plan.host_words if words is None else words
        found = sample_windows(sampler.host_multiset, host, k, self.ctx.sampling_generator)
        return found, DeviceWindows(found, sampler.padded, sampler.window)

    def induced(self, k: int | None) -> Induced:
        k = k or self.ctx.params.imm_k
        words, index = self.distinct()
        found, dev = self.sample(k)
        if k == 1:
            mixture = window_predictions(self.ctx.model, dev.tokens(0, len(found)))
        else:
            params = [p for p in self.ctx.model.parameters() if p.requires_grad]
            mixture = DedupMixture.apply(dev, len(words), max(len(words), k),
                                         self.ctx.model, *params)
        ones = torch.ones(len(words), 1, device=mixture.device)
        return Induced(probs=mixture[:, None], weights=ones, index=index)

    # ---- serialized IMM ----------------------------------------------------------------
    def _refresh_stale(self, refresh: bool, ratios: bool = True) -> StaleModel:
        ctx = self.ctx

        def make() -> StaleModel:
            ctx.stale.refresh(ctx.model, ctx.restricted_rows if ratios else None)
            return ctx.stale

        return ctx.snapshot.get(refresh, make)

    def stale_target(self, refresh: bool) -> Tensor:
        """Q_stale(.|x_t) / Qbar_stale(.|x_{t-1}) * P(.|x_{t-1}), (B, T, V), constant."""
        return self._refresh_stale(refresh).target(self.inputs, self.plan)

    def stale_correction(self, refresh: bool) -> Tensor:
        return self.stale_target(refresh) / self.restricted()

    def stale_log_q(self, refresh: bool) -> Tensor:
        """log Q_stale(.|x_t), (B, T, V), constant: the snapshot's prediction of the batch
        (its own carried state from the epoch's start, no dropout); a refresh re-takes
        the snapshot without the induced table (self-distillation needs none)."""
        return self._refresh_stale(refresh, ratios=False).probs(self.inputs, self.plan).log_()

    # ---- Xie et al. noising -----------------------------------------------------------
    def noise(self, ratio: float) -> Tensor:
        """Noise inputs and targets (``harness.tasks.ptb_lstm.noising``); returns the
        targets to train on. gamma0 is ``noising_gamma0``, else ``ratio`` (the method's
        noising probability). Must precede the main forward."""
        if self._main is not None:
            raise RuntimeError("noise() must be called before the main forward")
        p = self.ctx.params
        gamma0 = p.noising_gamma0 if p.noising_gamma0 is not None else ratio
        self.model_inputs, targets = noise_batch(p, self.ctx.noising_counts(), self.inputs,
                                                 self.targets, gamma0, self.generator,
                                                 self.ctx.blank_id)
        return targets
