"""What a method sees of one (B, T) training batch of the LSTM LM.

- ``targets``: the next tokens; ``log_q()``: log-softmax of the main forward (with dropout,
  from the carried state; the new state is left in ``state_out`` for the trainer).
- ``restricted()``: Kneser-Ney rows for the previous tokens (the inputs), formed once per
  distinct previous word of the batch and mapped back with an index.
- ``log_q_imm()``: the batch's own contexts as the IMM branch sees them: a forward from
  the carried state WITHOUT dropout whose new state is discarded.
- ``induced(k)``: per distinct previous word w, k training positions whose previous word
  is w, each run as a window of ``imm_window`` tokens from a zero state WITHOUT dropout;
  the softmax of each window's last step is one Q_j; uniform weights. The windows of one
  sample j (one per distinct word) are one batched forward, and the mixture is
  accumulated over j one sample at a time, forward and backward (the crosstalk
  decomposition's sequential accumulation), so peak memory is that of one sample's
  windows whatever k; the price is one recomputed forward. The main carried state is not touched.
- ``stale_correction(refresh)``: Q_stale(.|x_t) / Qbar_stale(.|x_{t-1}) from a snapshot.
- ``noise(ratio)``: Xie et al.'s noising of inputs and targets (``noising = "task"``).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from harness.methods.induced import EPS, Induced
from harness.tasks.base import Views
from harness.tasks.ptb_lstm.config import PtbLstmParams
from harness.tasks.ptb_lstm.model import LstmLm, State, detach_state
from harness.tasks.ptb_lstm.sampler import ContextSampler


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
    previous word is w (sum of softmax rows via index_add_, divided by counts)."""
    device = data.device
    words = torch.unique(data[:, :-1])
    row_of = torch.full((vocab_size,), len(words), dtype=torch.long, device=device)
    row_of[words] = torch.arange(len(words), device=device)
    sums = torch.zeros(len(words), vocab_size, device=device)
    counts = torch.zeros(len(words), device=device)
    state: State | None = None
    for inputs, _ in chunks(data, bptt):
        logits, state = model(inputs, state, dropout=False)
        rows = row_of[inputs.reshape(-1)]
        sums.index_add_(0, rows, torch.softmax(logits.reshape(-1, vocab_size), -1))
        counts.index_add_(0, rows, torch.ones_like(rows, dtype=counts.dtype))
    return InducedTable(sums, counts, row_of)


class StaleModel:
    """The snapshot of serialized IMM: a copy of the model, its induced table over the
    training stream, and its own carried state along the training batches."""

    def __init__(self, data: Tensor, bptt: int, vocab_size: int) -> None:
        self.data, self.bptt, self.vocab_size = data, bptt, vocab_size
        self.model: LstmLm | None = None
        self.table: InducedTable | None = None
        self.state: State | None = None

    def refresh(self, model: LstmLm) -> None:
        if self.model is None:
            self.model = copy.deepcopy(model)
        self.model.load_state_dict(model.state_dict())
        self.model.eval()
        self.table = induced_table(self.model, self.data, self.bptt, self.vocab_size)

    def reset_state(self) -> None:
        self.state = None

    @torch.no_grad()
    def correction(self, inputs: Tensor) -> Tensor:
        assert self.model is not None and self.table is not None
        logits, self.state = self.model(inputs, self.state, dropout=False)
        return torch.softmax(logits, -1) / self.table.rows(inputs).clamp_min(EPS)


@dataclass
class TrainContext:
    """Everything the views of one training run share."""

    params: PtbLstmParams
    model: LstmLm
    bigram: Any
    sampler: ContextSampler
    generator: torch.Generator
    steps_per_epoch: int
    stale: StaleModel
    blank_id: int | None = None


