"""Interpolated modified Kneser-Ney bigram (Chen and Goodman), built vectorised in torch.

Estimation follows KenLM's ``lmplz -o 2`` so that probabilities agree with it:

- bigram discounts D1, D2, D3+ from the counts-of-counts n1..n4 of the bigram counts
  (Y = n1 / (n1 + 2 n2), Dk = k - (k+1) Y n_{k+1} / n_k);
- gamma(v) = (D1 N1(v.) + D2 N2(v.) + D3+ N3+(v.)) / c(v) is the mass moved to the lower order;
- the lower order is itself discounted: with continuation counts a(w) = N1+(.w) (distinct left
  neighbours), discounts from the counts-of-counts of a, and
  p_lower(w) = (a(w) - D(a(w))) / N1+(..) + gamma_1 / |V|, the discounted mass gamma_1
  spread uniformly, so a word never seen after anything still gets probability > 0;
- P(w|v) = max(c(v,w) - D(c(v,w)), 0) / c(v) + gamma(v) p_lower(w); a context never seen has
  gamma = 1, i.e. its row is p_lower.
- When some n_k is 0 or a discount leaves [0, k] (tiny data), the fallback discounts
  (0.5, 1.0, 1.5) are used for that order, as ``lmplz --discount_fallback`` does.

Context handling. The harness stream has ``<eos>`` at each line end and predicts the next
line's first word from ``<eos>``. KenLM instead scores each line as ``<s> w1 .. wn </s>``:
it predicts ``</s>`` after wn and w1 from ``<s>``. For a bigram these are the same model: the
row of context ``<eos>`` has exactly the counts of KenLM's ``<s>`` row (line-first words), the
predicted ``<eos>`` has the counts of ``</s>`` (line-last words), and ``<s>`` is never
predicted, so no probability mass differs. Two bookkeeping details make it exact: the stream's
first word has no ``<eos>`` before it (pass ``start_id`` to prepend one, when building and when
scoring), and KenLM's uniform share is 1/(|V|+1) because it keeps a zero-count ``<unk>`` of its
own beside the corpus words; ours is 1/|V| so rows sum to 1 over the harness vocabulary (the
two differ by < 5e-5 in log10 probability).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor


def csr_entries(start: Tensor, stop: Tensor, total: int | None = None) -> tuple[Tensor, Tensor]:
    """For row ranges [start_i, stop_i) of a CSR layout, the (row i, entry index) of every
    stored entry, vectorised: how sparse bigram rows are scattered into dense ones.

    ``total`` (the number of entries, sum(stop - start)) may be given when the caller knows
    it: then no value is read back from the tensors' device (no GPU synchronisation)."""
    lengths = stop - start
    if total is None:
        total = int(lengths.sum())
    rows = torch.arange(len(start), device=start.device)
    row = torch.repeat_interleave(rows, lengths, output_size=total)
    # entry index = start of its row + position within the row
    shift = torch.repeat_interleave(start - (torch.cumsum(lengths, 0) - lengths), lengths,
                                    output_size=total)
    return row, torch.arange(total, device=start.device) + shift

FALLBACK_DISCOUNTS = (0.5, 1.0, 1.5)
# Contexts with at least this many follow types keep a dense float32 row: on PTB that is 91
# rows (3.6 MB) and saves ~97% of the scatter work in rows() for a typical batch.
DENSE_CACHE_MIN_TYPES = 256


@runtime_checkable
class BigramModel(Protocol):
    """What the harness needs from a bigram: dense rows, pointwise probs, perplexity."""

    vocab_size: int

    def rows(self, prev_ids: Tensor) -> Tensor: ...

    def prob(self, prev_ids: Tensor, next_ids: Tensor) -> Tensor: ...

    def perplexity(self, stream: Tensor, start_id: int | None = None) -> float: ...


def stream_perplexity(model: BigramModel, stream: Tensor, start_id: int | None = None) -> float:
    """exp of the mean negative log P(x_t | x_{t-1}) over t >= 1 (every predicted token).

    With ``start_id`` the stream is scored as if preceded by that token, so its first token is
    predicted too (KenLM's convention, with ``start_id`` = the ``<eos>`` id for ``<s>``).
    """
    stream = _with_start(stream.reshape(-1).long(), start_id)
    probs = model.prob(stream[:-1], stream[1:]).double()
    return math.exp(-probs.log().mean().item())


def _with_start(stream: Tensor, start_id: int | None) -> Tensor:
    if start_id is None:
        return stream
    return torch.cat([torch.tensor([start_id], dtype=torch.long), stream])


