"""GLUE examples as token matrices: the training subset, the evaluation set, batches.

``encode`` tokenizes a ``GlueSplit`` once ([CLS] a [SEP] (b [SEP]), truncated to
``max_length``, padded to the longest row) into an ``Encoded`` whose rows are trimmed to
their batch's longest row when a batch is taken. ``splits`` picks the training subset and
the evaluation examples of a cell: the GLUE dev set(s) for the "test" split (GLUE's test
labels are not public; MNLI has a matched and a mismatched one), or a held-out share of the
training file for "validation" (lambda tuning never sees the dev set; for MNLI it stands in
for both dev sets); the held-out examples are fixed per task, and the training subset is
drawn from the rest. Labels are class ids (long), or float scores for a regression task
(STS-B).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from harness.data.glue import GlueSplit, eval_splits, load_glue, training_subset
from harness.tasks.base import stable_seed
from harness.tasks.glue_bert.model import special_tokens_mask, tokenize


@dataclass
class Encoded:
    """Token matrices (N, L) of a set of examples, their labels (N,) and the candidate
    positions of the MLM and IMM terms (non-special, non-pad, column >= 1)."""

    input_ids: Tensor
    attention_mask: Tensor
    token_type_ids: Tensor
    labels: Tensor  # (N,) long class ids, or float32 scores (regression)
    candidates: Tensor

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def width(self) -> int:
        return int(self.input_ids.shape[1])

    @property
    def lengths(self) -> Tensor:
        return self.attention_mask.sum(1)

    def rows(self, index: Tensor) -> Batch:
        """The examples ``index`` as a batch, trimmed to their longest row."""
        index = index.to(self.input_ids.device)
        width = int(self.lengths[index].max())
        return Batch(self.input_ids[index, :width], self.attention_mask[index, :width],
                     self.token_type_ids[index, :width], self.labels[index],
                     self.candidates[index, :width], index)


@dataclass
class Batch:
    """One batch: (B, L) tokens, labels (B,), candidates (B, L), rows of the Encoded."""

    input_ids: Tensor
    attention_mask: Tensor
    token_type_ids: Tensor
    labels: Tensor
    candidates: Tensor
    index: Tensor


def encode(tokenizer: Any, split: GlueSplit, max_length: int, device: torch.device
           ) -> Encoded:
    enc = tokenize(tokenizer, split.text_a, split.text_b, max_length=max_length, device=device)
    ids, am = enc["input_ids"], enc["attention_mask"]
    cand = ~special_tokens_mask(tokenizer, ids) & am.bool()
    cand[:, 0] = False
    dtype = torch.float32 if split.regression else torch.long
    labels = torch.as_tensor(split.labels, dtype=dtype, device=device)
    return Encoded(ids, am, enc["token_type_ids"], labels, cand)


def splits(task: str, size: int, seed: int, split: str, data_dir: str | None,
           valid_fraction: float) -> tuple[GlueSplit, GlueSplit]:
    """(training subset, evaluation examples) of one GLUE task for a cell (MNLI: its
    matched dev set; ``evaluation_splits`` gives every evaluation set)."""
    train, evals = evaluation_splits(task, size, seed, split, data_dir, valid_fraction)
    return train, next(iter(evals.values()))


def evaluation_splits(task: str, size: int, seed: int, split: str, data_dir: str | None,
                      valid_fraction: float) -> tuple[GlueSplit, dict[str, GlueSplit]]:
    """(training subset, {GLUE eval split name: its examples}) of one GLUE task for a
    cell: {"dev": ...}, or for MNLI {"dev_matched": ..., "dev_mismatched": ...}; under
    "validation" every name maps to the one held-out share of the training file."""
    train = load_glue(task, "train", data_dir)
    names = eval_splits(task)
    if split == "test":
        return (training_subset(train, size, seed),
                {name: load_glue(task, name, data_dir) for name in names})
    held = max(1, int(round(valid_fraction * len(train))))
    perm = np.random.default_rng(stable_seed("glue_bert-validation", task)).permutation(
        len(train))
    pool = train.select(np.sort(perm[held:]))
    held_out = train.select(np.sort(perm[:held]))
    return training_subset(pool, size, seed), dict.fromkeys(names, held_out)
