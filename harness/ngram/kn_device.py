"""A Kneser-Ney bigram's parts on the training device, for a training loop's hot path.

``KneserNeyBigram.rows`` forms dense rows on the host, so a GPU step would copy the batch's
previous words to the host and the rows back. ``DeviceBigram`` keeps the sparse layout
(row offsets, stored entries, gamma, p_lower, the dense cache of frequent rows) on the
device and forms the same rows there from index tensors and entry counts computed once
per batch (``RowPlan``): nothing is read back to the host, so a CUDA stream never waits.
The rows are bit-identical to ``KneserNeyBigram.rows`` (same float32 operations).

It also serves the sparse form P(.|v) = gamma(v) p_lower + S_v (S_v: the stored,
discounted entries of row v), with which a cross-entropy against KN rows needs no dense
(items, V) target (``entries``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from harness.ngram.kneser_ney import KneserNeyBigram, csr_entries


@dataclass(frozen=True)
class RowPlan:
    """How to form the rows of a fixed set of contexts (``words``) on the device: which of
    them come from the dense cache and how many stored entries the others have."""

    words: Tensor           # (D,) contexts, on the device
    cached_at: Tensor       # positions in ``words`` whose row is in the dense cache
    cached_slot: Tensor     # their slots in the cache
    uncached_at: Tensor     # the other positions
    uncached_entries: int   # stored entries of the uncached rows (sizes the scatter)
    entries: int            # stored entries of all D rows

    @classmethod
    def build(cls, bigram: KneserNeyBigram, words: Tensor, device: torch.device) -> RowPlan:
        """Host-side work, once per fixed set of contexts (e.g. one training batch)."""
        host = words.reshape(-1).long().cpu()
        slot, _ = bigram.dense_cache()
        offsets, _, _ = bigram.csr()
        slots = slot[host]
        cached = slots >= 0
        lengths = offsets[host + 1] - offsets[host]
        return cls(
            words=host.to(device),
            cached_at=torch.nonzero(cached).flatten().to(device),
            cached_slot=slots[cached].to(device),
            uncached_at=torch.nonzero(~cached).flatten().to(device),
            uncached_entries=int(lengths[~cached].sum()),
            entries=int(lengths.sum()),
        )


class DeviceBigram:
    """The parts of a ``KneserNeyBigram`` the training loop reads, on one device."""

    def __init__(self, bigram: KneserNeyBigram, device: torch.device) -> None:
        offsets, nxt, value = bigram.csr()
        slot, dense = bigram.dense_cache()
        self.bigram, self.device, self.vocab_size = bigram, device, bigram.vocab_size
        self.offsets = offsets.to(device)
        self.next = nxt.to(device)
        self.value = value.to(torch.float32).to(device)
        self.gamma = bigram.missing_mass().to(torch.float32).to(device)
        self.lower = bigram.continuation().to(torch.float32).to(device)
        self.dense = dense.to(device)

    def rows(self, plan: RowPlan) -> Tensor:
        """(D, V) float32 rows P(. | words), equal to ``KneserNeyBigram.rows(words)``."""
        out = torch.empty(len(plan.words), self.vocab_size, device=self.device)
        out[plan.cached_at] = self.dense[plan.cached_slot]
        prev = plan.words[plan.uncached_at]
        part = self.gamma[prev, None] * self.lower[None, :]
        row, entry = csr_entries(self.offsets[prev], self.offsets[prev + 1],
                                 plan.uncached_entries)
        part[row, self.next[entry]] += self.value[entry]
        out[plan.uncached_at] = part
        return out

    def entries(self, plan: RowPlan) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """The sparse part of the D rows: (row in 0..D-1, column, value) of every stored
        entry, grouped by row, and each row's first entry (offsets for embedding_bag)."""
        start, stop = self.offsets[plan.words], self.offsets[plan.words + 1]
        row, entry = csr_entries(start, stop, plan.entries)
        lengths = stop - start
        return row, self.next[entry], self.value[entry], torch.cumsum(lengths, 0) - lengths