def modified_kn_discounts(counts: Tensor) -> tuple[tuple[float, float, float], bool]:
    """(D1, D2, D3+) from the counts-of-counts of ``counts`` and whether fallback was used."""
    n = [int((counts == k).sum()) for k in (1, 2, 3, 4)]
    if min(n[:3]) == 0:
        return FALLBACK_DISCOUNTS, True
    y = n[0] / (n[0] + 2.0 * n[1])
    d = tuple(k - (k + 1) * y * n[k] / n[k - 1] for k in (1, 2, 3))
    if any(not 0.0 <= dk <= k for k, dk in zip((1, 2, 3), d, strict=True)):
        return FALLBACK_DISCOUNTS, True
    return (d[0], d[1], d[2]), False


def _discount_of(counts: Tensor, discounts: tuple[float, float, float]) -> Tensor:
    """D(c) per entry: 0 for c = 0, D1, D2, or D3+ for c >= 3."""
    table = torch.tensor((0.0, *discounts), dtype=torch.float64)
    return table[counts.clamp(max=3)]


@dataclass(frozen=True)
class _Fit:
    keys: Tensor  # sorted prev * V + next of every seen bigram (CSR order)
    counts: Tensor  # c(v, w) per key, float64
    offsets: Tensor  # (V + 1,) row starts into keys for each context v
    context_counts: Tensor  # c(v) = number of times v is followed by a token
    follow_types: Tensor  # N1+(v.)
    gamma: Tensor  # missing mass per context (1 for unseen contexts)
    lower: Tensor  # p_lower(w), sums to 1
    discounts: tuple[float, float, float]
    lower_discounts: tuple[float, float, float]
    used_fallback: tuple[bool, bool]
    unigram: Tensor  # relative frequency of each token in the stream


