"""Sampling extended contexts of a previous word from the training stream.

The extended contexts of short context w are the training positions t' whose previous
word stream[t'-1] is w, kept as a multiset. They are kept in the shared
``harness.tasks.multiset.KeyedMultiset`` (CSR layout, vectorised sampling).

Positions whose window of ``window`` tokens (stream[t'-window : t']) would start before 0
are excluded, except for a word that has no other position (it occurs as a previous word
only near the start): its early positions are kept, their windows left-padded with
``pad`` (``<eos>``, a document boundary), so that every previous word of the stream has
an induced prediction.

The multiset lives on the stream's device (``multiset``) and, for the training loop's
draws, on the host (``host_multiset``; the same object on the CPU).
"""

from __future__ import annotations

import torch
from torch import Tensor

from harness.tasks.multiset import KeyedMultiset


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
        self.multiset = KeyedMultiset(prev, positions, vocab_size)
        self.counts = self.multiset.counts
        # The training loop draws on the host (no device value read back); the same
        # multiset when the stream is on the CPU.
        self.host_multiset = self.multiset if stream.device.type == "cpu" else KeyedMultiset(
            prev.cpu(), positions.cpu(), vocab_size)

    def sample(self, words: Tensor, k: int, generator: torch.Generator) -> Tensor:
        """(len(words), k) positions t', drawn uniformly with replacement from the multiset
        of eligible positions whose previous word is the row's word."""
        return self.multiset.sample(words, k, generator)

    def positions_of(self, word: int) -> Tensor:
        """All eligible positions of a previous word (the whole multiset)."""
        return self.multiset.items_of(word)

    def windows(self, positions: Tensor) -> Tensor:
        """(..., window) token windows stream[t'-window : t'] for each position t'."""
        steps = torch.arange(0, self.window, device=positions.device)
        return self.padded[positions[..., None] + steps]
