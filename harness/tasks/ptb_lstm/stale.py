"""The stale model of serialized IMM (paper Eq. 13, Alg. 2) and what it keeps per refresh.

A refresh snapshots the model and runs it once over the training batches (zero state at
the epoch's start, carried through the epoch's chunks, no dropout) to form its induced
bigram Qbar_stale(.|w). The term then needs, per item, Q_stale(.|x_t) / Qbar_stale(.|x_{t-1})
times the KN row P(.|x_{t-1}). What the refresh computes is kept so that no step
recomputes it:

- per previous word w, R(w, .) = P(.|w) / max(Qbar_stale(.|w), EPS), formed once per
  refresh in the memory of the induced table itself (it replaces it), so a step's target
  is Q_stale(.|x_t) * R(x_{t-1}, .): one gather and one product;
- the refresh pass's outputs, within ``cache_mib`` (the memory-aware form): first the
  stale model's top-layer outputs of every chunk (H floats a token), then, while the
  budget lasts, its predictions Q_stale themselves (V floats a token) for the first
  chunks. When the refresh starts the epoch, the stale forward of chunk j is the refresh
  pass's chunk j (same weights, chunks and zero start): a step with kept predictions
  only forms its target from them (they are used up by it), one with kept outputs
  applies the stale decoder, and without a cache a step runs the stale LSTM from its
  carried state, as before. A refresh in the middle of an epoch continues the old
  carried state with the new weights, as the per-step forward always did: the cache is
  then used from the next epoch on.

Q_stale = exp(log_softmax(z)) in the refresh and in every step, kept or recomputed, so
the cache changes no bit of the result (tested).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from harness.methods.induced import EPS
from harness.tasks.kit import GroupMean, model_copy
from harness.tasks.ptb_lstm.model import LstmLm, State
from harness.tasks.ptb_lstm.plan import BatchPlan

WORD_BLOCK = 1024  # previous words per block when R is formed (bounds the KN rows' memory)


def stale_probs(model: LstmLm, hidden: Tensor) -> Tensor:
    """Q_stale from top-layer outputs: exp(log_softmax(z)), one formula everywhere (on
    the CPU it is faster than softmax)."""
    return torch.log_softmax(model.decoder(hidden), -1).exp_()


class StaleModel:
    """The snapshot of serialized IMM, its per-word ratios R, kept outputs and state."""

    def __init__(self, data: Tensor, bptt: int, vocab_size: int, cache_mib: float = 4096.0
                 ) -> None:
        from harness.tasks.ptb_lstm.views import chunks

        self.data, self.bptt, self.vocab_size = data, bptt, vocab_size
        self.inputs = [inputs for inputs, _ in chunks(data, bptt)]
        self.words = torch.unique(data[:, :-1])
        self.row_of = torch.full((vocab_size,), len(self.words), dtype=torch.long,
                                 device=data.device)
        self.row_of[self.words] = torch.arange(len(self.words), device=data.device)
        self.cache_mib = cache_mib
        self.model: LstmLm | None = None
        self.ratio: Tensor | None = None                 # (seen words, V): R
        self.hidden: list[Tensor] | None = None          # top-layer outputs per chunk
        self.kept: list[Tensor | None] = []              # Q_stale of the first chunks
        self.state: State | None = None
        self.position = 0                                # stale forwards so far this epoch
        self.from_cache = False
        self._gather: Tensor | None = None               # reused buffer for R rows

    # ---- refresh -------------------------------------------------------------------------
    def cache_fits(self, model: LstmLm) -> bool:
        """Whether the top-layer outputs of every chunk fit in ``cache_mib``."""
        return self._bytes(model.decoder.in_features) <= self.cache_mib * 2**20

    def _bytes(self, width: int) -> int:
        return self.data.shape[0] * (self.data.shape[1] - 1) * width * 4

    @torch.no_grad()
    def refresh(self, model: LstmLm, rows: Callable[[Tensor], Tensor] | None) -> None:
        """Snapshot ``model``; one pass forms Qbar_stale, then R with ``rows(words)`` (the
        KN rows of a block of previous words); the pass's outputs are kept (budget).
        ``rows`` None: the snapshot alone (its predictions, for "stale_prediction")."""
        mid_epoch = self.position > 0
        if mid_epoch and self.from_cache:
            self.state = self._replay(self.position)  # the old weights' carried state
        self.model = model_copy(model, self.model)
        self.ratio, self.hidden, self.kept = None, None, []
        if rows is None:
            self.from_cache = False
            return
        budget = self.cache_mib * 2**20
        keep = self.cache_fits(self.model)
        if keep:
            budget -= self._bytes(self.model.decoder.in_features)
        table = GroupMean(len(self.words), self.vocab_size, self.data.device)
        hidden_kept, state = [], None
        for inputs in self.inputs:
            hidden, state = self.model.hidden(inputs, state, dropout=False)
            probs = stale_probs(self.model, hidden)
            table.add(self.row_of[inputs.reshape(-1)], probs.reshape(-1, self.vocab_size))
            if keep:
                hidden_kept.append(hidden)
                if probs.numel() * 4 <= budget:
                    self.kept.append(probs)
                    budget -= probs.numel() * 4
        sums = table.mean_()                             # Qbar_stale, in place
        for lo in range(0, len(self.words), WORD_BLOCK):  # R, in the table's memory
            block = sums[lo:lo + WORD_BLOCK]
            block.clamp_(min=EPS).reciprocal_().mul_(rows(self.words[lo:lo + WORD_BLOCK]))
        self.ratio = sums
        self.hidden = hidden_kept if keep else None
        self.from_cache = self.hidden is not None and not mid_epoch
        if mid_epoch:
            self.kept = []  # this epoch's remaining chunks run from the carried state

    def _replay(self, chunks: int) -> State | None:
        """The current snapshot's state after this epoch's first ``chunks`` chunks."""
        assert self.model is not None
        state = None
        for inputs in self.inputs[:chunks]:
            _, state = self.model.hidden(inputs, state, dropout=False)
        return state

    # ---- per step ------------------------------------------------------------------------
    def reset_state(self) -> None:
        """A new epoch: zero state; the kept outputs (if any) match it again."""
        self.state, self.position = None, 0
        self.from_cache = self.hidden is not None

    @torch.no_grad()
    def probs(self, inputs: Tensor, plan: BatchPlan | None) -> Tensor:
        """Q_stale(.|x_t) for a batch (a fresh tensor the caller may overwrite): kept from
        the refresh pass when it is this epoch's chunk, else from the stale LSTM."""
        assert self.model is not None
        chunk = None if plan is None else plan.chunk
        if self.from_cache and chunk != self.position:
            self.state, self.from_cache = self._replay(self.position), False
        position = self.position
        self.position += 1
        if self.from_cache:
            assert self.hidden is not None
            if position < len(self.kept) and self.kept[position] is not None:
                probs, self.kept[position] = self.kept[position], None  # used up
                return probs
            return stale_probs(self.model, self.hidden[position])
        hidden, self.state = self.model.hidden(inputs, self.state, dropout=False)
        return stale_probs(self.model, hidden)

    @torch.no_grad()
    def target(self, inputs: Tensor, plan: BatchPlan | None) -> Tensor:
        """Q_stale(.|x_t) * R(x_{t-1}, .) = correction * KN row: the term's target."""
        assert self.ratio is not None
        if plan is None and bool((self.row_of[inputs] == len(self.words)).any()):
            raise ValueError("serialized IMM's inputs must come from its training batches")
        probs = self.probs(inputs, plan)
        rows = self.row_of[inputs.reshape(-1)]
        if self._gather is None or self._gather.shape[0] < len(rows):
            self._gather = probs.new_empty(len(rows), self.vocab_size)
        gathered = torch.index_select(self.ratio, 0, rows, out=self._gather[:len(rows)])
        return probs.mul_(gathered.view_as(probs))
