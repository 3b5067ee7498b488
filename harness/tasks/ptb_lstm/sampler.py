"""Sampling extended contexts of a previous word from the training stream.

The extended contexts of short context w are the training positions t' whose previous
word stream[t'-1] is w, kept as a multiset. A CSR layout is built once, vectorised:
``order`` lists the eligible positions sorted by previous word, ``offsets[w]`` is where
w's positions start and ``counts[w]`` how many there are; sampling is
``order[offsets[w] + floor(u * counts[w])]``.

Positions whose window of ``window`` tokens (stream[t'-window : t']) would start before 0
are excluded, except for a word that has no other position (it occurs as a previous word
only near the start): its early positions are kept, their windows left-padded with
``pad`` (``<eos>``, a document boundary), so that every previous word of the stream has
an induced prediction.
"""

from __future__ import annotations

import torch
from torch import Tensor


class ContextSampler:
    def __init__(self, stream: Tensor, vocab_size: int, window: int, pad: int = 0) -> None:
        stream = stream.long()
        self.window = window
        self.padded = torch.cat([stream.new_full((window,), pad), stream])
        positions = torch.arange(1, len(stream), device=stream.device)  # targets t'
        prev = stream[positions - 1]
        full = positions >= window
        has_full = torch.bincount(prev[full], minlength=vocab_size) > 0
        keep = full | ~has_full[prev]
        positions, prev = positions[keep], prev[keep]
        perm = torch.argsort(prev, stable=True)
        self.order = positions[perm]
        self.counts = torch.bincount(prev, minlength=vocab_size)
        self.offsets = torch.cumsum(self.counts, 0) - self.counts

    def sample(self, words: Tensor, k: int, generator: torch.Generator) -> Tensor:
        """(len(words), k) positions t', drawn uniformly with replacement from the multiset
        of eligible positions whose previous word is the row's word."""
        counts = self.counts[words]
        if bool((counts == 0).any()):
            raise ValueError("a word has no training position as a previous word")
        u = torch.rand(len(words), k, generator=generator, device=words.device)
        pick = self.offsets[words, None] + (u * counts[:, None]).long().clamp_max(
            counts[:, None] - 1)
        return self.order[pick]

    def positions_of(self, word: int) -> Tensor:
        """All eligible positions of a previous word (the whole multiset)."""
        start = int(self.offsets[word])
        return self.order[start:start + int(self.counts[word])]

    def windows(self, positions: Tensor) -> Tensor:
        """(..., window) token windows stream[t'-window : t'] for each position t'."""
        steps = torch.arange(0, self.window, device=positions.device)
        return self.padded[positions[..., None] + steps]
