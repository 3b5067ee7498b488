"""Xie et al.'s (2017) noising of the language model's inputs and targets.

The default (``noising_coins: one``) follows the noising loop of the authors' code
(stanfordmlgroup/nlm-noising, ``loader.py``), the code that produced the paper's Table 1
noising row. At each position of a training batch, with x the observed input word (the
previous word of the target y, never a noised one):

- ONE Bernoulli draw, with probability
    gamma0 * N1+(x.) / c(x)                                  (kn: absolute discounting)
    gamma0 * (D1 N1(x.) + D2 N2(x.) + D3+ N3+(x.)) / c(x)    (mbgkn: modified-KN discounts)
    gamma0                                                   (unigram, blank: constant)
  where c(x) counts the bigrams (x, .) of the training text, Nk(x.) the distinct words
  seen exactly k times after x (N3+: three or more times, N1+: at least once) and D1, D2,
  D3+ are the modified Kneser-Ney discounts of the text's bigram counts of counts;
  ``noising_discounting`` turns the discounting on or off for any scheme, as the
  reference's ``--absolute_discounting`` flag does.
- When it fires: kn and mbgkn replace the input AND the target by two independent draws
  from the continuation distribution N1+(.w) / N1+(..) (distinct words seen before w,
  undiscounted); unigram replaces only the input, by a draw from the unigram c(w) / N;
  blank replaces only the input, by the blank token. Otherwise nothing changes.
- ``<eos>`` (a line end) is a word like any other: it is noised and drawn as the others.
  The text's first word has no word before it; when it has no other history it counts
  one, as in the reference. Noising one position does not touch its neighbours (the
  target of t - 1 and the input of t are the same word of the text, noised apart).

The counts are those of the cell's training prefix (the text the restricted bigram is
fitted on), also when the restricted model is an ARPA file. Where the modified-KN
discounts of a tiny text are undefined or out of range, the KN fit's fallback discounts
(0.5, 1.0, 1.5) enter the mbgkn rate (the reference's formula would divide by zero).

``noising_coins: two`` is the harness's earlier form, kept for comparison: a coin for the
input and another for the target, each with the probability above, kn drawing from the
KN bigram's discounted lower order (its continuation share plus a uniform share) and
unigram replacing the target too.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
from torch import Tensor

from harness.ngram.kneser_ney import KneserNeyBigram
from harness.tasks.ptb_lstm.config import PtbLstmParams

DISCOUNTED_BY_DEFAULT = frozenset({"kn", "mbgkn"})


@dataclass(frozen=True)
class NoisingCounts:
    """The training text's statistics that noising reads (float64, one entry per word)."""

    follow_types: Tensor  # N1+(x.)
    context_counts: Tensor  # c(x)
    modkn_mass: Tensor  # (D1 N1(x.) + D2 N2(x.) + D3+ N3+(x.)) / c(x)
    continuation: Tensor  # N1+(.w) / N1+(..), the first word's missing history counted
    unigram: Tensor  # c(w) / N
    kn_lower: Tensor  # the KN bigram's lower order (the two-coin form's kn draws)

    @classmethod
    def of(cls, kn: KneserNeyBigram) -> NoisingCounts:
        """From the KN fit of the training text (fitted without a start token)."""
        _, following, _ = kn.csr()  # the second word of every distinct bigram
        histories = torch.bincount(following, minlength=kn.vocab_size).double()
        # A word of the text with no word before it can only be the text's first word.
        histories[(histories == 0) & (kn.unigram() > 0)] = 1.0
        return cls(follow_types=kn.follow_types().double(),
                   context_counts=kn.context_counts().double(),
                   modkn_mass=kn.missing_mass().double(),
                   continuation=histories / histories.sum(),
                   unigram=kn.unigram().double(),
                   kn_lower=kn.continuation().double())

    def to(self, device: torch.device) -> NoisingCounts:
        return NoisingCounts(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})


def discounted(params: PtbLstmParams) -> bool:
    """Whether the rate is scaled by the input word's discount (the scheme's default when
    ``noising_discounting`` is null)."""
    if params.noising_discounting is not None:
        return params.noising_discounting
    return params.noising_variant in DISCOUNTED_BY_DEFAULT


def noising_rate(params: PtbLstmParams, counts: NoisingCounts, x: Tensor,
                 gamma0: float) -> Tensor:
    """The probability that each position of ``x`` is noised (float64, shaped as x)."""
    if not discounted(params):
        return torch.full(x.shape, gamma0, dtype=torch.float64, device=x.device)
    if params.noising_variant == "mbgkn":
        return gamma0 * counts.modkn_mass[x]
    return gamma0 * counts.follow_types[x] / counts.context_counts[x].clamp_min(1.0)


def noise_batch(params: PtbLstmParams, counts: NoisingCounts, x: Tensor, y: Tensor,
                gamma0: float, generator: torch.Generator,
                blank_id: int | None) -> tuple[Tensor, Tensor]:
    """(noised inputs, noised targets) of a (B, T) batch; see the module docstring."""
    if params.noising_coins == "two":
        return _two_coins(params, counts, x, y, gamma0, generator, blank_id)
    fire = torch.rand(x.shape, generator=generator, device=x.device) < noising_rate(
        params, counts, x, gamma0)
    scheme = params.noising_variant
    if scheme == "blank":
        return torch.where(fire, torch.full_like(x, _blank(blank_id)), x), y
    dist = counts.unigram if scheme == "unigram" else counts.continuation
    draw_in = _draws(dist, x, generator)
    if scheme == "unigram":
        return torch.where(fire, draw_in, x), y
    return torch.where(fire, draw_in, x), torch.where(fire, _draws(dist, y, generator), y)


def _two_coins(params: PtbLstmParams, counts: NoisingCounts, x: Tensor, y: Tensor,
               gamma0: float, generator: torch.Generator,
               blank_id: int | None) -> tuple[Tensor, Tensor]:
    """The harness's earlier form: independent coins (and draws) for input and target."""
    if discounted(params):
        gamma = noising_rate(params, counts, x, gamma0).clamp_max(1.0)
    else:  # a float32 constant, as this form always compared it
        gamma = torch.full(x.shape, min(gamma0, 1.0), device=x.device)
    flip_in = torch.rand(x.shape, generator=generator, device=x.device) < gamma
    if params.noising_variant == "blank":
        return torch.where(flip_in, torch.full_like(x, _blank(blank_id)), x), y
    flip_out = torch.rand(x.shape, generator=generator, device=x.device) < gamma
    dist = counts.unigram if params.noising_variant == "unigram" else counts.kn_lower
    draw_in, draw_out = _draws(dist, x, generator), _draws(dist, y, generator)
    return torch.where(flip_in, draw_in, x), torch.where(flip_out, draw_out, y)


def _draws(dist: Tensor, like: Tensor, generator: torch.Generator) -> Tensor:
    """A draw from ``dist`` for every position of ``like`` (drawn for all, kept where a
    coin fired: no count of the fired positions is read back from the device)."""
    return torch.multinomial(dist, like.numel(), replacement=True,
                             generator=generator).view_as(like)


def _blank(blank_id: int | None) -> int:
    if blank_id is None:
        raise RuntimeError("blank noising needs the model's extra input token (blank_id)")
    return blank_id
