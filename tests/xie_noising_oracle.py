"""The oracle for the LM task's noising: the noising loop of Xie et al.'s code, one
position at a time, in numpy.

Written from reading stanfordmlgroup/nlm-noising (``loader.py``: the vocabulary's
frequencies and history counts, ``noise_batch``; ``utils.py``: the bigram counts, their
continuations and the modified-KN discounts; ``lm.py``: the flags), not copied from it.
What it transcribes:

- the counts come from the training text, a list of word ids: the bigram counts c(a, b);
  per context a, total(a) = sum_b c(a, b) and distinct(a) = the number of b with
  c(a, b) > 0; the unigram frequencies c(w) / N over every token; the history counts
  (distinct words seen before w), the first word given one history when it has none;
  D1 = 1 - 2 Y n2 / n1, D2 = 2 - 3 Y n3 / n2, D3+ = 3 - 4 Y n4 / n3 with
  Y = n1 / (n1 + 2 n2), nk the number of bigram types seen k times, and per context the
  number of its bigram types seen once, twice, and three or more times;
- ``noise_batch``: for every (row, col), p from the observed input x[row, col]
  (``--absolute_discounting``: gamma / total * distinct, or for ``mbgkn``
  gamma * (D1 N1 + D2 N2 + D3+ N3+) / total; else gamma), one binomial draw, and when it
  fires: ``blank`` sets the input to the blank id; ``unigram`` draws the input from the
  frequencies; a scheme containing ``kn`` draws the input and then the target from the
  history frequencies. A draw is ``bisect(cumsum, u * cumsum[-1])``.

Our variant names map to the reference's flags as ``FLAGS`` says.
"""

from __future__ import annotations

import bisect
from collections import Counter, defaultdict
from dataclasses import dataclass

import numpy as np

# our noising_variant -> (--scheme, --ngram_scheme, --absolute_discounting)
FLAGS = {
    "kn": ("ngram", "kn", True),
    "mbgkn": ("ngram", "mbgkn", True),
    "unigram": ("ngram", "unigram", False),
    "blank": ("blank", "unigram", False),
}


class ReferenceCounts:
    """The statistics the reference's loader builds from the training text."""

    def __init__(self, tokens: list[int], vocab: int) -> None:
        bigrams = Counter(zip(tokens[:-1], tokens[1:], strict=True))
        self.total: dict[int, int] = defaultdict(int)
        self.distinct: dict[int, int] = defaultdict(int)
        for (a, _), count in bigrams.items():
            self.total[a] += count
            self.distinct[a] += 1
        counter = Counter(tokens)
        self.frequencies = np.zeros(vocab)
        for word, count in counter.items():
            self.frequencies[word] = count / float(len(tokens))
        histories: dict[int, set[int]] = defaultdict(set)
        for k in range(1, len(tokens)):
            histories[tokens[k]].add(tokens[k - 1])
        history_counts = {w: len(s) for w, s in histories.items()}
        if tokens[0] not in history_counts:
            history_counts[tokens[0]] = 1
        total_histories = sum(history_counts.values())
        self.hist_freqs = np.zeros(vocab)
        for word, count in history_counts.items():
            self.hist_freqs[word] = count / float(total_histories)
        self.frequencies_cumsum = np.cumsum(self.frequencies)
        self.hist_freqs_cumsum = np.cumsum(self.hist_freqs)
        self._discounts(bigrams)

    def _discounts(self, bigrams: Counter) -> None:
        n = {k: float(sum(1 for c in bigrams.values() if c == k)) for k in (1, 2, 3, 4)}
        y = n[1] / (n[1] + 2 * n[2])
        self.d1 = 1 - 2 * y * (n[2] / n[1])
        self.d2 = 2 - 3 * y * (n[3] / n[2])
        self.d3p = 3 - 4 * y * (n[4] / n[3])
        self.n1: Counter = Counter()
        self.n2: Counter = Counter()
        self.n3p: Counter = Counter()
        for (a, _), count in bigrams.items():
            if count == 1:
                self.n1[a] += 1
            elif count == 2:
                self.n2[a] += 1
            else:
                self.n3p[a] += 1

    def rate(self, x: int, gamma: float, variant: str) -> float:
        """p of the loop at a position whose input word is ``x``."""
        _, ngram_scheme, absolute_discounting = FLAGS[variant]
        if not absolute_discounting:
            return gamma
        total, distinct = self.total[x], self.distinct[x]
        if ngram_scheme != "mbgkn":
            return (gamma / total) * distinct
        return gamma * (self.d1 * self.n1[x] + self.d2 * self.n2[x]
                        + self.d3p * self.n3p[x]) / float(total)

    def distribution(self, variant: str) -> np.ndarray:
        """What a fired position's replacement is drawn from (normalised)."""
        cumsum = (self.hist_freqs_cumsum if "kn" in FLAGS[variant][1]
                  else self.frequencies_cumsum)
        return np.diff(cumsum, prepend=0.0) / cumsum[-1]


def sample_index(cumsum: np.ndarray, rng: np.random.Generator) -> int:
    return bisect.bisect(cumsum, rng.random() * cumsum[-1])


def noise_batch(x: np.ndarray, y: np.ndarray, counts: ReferenceCounts, gamma: float,
                variant: str, rng: np.random.Generator, blank: int | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
    """The reference loop: (noised inputs, noised targets) of a (rows, cols) batch."""
    if gamma == 0.0:
        return x, y
    scheme, ngram_scheme, _ = FLAGS[variant]
    x_, y_ = np.array(x), np.array(y)
    for row in range(x.shape[0]):
        for col in range(x.shape[1]):
            p = counts.rate(int(x[row, col]), gamma, variant)
            if not rng.binomial(1, p):
                continue
            if scheme == "blank":
                x_[row, col] = blank
            elif "kn" not in ngram_scheme:
                x_[row, col] = sample_index(counts.frequencies_cumsum, rng)
            else:
                x_[row, col] = sample_index(counts.hist_freqs_cumsum, rng)
                y_[row, col] = sample_index(counts.hist_freqs_cumsum, rng)
    return x_, y_


@dataclass(frozen=True)
class Law:
    """What the loop does at one position, as the moments of the tests need it: the
    probability that the position fires, per input word, and the draw distribution."""

    rate: np.ndarray  # (V,) p for each input word (nan where the word is no context)
    draw: np.ndarray  # (V,) the replacement's distribution (kn, unigram)


def law(counts: ReferenceCounts, gamma: float, variant: str, vocab: int) -> Law:
    rate = np.full(vocab, np.nan)
    for x in list(counts.total):
        rate[x] = counts.rate(x, gamma, variant)
    return Law(rate, counts.distribution(variant))