class KneserNeyBigram:
    """Sparse interpolated modified KN bigram; dense rows are formed on demand.

    Build with :meth:`from_stream`. Probabilities are float64 internally; ``rows`` returns
    float32 by default (they are consumed as training targets).
    """

    def __init__(self, fit: _Fit, vocab_size: int) -> None:
        self._fit = fit
        self.vocab_size = vocab_size
        v = vocab_size
        prev = fit.keys // v
        self._next = fit.keys % v
        # Discounted bigram term max(c - D(c), 0) / c(v) for each stored entry.
        disc = _discount_of(fit.counts.long(), fit.discounts)
        self._value = (fit.counts - disc).clamp_min(0.0) / fit.context_counts[prev]
        frequent = torch.nonzero(fit.follow_types >= DENSE_CACHE_MIN_TYPES).flatten()
        self._slot = torch.full((vocab_size,), -1, dtype=torch.long)
        self._slot[frequent] = torch.arange(len(frequent))
        self._dense = self._scatter_rows(frequent, torch.float32)

    @classmethod
    def from_stream(cls, stream: Tensor, vocab_size: int,
                    start_id: int | None = None) -> KneserNeyBigram:
        """Estimate from a 1-D token stream (bigrams x_{t-1} x_t); see the module docstring."""
        v = int(vocab_size)
        ids = _with_start(stream.reshape(-1).long().cpu(), start_id)
        if len(ids) < 2:
            raise ValueError("need at least two tokens to count a bigram")
        if int(ids.min()) < 0 or int(ids.max()) >= v:
            lo, hi = int(ids.min()), int(ids.max())
            raise ValueError(f"token ids must lie in [0, {v}); got {lo}..{hi}")
        keys, counts_long = torch.unique(ids[:-1] * v + ids[1:], return_counts=True)  # sorted
        prev, nxt = keys // v, keys % v
        counts = counts_long.double()
        discounts, fb_hi = modified_kn_discounts(counts_long)
        disc = _discount_of(counts_long, discounts)
        context_counts = torch.zeros(v, dtype=torch.float64).index_add_(0, prev, counts)
        follow_types = torch.bincount(prev, minlength=v)
        mass = torch.zeros(v, dtype=torch.float64).index_add_(0, prev, torch.minimum(disc, counts))
        seen = context_counts > 0
        gamma = torch.where(seen, mass / context_counts.clamp_min(1.0), torch.ones_like(mass))
        lower, lower_d, fb_lo = _lower_order(torch.bincount(nxt, minlength=v))
        offsets = torch.zeros(v + 1, dtype=torch.long)
        offsets[1:] = torch.cumsum(follow_types, 0)
        unigram = torch.bincount(ids[1:] if start_id is not None else ids, minlength=v).double()
        fit = _Fit(keys, counts, offsets, context_counts, follow_types.double(), gamma, lower,
                   discounts, lower_d, (fb_hi, fb_lo), unigram / unigram.sum())
        return cls(fit, v)

    # --- probabilities -------------------------------------------------------------------

    def rows(self, prev_ids: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
        """Dense P(. | v) for each context in ``prev_ids``: shape (len, V), each row sums to 1."""
        prev = prev_ids.reshape(-1).long().cpu()
        if dtype != torch.float32 or not hasattr(self, "_dense"):
            return self._scatter_rows(prev, dtype)
        slot = self._slot[prev]
        cached = slot >= 0
        if bool(cached.all()):
            return self._dense[slot]
        out = torch.empty((len(prev), self.vocab_size), dtype=dtype)
        out[cached] = self._dense[slot[cached]]
        out[~cached] = self._scatter_rows(prev[~cached], dtype)
        return out

    def _scatter_rows(self, prev: Tensor, dtype: torch.dtype) -> Tensor:
        """Rows built from the sparse counts: gamma(v) p_lower, plus the stored bigram terms."""
        fit = self._fit
        out = fit.gamma.to(dtype)[prev, None] * fit.lower.to(dtype)[None, :]
        row, entry = csr_entries(fit.offsets[prev], fit.offsets[prev + 1])
        col = self._next[entry]  # (row, col) pairs are distinct: no accumulation needed
        out[row, col] += self._value[entry].to(dtype)
        return out

    def prob(self, prev_ids: Tensor, next_ids: Tensor) -> Tensor:
        """P(next | prev) pointwise (float64), by binary search in the sorted bigram keys."""
        prev = prev_ids.reshape(-1).long().cpu()
        nxt = next_ids.reshape(-1).long().cpu()
        fit = self._fit
        query = prev * self.vocab_size + nxt
        pos = torch.searchsorted(fit.keys, query).clamp(max=len(fit.keys) - 1)
        hit = fit.keys[pos] == query
        bigram = torch.where(hit, self._value[pos], torch.zeros((), dtype=torch.float64))
        return bigram + fit.gamma[prev] * fit.lower[nxt]

    def perplexity(self, stream: Tensor, start_id: int | None = None) -> float:
        """Perplexity over every predicted token of ``stream`` (see :func:`stream_perplexity`)."""
        return stream_perplexity(self, stream, start_id)

    # --- the stored layout (for harness.ngram.kn_device) ---------------------------------

    def csr(self) -> tuple[Tensor, Tensor, Tensor]:
        """(offsets (V + 1,), next word per stored entry, discounted bigram term per entry):
        row v's stored entries are ``offsets[v]:offsets[v + 1]``; P(w|v) is the entry's term
        (if (v, w) is stored) plus gamma(v) p_lower(w)."""
        return self._fit.offsets, self._next, self._value

    def dense_cache(self) -> tuple[Tensor, Tensor]:
        """(slot (V,), rows): the float32 rows kept dense for frequent contexts; slot[v] is
        v's row in ``rows`` or -1."""
        return self._slot, self._dense

    # --- parts of the model (for IMM targets and Xie et al.'s noising) -------------------

    def continuation(self) -> Tensor:
        """The lower-order distribution p_lower(w) (discounted continuation + uniform)."""
        return self._fit.lower

    def missing_mass(self) -> Tensor:
        """gamma(v) per context: the weight each row puts on the lower order."""
        return self._fit.gamma

    def context_counts(self) -> Tensor:
        """c(v): how often v occurs as a context (is followed by a token)."""
        return self._fit.context_counts

    def follow_types(self) -> Tensor:
        """N1+(v.): number of distinct words seen after v."""
        return self._fit.follow_types

    def unigram(self) -> Tensor:
        """Relative frequency of each word in the (un-prepended) stream."""
        return self._fit.unigram

    @property
    def discounts(self) -> tuple[float, float, float]:
        """Bigram (D1, D2, D3+)."""
        return self._fit.discounts

    @property
    def lower_discounts(self) -> tuple[float, float, float]:
        """Discounts of the lower order's continuation counts."""
        return self._fit.lower_discounts

    @property
    def used_fallback(self) -> tuple[bool, bool]:
        """Whether (bigram, lower order) fell back to (0.5, 1.0, 1.5)."""
        return self._fit.used_fallback

    @property
    def num_bigrams(self) -> int:
        return len(self._fit.keys)


def _lower_order(cont: Tensor) -> tuple[Tensor, tuple[float, float, float], bool]:
    """KenLM's unigram: discounted continuation counts plus their mass spread uniformly."""
    total = cont.sum().double()
    discounts, fallback = modified_kn_discounts(cont)
    disc = _discount_of(cont, discounts)
    kept = (cont.double() - disc).clamp_min(0.0)
    gamma = (cont.double() - kept).sum() / total
    return kept / total + gamma / len(cont), discounts, fallback


def build(stream: Tensor, vocab_size: int, start_id: int | None = None) -> KneserNeyBigram:
    """Shorthand for :meth:`KneserNeyBigram.from_stream`."""
    return KneserNeyBigram.from_stream(stream, vocab_size, start_id)
