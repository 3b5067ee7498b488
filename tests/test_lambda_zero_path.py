"""A method at lambda 0 takes exactly its base method's path: interpolation at r = 0
returns the model's own prediction (the same tensor), so the PTB task scores it with
log_softmax as it scores the baseline, and the two are equal bit for bit on any processor
(the log of a softmax differs from log_softmax in the last bits, by processor)."""

from __future__ import annotations

import torch

from harness.methods.baseline import Baseline
from harness.methods.config import BaselineParams, InterpolationParams
from harness.methods.interpolation import Interpolation
from harness.ngram.kneser_ney import KneserNeyBigram
from harness.tasks.ptb_lstm.evaluate import _nll


def setup() -> tuple[KneserNeyBigram, torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    vocab = 50
    stream = torch.randint(0, vocab, (2000,), generator=gen)
    bigram = KneserNeyBigram.from_stream(stream, vocab)
    logits = 8 * torch.randn(4, 35, vocab, generator=gen)
    inputs = torch.randint(0, vocab, (4, 35), generator=gen)
    targets = torch.randint(0, vocab, (4, 35), generator=gen)
    return bigram, logits, inputs, targets


def test_interpolation_at_r_zero_predicts_q_itself() -> None:
    q = torch.softmax(torch.randn(3, 5), -1)
    assert Interpolation(InterpolationParams(), 0.0).predict(q, torch.rand(3, 5)) is q
    assert Interpolation(InterpolationParams(), 0.5).predict(q, torch.rand(3, 5)) is not q


def test_ptb_nll_at_lambda_zero_is_the_baselines_bit_for_bit() -> None:
    bigram, logits, inputs, targets = setup()
    base = _nll(Baseline(BaselineParams(), None), bigram, logits, inputs, targets)
    zero = _nll(Interpolation(InterpolationParams(), 0.0), bigram, logits, inputs, targets)
    assert torch.equal(zero, base)
    expected = -torch.log_softmax(logits, -1).gather(-1, targets[..., None]).sum()
    assert torch.equal(base, expected)
    mixed = _nll(Interpolation(InterpolationParams(), 0.2), bigram, logits, inputs, targets)
    assert not torch.equal(mixed, base)  # lambda > 0 still mixes the bigram in
