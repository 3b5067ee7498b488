"""The LSTM language model of Xie et al. (2017) / Zaremba et al.: embedding -> dropout ->
stacked single-layer LSTMs, each followed by dropout -> linear decoder.

Dropout masks are drawn from the model's own ``dropout_generator`` (not the global RNG),
so that training is reproducible and resumable from a checkpoint, and so that a forward
pass without dropout (the IMM branch) consumes no randomness at all.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

State = list[tuple[Tensor, Tensor]]


class LstmLm(nn.Module):
    def __init__(self, vocab_size: int, emb_size: int, hidden_size: int, layers: int,
                 dropout: float, init_range: float, tie_weights: bool = False,
                 input_vocab: int | None = None) -> None:
        super().__init__()
        self.vocab_size = vocab_size
        self.p = dropout
        self.encoder = nn.Embedding(input_vocab or vocab_size, emb_size)
        sizes = [emb_size] + [hidden_size] * layers
        self.rnns = nn.ModuleList(
            nn.LSTM(sizes[i], sizes[i + 1], batch_first=True) for i in range(layers)
        )
        self.decoder = nn.Linear(hidden_size, vocab_size)
        if tie_weights:
            if input_vocab not in (None, vocab_size):
                raise ValueError("tied weights need the input and output vocabularies equal")
            self.decoder.weight = self.encoder.weight
        for param in self.parameters():
            nn.init.uniform_(param, -init_range, init_range)
        self.dropout_generator: torch.Generator | None = None

    def zero_state(self, batch: int) -> State:
        ref = self.decoder.weight
        return [
            (ref.new_zeros(1, batch, rnn.hidden_size), ref.new_zeros(1, batch, rnn.hidden_size))
            for rnn in self.rnns
        ]

    def _drop(self, x: Tensor, dropout: bool) -> Tensor:
        if not dropout or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = torch.empty_like(x).bernoulli_(keep, generator=self.dropout_generator)
        return x * mask / keep

    def hidden(self, tokens: Tensor, state: State | None, dropout: bool
               ) -> tuple[Tensor, State]:
        """Top-layer outputs (B, T, H) and the new state, from tokens (B, T)."""
        if state is None:
            state = self.zero_state(tokens.shape[0])
        x = self._drop(self.encoder(tokens), dropout)
        new_state: State = []
        for rnn, s in zip(self.rnns, state, strict=True):
            x, s_new = rnn(x, s)
            x = self._drop(x, dropout)
            new_state.append(s_new)
        return x, new_state

    def forward(self, tokens: Tensor, state: State | None, dropout: bool
                ) -> tuple[Tensor, State]:
        """Logits (B, T, V) and the new state."""
        h, new_state = self.hidden(tokens, state, dropout)
        return self.decoder(h), new_state


def detach_state(state: State) -> State:
    return [(h.detach(), c.detach()) for h, c in state]
