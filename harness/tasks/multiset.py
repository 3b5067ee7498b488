"""The multiset of extended contexts of each short context, in a CSR layout (any task).

IMM's induced model for a short context w averages the full model over the training
items (positions, examples) whose short context is w, kept as a multiset: an item occurs
as often as it does in the data. ``KeyedMultiset(keys, items, num_keys)`` groups ``items``
(any int64 ids: stream positions, sentence * width + position, ...) by ``keys`` (their
short contexts, e.g. the previous token), built once, vectorised: ``order`` lists the
items sorted by key (stable), ``offsets[w]`` is where w's items start and ``counts[w]``
how many there are; sampling is ``order[offsets[w] + floor(u * counts[w])]``.

(The PTB task's ``ContextSampler`` wraps one with its window bookkeeping.)
"""

from __future__ import annotations

import torch
from torch import Tensor


class KeyedMultiset:
    """Items grouped by key; uniform sampling with replacement within a key."""

    def __init__(self, keys: Tensor, items: Tensor, num_keys: int) -> None:
        keys, items = keys.reshape(-1).long(), items.reshape(-1).long()
        if keys.shape != items.shape:
            raise ValueError(f"keys {tuple(keys.shape)} and items {tuple(items.shape)} differ")
        perm = torch.argsort(keys, stable=True)
        self.order = items[perm]
        self.counts = torch.bincount(keys, minlength=num_keys)
        self.offsets = torch.cumsum(self.counts, 0) - self.counts

    def __len__(self) -> int:
        return len(self.order)

    def sample(self, keys: Tensor, k: int, generator: torch.Generator) -> Tensor:
        """(len(keys), k) items, drawn uniformly with replacement from each key's items."""
        counts = self.counts[keys]
        if bool((counts == 0).any()):
            missing = keys[counts == 0][:5].tolist()
            raise ValueError(f"keys {missing} have no item in the multiset")
        u = torch.rand(len(keys), k, generator=generator, device=keys.device)
        pick = self.offsets[keys, None] + (u * counts[:, None]).long().clamp_max(
            counts[:, None] - 1)
        return self.order[pick]

    def items_of(self, key: int) -> Tensor:
        """All items of one key (the whole multiset of its extended contexts)."""
        start = int(self.offsets[key])
        return self.order[start:start + int(self.counts[key])]