class LmViews(Views):
    """One (B, T) batch of the batchified training stream."""

    loss_form = "additive"
    noising = "task"

    def __init__(self, ctx: TrainContext, inputs: Tensor, targets: Tensor, state: State
                 ) -> None:
        self.ctx = ctx
        self.inputs = inputs          # the observed previous words (short contexts)
        self.model_inputs = inputs    # what the main forward reads (noising may change it)
        self.targets = targets
        self.state_in = state
        self.state_out: State | None = None
        self.generator = ctx.generator
        # "size" for serialized IMM's refresh_every: one epoch of steps, so that
        # refresh_every: size refreshes the snapshot once per epoch.
        self.refresh_period = ctx.steps_per_epoch
        self._log_q: Tensor | None = None
        self._restricted: Tensor | None = None
        self._distinct: tuple[Tensor, Tensor] | None = None

    # ---- main branch ---------------------------------------------------------------
    def log_q(self) -> Tensor:
        if self._log_q is None:
            logits, state = self.ctx.model(self.model_inputs, self.state_in, dropout=True)
            self.state_out = detach_state(state)
            self._log_q = F.log_softmax(logits, -1)
        return self._log_q

    def log_q_imm(self) -> Tensor:
        logits, _ = self.ctx.model(self.inputs, self.state_in, dropout=False)
        return F.log_softmax(logits, -1)

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
        if self._distinct is None:
            words, index = torch.unique(self.inputs, return_inverse=True)
            self._distinct = (words, index)
        return self._distinct

    def restricted(self) -> Tensor:
        if self._restricted is None:
            words, index = self.distinct()
            rows = self.ctx.bigram.rows(words.cpu()).to(self.inputs.device)
            self._restricted = rows[index]
        return self._restricted

    # ---- induced model -------------------------------------------------------------
    def induced(self, k: int | None) -> Induced:
        k = k or self.ctx.params.imm_k
        words, index = self.distinct()
        positions = self.ctx.sampler.sample(words, k, self.generator)  # (D, k)
        windows = self.ctx.sampler.windows(positions)                   # (D, k, W)
        mixture = induced_mixture(self.ctx.model, windows)              # (D, V)
        ones = torch.ones(len(words), 1, device=mixture.device)
        return Induced(probs=mixture[:, None], weights=ones, index=index)

    def stale_correction(self, refresh: bool) -> Tensor:
        stale = self.ctx.stale
        if refresh or stale.model is None:
            stale.refresh(self.ctx.model)
        return stale.correction(self.inputs)

    # ---- Xie et al. noising -----------------------------------------------------------
    def noise(self, ratio: float) -> Tensor:
        """Noise inputs and targets; returns the targets to train on. Must precede log_q."""
        if self._log_q is not None:
            raise RuntimeError("noise() must be called before the main forward")
        p = self.ctx.params
        gamma0 = p.noising_gamma0 if p.noising_gamma0 is not None else ratio
        x, y, gen = self.inputs, self.targets, self.generator
        bigram = self.ctx.bigram
        if p.noising_variant == "kn":
            follow = bigram.follow_types().to(x.device)[x]
            count = bigram.context_counts().to(x.device)[x].clamp_min(1.0)
            gamma = (gamma0 * follow / count).clamp_max(1.0)
            dist = bigram.continuation()
        else:
            gamma = torch.full(x.shape, min(gamma0, 1.0), device=x.device)
            dist = bigram.unigram()
        flip_in = torch.rand(x.shape, generator=gen, device=x.device) < gamma
        if p.noising_variant == "blank":
            assert self.ctx.blank_id is not None
            self.model_inputs = torch.where(flip_in, torch.full_like(x, self.ctx.blank_id), x)
            return y
        flip_out = torch.rand(x.shape, generator=gen, device=x.device) < gamma
        dist = dist.to(x.device)
        draw_in = torch.multinomial(dist, x.numel(), replacement=True, generator=gen)
        draw_out = torch.multinomial(dist, x.numel(), replacement=True, generator=gen)
        self.model_inputs = torch.where(flip_in, draw_in.view_as(x), x)
        return torch.where(flip_out, draw_out.view_as(y), y)


def induced_mixture(model: LstmLm, windows: Tensor) -> Tensor:
    """(D, V) mean over j of the window predictions of (D, k, W) windows, differentiable.

    With k > 1 the samples are accumulated one at a time (``_SequentialMixture``): the
    forward keeps only the running (D, V) sum, the backward recomputes sample j's windows
    and back-propagates them before the next, so peak memory does not grow with k; the
    gradient is that of one batched pass (tested)."""
    if windows.shape[1] == 1:
        return window_predictions(model, windows[:, 0])
    params = [p for p in model.parameters() if p.requires_grad]
    return _SequentialMixture.apply(windows, model, *params)


class _SequentialMixture(torch.autograd.Function):
    """The crosstalk decomposition's sequential accumulation as an autograd node whose
    inputs are the model's parameters (so ``autograd.grad`` over them sees it)."""

    @staticmethod
    def forward(ctx, windows: Tensor, model: LstmLm, *params: Tensor) -> Tensor:
        ctx.model, ctx.params = model, params
        ctx.save_for_backward(windows)
        k = windows.shape[1]
        total = window_predictions(model, windows[:, 0])
        for j in range(1, k):
            total += window_predictions(model, windows[:, j])
        return total / k

    @staticmethod
    def backward(ctx, grad: Tensor):
        (windows,) = ctx.saved_tensors
        k = windows.shape[1]
        sums: list[Tensor | None] = [None] * len(ctx.params)
        for j in range(k):
            with torch.enable_grad():
                probs = window_predictions(ctx.model, windows[:, j])
                parts = torch.autograd.grad(probs, ctx.params, grad / k, allow_unused=True)
            sums = [p if s is None else s if p is None else s + p
                    for s, p in zip(sums, parts, strict=True)]
        return (None, None, *sums)


def window_predictions(model: LstmLm, windows: Tensor) -> Tensor:
    """Softmax of the last step of each window, run from a zero state without dropout, as
    one batched forward: (N, V), differentiable."""
    hidden, _ = model.hidden(windows, None, dropout=False)
    return torch.softmax(model.decoder(hidden[:, -1]), -1)
