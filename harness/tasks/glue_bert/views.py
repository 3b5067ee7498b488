"""What a method sees of one GLUE training batch: the MLM branch.

The task loss (classification head on the clean sentences) is the task's own business;
methods act on the re-introduced MLM branch:

- ``targets``: the original tokens at the MLM-masked positions (n_mask,);
  ``primary_loss(targets)``: the MLM cross-entropy there (the main pass reads the clean
  and the masked sentences in one forward, with dropout); ``reduce``: the mean.
- The regularised positions: ``imm_fraction`` of each sentence's word positions
  (``imm_max_positions`` at most), drawn by ``choose_positions`` with a generator of the
  replicate (the same for every method); their short context w is the previous
  WordPiece token, one row per distinct w plus an ``index`` (as in the LSTM task).
- ``restricted()``: the Kneser-Ney rows P(. | w) at those positions (n_imm, V).
- ``log_q()``: log Q(. | x) of the causal view (the word and all later words hidden) at
  those positions of the batch's own sentences, one pass, no dropout (reverse-KD and
  serialized IMM).
- ``induced(k)``: for each distinct w, k training positions drawn from the multiset of
  positions whose previous token is w, their causal predictions in ONE batched pass
  (``induced.item_predictions``), uniform weights (sampled IMM; crosstalk gradient).
- ``stale_correction(refresh)``: Q_stale(. | x) / Qbar_stale(. | w) from the snapshot.
- ``noise(ratio)`` (``noising = "task"``): the MLM targets, each replaced with
  probability r = lambda / (1 + lambda) by a draw from the KN row of its (original)
  previous token. It is the "targets" form of noising applied where the MLM loss is,
  which are not the regularised positions that ``restricted()`` describes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from harness.methods.base import sample_categorical
from harness.methods.induced import Induced
from harness.tasks.base import Views
from harness.tasks.glue_bert.causal import choose_positions
from harness.tasks.glue_bert.config import GlueBertParams
from harness.tasks.glue_bert.corpus import Batch, Encoded
from harness.tasks.glue_bert.induced import (
    StaleModel,
    item_predictions,
    no_dropout,
    position_logits,
)
from harness.tasks.glue_bert.model import BertMlmClassifier
from harness.tasks.multiset import KeyedMultiset


@dataclass
class RunContext:
    """Everything the views of one fine-tuning run share."""

    params: GlueBertParams
    model: BertMlmClassifier
    bigram: Any  # KneserNeyBigram over the WordPiece vocabulary
    train: Encoded  # the training subset
    contexts: KeyedMultiset  # its positions keyed by previous token
    stale: StaleModel
    generator: torch.Generator  # the method's randomness
    positions_generator: torch.Generator  # the regularised positions (method-independent)
    steps_per_epoch: int

    @property
    def vocab_size(self) -> int:
        return int(self.model.config.vocab_size)


@dataclass
class MlmInputs:
    """BERT's masking of a batch: the model's input, the masked positions (B, L) bool,
    the original tokens there and the tokens before them (n_mask,)."""

    input_ids: Tensor
    select: Tensor
    targets: Tensor
    previous: Tensor


class GlueViews(Views):
    """One batch of the training subset (see the module docstring)."""

    loss_form = "additive"
    noising = "task"

    def __init__(self, ctx: RunContext, batch: Batch, mlm: MlmInputs | None) -> None:
        self.ctx, self.batch, self.mlm = ctx, batch, mlm
        self.targets = (mlm.targets if mlm is not None else
                        torch.zeros(0, dtype=torch.long, device=batch.labels.device))
        self.generator = ctx.generator
        # "size" for serialized IMM's refresh_every: one epoch of steps
        self.refresh_period = ctx.steps_per_epoch
        self._main: tuple[Tensor, Tensor | None] | None = None
        self._chosen: tuple[Tensor, Tensor, Tensor, Tensor] | None = None
        self._restricted: Tensor | None = None
        self._log_q: Tensor | None = None

    # ---- main pass: task logits and the MLM log-probs at the masked positions ----------
    def main(self) -> tuple[Tensor, Tensor | None]:
        if self._main is None:
            b, model = self.batch, self.ctx.model
            if self.mlm is None:
                self._main = (model.classify(b.input_ids, b.attention_mask,
                                             b.token_type_ids), None)
            else:
                n = len(b.input_ids)
                out = model.encode(torch.cat([b.input_ids, self.mlm.input_ids]),
                                   b.attention_mask.repeat(2, 1), b.token_type_ids.repeat(2, 1))
                pooled = None if out.pooler_output is None else out.pooler_output[:n]
                cls = model.task_head(out.last_hidden_state[:n], pooled, b.attention_mask)
                hidden = out.last_hidden_state[n:][self.mlm.select]
                self._main = (cls, F.log_softmax(model.mlm_logits(hidden), -1))
        return self._main

    def task_logits(self) -> Tensor:
        return self.main()[0]

    def primary_loss(self, targets: Tensor) -> Tensor:
        log_probs = self.main()[1]
        if log_probs is None:
            raise RuntimeError("this batch has no MLM branch (the baseline)")
        return -log_probs.gather(-1, targets[:, None]).squeeze(-1)

    def reduce(self, per_item: Tensor) -> Tensor:
        return per_item.mean()

    def term_shape(self, primary_shape: tuple[int, ...]) -> tuple[int, ...] | None:
        """A term covers the regularised positions (``chosen``), not the masked ones of
        the primary loss; unknown (None) when the term did not choose them."""
        return None if self._chosen is None else (len(self._chosen[0]),)

    # ---- the regularised positions -------------------------------------------------
    def chosen(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(rows, cols) (n_imm,) of the regularised positions in row-major order, the
        distinct previous tokens (D,) and the index (n_imm,) of each position's row."""
        if self._chosen is None:
            p, b = self.ctx.params, self.batch
            select = choose_positions(b.candidates, p.imm_fraction,
                                      self.ctx.positions_generator, p.imm_max_positions)
            rows, cols = select.nonzero(as_tuple=True)
            words, index = torch.unique(b.input_ids[rows, cols - 1], return_inverse=True)
            self._chosen = (rows, cols, words, index)
        return self._chosen

    def restricted(self) -> Tensor:
        if self._restricted is None:
            _, _, words, index = self.chosen()
            rows = self.ctx.bigram.rows(words.cpu()).to(words.device)
            self._restricted = rows[index]
        return self._restricted

    def log_q(self) -> Tensor:
        if self._log_q is None:
            rows, cols, _, _ = self.chosen()
            b = self.batch
            with no_dropout(self.ctx.model):
                logits = position_logits(self.ctx.model, b.input_ids, b.attention_mask,
                                         b.token_type_ids, rows, cols,
                                         self.ctx.params.causal_mode)
            self._log_q = F.log_softmax(logits, -1)
        return self._log_q

    def induced(self, k: int | None) -> Induced:
        k = k or self.ctx.params.imm_k
        _, _, words, index = self.chosen()
        items = self.ctx.contexts.sample(words, k, self.generator)  # (D, k)
        probs = item_predictions(self.ctx.model, self.ctx.train, items,
                                 self.ctx.params.causal_mode)     # (D, k, V)
        weights = torch.full((len(words), k), 1.0 / k, device=probs.device)
        return Induced(probs=probs, weights=weights, index=index)

    def stale_correction(self, refresh: bool) -> Tensor:
        stale = self.ctx.stale.current(self.ctx.model, refresh)
        rows, cols, words, index = self.chosen()
        b = self.batch
        return stale.correction(b.input_ids, b.attention_mask, b.token_type_ids, rows, cols,
                                words, index)

    def stale_log_q(self, refresh: bool) -> Tensor:
        """The snapshot's log Q at the regularised positions (those of ``log_q``)."""
        stale = self.ctx.stale.current(self.ctx.model, refresh)
        rows, cols, _, _ = self.chosen()
        b = self.batch
        return stale.log_q(b.input_ids, b.attention_mask, b.token_type_ids, rows, cols)

    # ---- noising of the MLM targets ---------------------------------------------------
    def noise(self, ratio: float) -> Tensor:
        if self.mlm is None:
            raise RuntimeError("this batch has no MLM branch (the baseline)")
        targets, gen = self.mlm.targets, self.generator
        flip = torch.rand(targets.shape, generator=gen, device=targets.device) < ratio
        if not bool(flip.any()):
            return targets
        words, inverse = torch.unique(self.mlm.previous[flip], return_inverse=True)
        rows = self.ctx.bigram.rows(words.cpu()).to(targets.device)
        out = targets.clone()
        out[flip] = sample_categorical(rows[inverse], gen)
        return out
