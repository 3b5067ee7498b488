"""Causal predictions at training positions: the induced model of the MLM branch.

An extended context of a short context w (the previous WordPiece token) is a training
position (sentence s, column p) whose token at p - 1 is w; an item encodes it as
``s * width + p`` (``width`` = the training matrix's width). ``context_multiset`` keys
every candidate position of the training subset by its previous token.

``item_predictions`` gives the causal MLM prediction (softmax over the vocabulary) at any
list of items with ONE batched pass: repeated items are computed once, items of the same
sentence share its segment (the causal view selects several positions of a sentence at
once), and each sentence contributes only the prefix it needs, segments packed into
rows (``causal.packed_causal_logits``). Dropout
is off in these passes (the IMM branch runs in evaluation mode, as in the paper's LSTM).

``StaleModel`` is serialized IMM's snapshot: a copy of the model and its induced table,
Qbar_stale(. | w) = the snapshot's causal predictions averaged over the training
positions whose previous token is w (all of them, or ``stale_positions`` of each drawn
once), computed at every refresh in no-grad passes of a bounded number of positions.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor

from harness.methods.induced import EPS
from harness.tasks.glue_bert.causal import Mode, causal_mlm_logits, packed_causal_logits
from harness.tasks.glue_bert.corpus import Encoded
from harness.tasks.glue_bert.model import BertMlmClassifier
from harness.tasks.kit import GroupMean, Snapshot, model_copy
from harness.tasks.multiset import KeyedMultiset

TABLE_CHUNK_POSITIONS = 1024  # positions per no-grad pass when building the stale table


@contextmanager
def no_dropout(model: torch.nn.Module) -> Iterator[None]:
    was = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was)


def candidate_items(enc: Encoded) -> tuple[Tensor, Tensor]:
    """(items, previous tokens) of every candidate position of ``enc``."""
    s, p = enc.candidates.nonzero(as_tuple=True)
    return s * enc.width + p, enc.input_ids[s, p - 1]


def context_multiset(enc: Encoded, vocab_size: int) -> KeyedMultiset:
    """The training positions keyed by their previous token (the short context)."""
    items, prev = candidate_items(enc)
    return KeyedMultiset(prev, items, vocab_size)


def position_logits(model: BertMlmClassifier, input_ids: Tensor, attention_mask: Tensor,
                    token_type_ids: Tensor, rows: Tensor, cols: Tensor, mode: Mode) -> Tensor:
    """Causal MLM logits (n, V) at distinct positions (rows, cols) in row-major order of a
    token matrix, one pass: packed (``packed_causal_logits``) in the causal_prefix mode,
    else ``causal_mlm_logits`` (one truncated sequence per position)."""
    if mode == "causal_prefix":
        return packed_causal_logits(model, input_ids, token_type_ids, rows, cols)
    width = int(cols.max()) + 1
    select = torch.zeros(input_ids.shape[0], width, dtype=torch.bool, device=rows.device)
    select[rows, cols] = True
    return causal_mlm_logits(model, input_ids[:, :width], attention_mask[:, :width], select,
                             token_type_ids[:, :width], mode=mode).logits


def item_logits(model: BertMlmClassifier, enc: Encoded, items: Tensor, mode: Mode
                ) -> Tensor:
    """Causal MLM logits (len(items), V) at distinct, sorted ``items``, one pass."""
    return position_logits(model, enc.input_ids, enc.attention_mask, enc.token_type_ids,
                           items // enc.width, items % enc.width, mode)


def item_predictions(model: BertMlmClassifier, enc: Encoded, items: Tensor, mode: Mode
                     ) -> Tensor:
    """Causal MLM probabilities (..., V) at ``items`` (any shape), differentiable."""
    uniq, inverse = torch.unique(items.reshape(-1), return_inverse=True)
    with no_dropout(model):
        probs = torch.softmax(item_logits(model, enc, uniq, mode), -1)
    return probs[inverse].reshape(*items.shape, -1)


class StaleModel:
    """Serialized IMM's snapshot: a model copy and its induced table (see the module)."""

    def __init__(self, enc: Encoded, vocab_size: int, mode: Mode,
                 per_context: int | None, generator: torch.Generator) -> None:
        self.enc, self.vocab_size, self.mode = enc, vocab_size, mode
        items, prev = candidate_items(enc)
        if per_context is not None:  # a fixed sample of each context's positions
            shuffle = torch.randperm(len(items), generator=generator,
                                     device=generator.device).to(items.device)
            items, prev = items[shuffle], prev[shuffle]
            order = torch.argsort(prev, stable=True)
            items, prev = items[order], prev[order]
            counts = torch.bincount(prev, minlength=vocab_size)
            start = torch.cumsum(counts, 0) - counts
            rank = torch.arange(len(prev), device=prev.device) - start[prev]
            keep = rank < per_context
            items, prev = items[keep], prev[keep]
        order = torch.argsort(items)
        self.items, self.prev = items[order], prev[order]
        self.words = torch.unique(self.prev)
        self.row_of = torch.full((vocab_size,), -1, dtype=torch.long, device=prev.device)
        self.row_of[self.words] = torch.arange(len(self.words), device=prev.device)
        self.model: BertMlmClassifier | None = None
        self.table: Tensor | None = None
        self._snapshot: Snapshot[StaleModel] = Snapshot()

    def current(self, model: BertMlmClassifier, refresh: bool) -> StaleModel:
        """This snapshot, re-taken from ``model`` when ``refresh`` (or never taken); its
        induced table is built on first use after a refresh."""
        return self._snapshot.get(refresh, lambda: self._take(model))

    def _take(self, model: BertMlmClassifier) -> StaleModel:
        self.model = model_copy(model, self.model)
        self.table = None
        return self

    @torch.no_grad()
    def _induced_table(self) -> Tensor:
        assert self.model is not None
        table = GroupMean(len(self.words), self.vocab_size, self.items.device)
        sents = self.items // self.enc.width
        # chunks of whole sentences holding at most TABLE_CHUNK_POSITIONS positions
        start = 0
        while start < len(self.items):
            stop = min(start + TABLE_CHUNK_POSITIONS, len(self.items))
            if stop < len(self.items):
                last = sents[stop]
                cut = int(torch.searchsorted(sents, last))  # first item of that sentence
                stop = cut if cut > start else stop
            chunk = self.items[start:stop]
            probs = torch.softmax(item_logits(self.model, self.enc, chunk, self.mode), -1)
            table.add(self.row_of[self.prev[start:stop]], probs)
            start = stop
        return table.mean_()

    def rows(self, words: Tensor) -> Tensor:
        """Qbar_stale(. | w) for each word (every short context of the training subset)."""
        if self.table is None:
            self.table = self._induced_table()
        rows = self.row_of[words]
        if bool((rows < 0).any()):
            raise ValueError("a short context has no position in the stale table")
        return self.table[rows]

    @torch.no_grad()
    def correction(self, input_ids: Tensor, attention_mask: Tensor, token_type_ids: Tensor,
                   rows: Tensor, cols: Tensor, words: Tensor, index: Tensor) -> Tensor:
        """Q_stale(.|x) / Qbar_stale(.|w) at the positions (rows, cols) of a batch (n, V)."""
        logits = self._logits(input_ids, attention_mask, token_type_ids, rows, cols)
        return torch.softmax(logits, -1) / self.rows(words)[index].clamp_min(EPS)

    @torch.no_grad()
    def log_q(self, input_ids: Tensor, attention_mask: Tensor, token_type_ids: Tensor,
              rows: Tensor, cols: Tensor) -> Tensor:
        """log Q_stale(.|x) at the positions (rows, cols) of a batch (n, V)."""
        return torch.log_softmax(
            self._logits(input_ids, attention_mask, token_type_ids, rows, cols), -1)

    def _logits(self, input_ids: Tensor, attention_mask: Tensor, token_type_ids: Tensor,
                rows: Tensor, cols: Tensor) -> Tensor:
        assert self.model is not None
        return position_logits(self.model, input_ids, attention_mask, token_type_ids, rows,
                               cols, self.mode)
