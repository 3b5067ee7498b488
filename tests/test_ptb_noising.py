"""Xie et al.'s noising (LmViews.noise) against the expected counts of the paper's App. B.1.

App. B.1 considers a bigram model with counts c(x, y) (x the context, y the prediction),
a noising probability gamma(x) that may depend on the context, and a noise distribution
q. Case (b), only the predictions noised:

    c~(x, y) = [1 - gamma(x)] c(x, y) + q(y) gamma(x) c(x).

LmViews.noise (variants "kn" and "unigram") noises the target of each position with
probability gamma(x) of its observed previous word x, drawing from q: the counts of
(observed context, training target) are exactly case (b). It also noises the input, with
its own coin of the same probability gamma(x) and an independent draw from q; the counts
the learner sees, (model input, training target), are then case (b) followed by case (a)
(only contexts noised) with the same gamma(x):

    c~(x, y) = [1 - gamma(x)]^2 c(x, y)
               + q(y) gamma(x) [1 - gamma(x)] c(x)
               + q(x) sum_x' gamma(x') [1 - gamma(x')] c(x', y)
               + q(x) q(y) sum_x' gamma(x')^2 c(x').

(This is not case (c): (c), "both noised, independently", has one coin per position for
both -- [1 - gamma(x)] c(x, y) + q(x) q(y) sum_x' gamma(x') c(x') -- where the
implementation flips two coins; test_the_statistic_rejects_wrong_formulas shows the
difference is detected.) "blank" noises only the input, to a blank token: case (a) with
q a point mass on the blank.

Variants: kn: gamma(x) = gamma0 N1+(x.) / c(x) (KN bigram of the training prefix),
q = the KN continuation distribution; unigram: gamma = gamma0, q = the unigram.

How: one LmViews on a real PTB prefix (every position of the prefix, tiled REPS times as
a large batch) is noised once; the noised pairs are counted in bins (the TOP most
frequent words of the prefix one bin each, the other seen words one bin, unseen words
one bin, the blank one bin). The formula's binned expectation is computed twice, from
the printed closed form and as a sum over positions of each position's probabilities
(which must agree); the per-position form also gives each bin's exact variance (a sum of
independent Bernoullis). With z = (O - E) / sd per bin (bins with E < MIN_EXPECTED pooled
into one), X^2 = sum z^2 has mean df and sd about sqrt(2 df): the test asserts
X^2 <= df + 5 sqrt(2 df) (five standard deviations) and every |z| < 6. Over 12 generator
seeds per variant, (X^2 - df) / sqrt(2 df) stayed within [-2, 2.1] and max |z| below 4.5;
the same statistic rejects gamma doubled or halved (over 2000 sd), gamma 5% too large
(11 sd) and case (c) for the joint counts (over 2000 sd).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from torch import Tensor

from harness.ngram.kneser_ney import KneserNeyBigram
from harness.tasks.base import make_generator
from harness.tasks.ptb_lstm.config import PtbLstmParams
from harness.tasks.ptb_lstm.model import LstmLm
from harness.tasks.ptb_lstm.sampler import ContextSampler
from harness.tasks.ptb_lstm.views import LmViews, StaleModel, TrainContext, batchify

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
pytestmark = pytest.mark.skipif(not (DATA / "ptb" / "ptb.train.txt").exists(),
                                reason="PTB data not available")

PREFIX = 5000  # training tokens: the KN bigram's text and the noised batch
ROWS = 10  # the prefix as a (ROWS, PREFIX / ROWS) batch
REPS = 200  # the batch tiled this many times: about 1M noised positions
GAMMA0 = 0.4  # large, so that a wrong gamma shows strongly
TOP = 60
MIN_EXPECTED = 25.0


@dataclass
class Noised:
    """One noising of the tiled prefix and what the formulas need."""

    x: Tensor  # observed previous words (N,)
    y: Tensor  # observed next words
    x_noised: Tensor  # what the main forward reads
    y_noised: Tensor  # the training targets
    gamma: Tensor  # gamma(v) per word, float64 (V,)
    q: Tensor  # the noise distribution, float64 (V,)
    vocab: int
    blank: int | None


@pytest.fixture(scope="module")
def corpus():
    from harness.tasks.ptb_lstm.corpus import load_corpus

    return load_corpus(str(DATA))


def noise_prefix(corpus, variant: str) -> Noised:
    vocab = len(corpus.vocab)
    prefix = corpus.train[:PREFIX]
    bigram = KneserNeyBigram.from_stream(prefix, vocab)
    data = batchify(prefix, ROWS)
    x, y = data[:, :-1].repeat(REPS, 1), data[:, 1:].repeat(REPS, 1)
    blank = vocab if variant == "blank" else None
    params = PtbLstmParams(noising_variant=variant, emb_size=4, hidden_size=4, layers=1)
    cpu = torch.device("cpu")
    model = LstmLm(vocab, 4, 4, 1, 0.0, 0.1, input_vocab=None if blank is None else vocab + 1)
    model.dropout_generator = make_generator(cpu, "dropout")
    ctx = TrainContext(params=params, model=model, bigram=bigram,
                       sampler=ContextSampler(prefix, vocab, 3),
                       generator=make_generator(cpu, "noising-test", variant),
                       steps_per_epoch=1, stale=StaleModel(data, 35, vocab), blank_id=blank)
    views = LmViews(ctx, x, y, model.zero_state(x.shape[0]))
    y_noised = views.noise(GAMMA0)  # ratio = gamma0 (noising_gamma0 is null)
    if variant == "kn":
        gamma = (GAMMA0 * bigram.follow_types().double()
                 / bigram.context_counts().double().clamp_min(1.0)).clamp_max(1.0)
        q = bigram.continuation().double()
    else:
        gamma = torch.full((vocab,), GAMMA0, dtype=torch.float64)
        q = bigram.unigram().double()
    return Noised(x.reshape(-1), y.reshape(-1), views.model_inputs.reshape(-1),
                  y_noised.reshape(-1), gamma, q, vocab, blank)


# ---- bins ---------------------------------------------------------------------------------
def word_bins(n: Noised) -> tuple[Tensor, int]:
    """bin of each id (vocab + 1 ids: the blank last): the TOP most frequent observed
    words one bin each, the other observed words one bin, unseen words one, the blank one."""
    counts = torch.bincount(torch.cat([n.x, n.y]), minlength=n.vocab + 1)
    order = torch.argsort(counts, descending=True, stable=True)
    bins = torch.where(counts > 0, TOP, TOP + 1)
    bins[order[:TOP]] = torch.arange(TOP)
    bins[n.vocab] = TOP + 2  # the blank (never observed)
    return bins, TOP + 3


def observed_bins(a: Tensor, b: Tensor, bins: Tensor, k: int) -> Tensor:
    return torch.bincount(bins[a] * k + bins[b], minlength=k * k).double().view(k, k)


def binned(values: Tensor, bins: Tensor, k: int) -> Tensor:
    """A per-word vector (V or V + 1 entries) summed within bins."""
    return torch.zeros(k, dtype=torch.float64).index_add_(0, bins[: len(values)],
                                                          values.double())


def per_word(n: Noised, values: Tensor, at: Tensor) -> Tensor:
    """sum over positions of ``values`` grouped by the word ``at`` (a (V,) vector)."""
    return torch.zeros(n.vocab, dtype=torch.float64).index_add_(0, at, values.double())


# ---- App. B.1's expected counts, in closed form, binned --------------------------------------
def closed_form(n: Noised, case: str, gamma: Tensor, bins: Tensor, k: int) -> Tensor:
    """sum over bins of the printed formulas: a sparse part over the observed pairs plus
    rank-one parts row(x) col(y)."""
    g = gamma[n.x]
    idx = bins[n.x] * k + bins[n.y]

    def pairs(weight: Tensor) -> Tensor:
        return torch.zeros(k * k, dtype=torch.float64).index_add_(0, idx, weight).view(k, k)

    def outer(row: Tensor, col: Tensor) -> Tensor:
        return torch.outer(binned(row, bins, k), binned(col, bins, k))

    if case == "b":  # [1 - g(x)] c(x, y) + q(y) g(x) c(x)
        return pairs(1 - g) + outer(per_word(n, g, n.x), n.q)
    if case == "b then a":
        return (pairs((1 - g) ** 2)
                + outer(per_word(n, g * (1 - g), n.x), n.q)   # only the target replaced
                + outer(n.q, per_word(n, g * (1 - g), n.y))   # only the input replaced
                + outer(n.q * float((g ** 2).sum()), n.q))    # both replaced
    if case == "a, blank":  # [1 - g] c(x, y) + [x = blank] sum_x' g(x') c(x', y)
        blank = torch.zeros(n.vocab + 1, dtype=torch.float64)
        blank[n.vocab] = 1.0
        return pairs(1 - g) + outer(blank, per_word(n, g, n.y))
    raise ValueError(case)


# ---- the same cases per position: exact means and variances of the binned counts ------------
def position_probs(case: str, ea: Tensor, eb: Tensor, g: Tensor, qb: Tensor) -> Tensor:
    """(d, k, k): P(the noised pair falls in each bin) for positions with observed bins
    ea, eb (one-hot (d, k)) and gamma g (d,); qb the noise distribution binned (k,)."""
    g = g[:, None]
    keep_or_draw = (1 - g) * eb + g * qb  # the target: kept, or replaced by a draw
    if case == "b":
        return ea[:, :, None] * keep_or_draw[:, None, :]
    if case == "b then a":  # two coins, two draws: independent input and target
        return ((1 - g) * ea + g * qb)[:, :, None] * keep_or_draw[:, None, :]
    if case == "a, blank":  # qb = the blank's bin
        return ((1 - g) * ea + g * qb)[:, :, None] * eb[:, None, :]
    if case == "c":  # one coin, two draws
        return ((1 - g)[:, :, None] * ea[:, :, None] * eb[:, None, :]
                + g[:, :, None] * torch.outer(qb, qb))
    raise ValueError(case)


@dataclass
class Moments:
    mean: Tensor  # (k, k) expected counts
    var: Tensor  # (k, k) their variances
    pooled: Tensor  # (k, k) bool: bins pooled into one (small expectations)
    pooled_var: float


def moments(n: Noised, case: str, gamma: Tensor, q: Tensor, bins: Tensor, k: int) -> Moments:
    """Positions are independent, and the law of a position's binned noised pair depends
    only on the bins of its observed pair and on gamma of its previous word: with m the
    number of positions of each such kind, mean = sum m p and variance = sum m p (1 - p)."""
    levels, level = torch.unique(gamma[n.x], return_inverse=True)
    kinds = (bins[n.x] * k + bins[n.y]) * len(levels) + level
    kinds, mult = torch.unique(kinds, return_counts=True)
    pair, g, mult = kinds // len(levels), levels[kinds % len(levels)], mult.double()
    eye = torch.eye(k, dtype=torch.float64)
    p = position_probs(case, eye[pair // k], eye[pair % k], g, binned(q, bins, k))
    mean = torch.einsum("d,dij->ij", mult, p)
    pooled = mean < MIN_EXPECTED
    pp = p[:, pooled].sum(-1)
    return Moments(mean, torch.einsum("d,dij->ij", mult, p * (1 - p)), pooled,
                   float((mult * pp * (1 - pp)).sum()))


def pearson(observed: Tensor, mo: Moments) -> tuple[float, int, float]:
    """(X^2, df, largest |z|): z = (O - E) / sd per bin with E >= MIN_EXPECTED, and one
    for the pool of the others."""
    keep = ~mo.pooled
    o = torch.cat([observed[keep], observed[mo.pooled].sum().view(1)])
    e = torch.cat([mo.mean[keep], mo.mean[mo.pooled].sum().view(1)])
    v = torch.cat([mo.var[keep], torch.tensor([mo.pooled_var], dtype=torch.float64)])
    z = (o - e) / v.clamp_min(1e-12).sqrt()
    return float((z ** 2).sum()), len(e), float(z.abs().max())


def assert_matches(observed: Tensor, mo: Moments, what: str) -> None:
    """X^2 (mean df, sd about sqrt(2 df)) within five sd of df, every bin within 6 sd."""
    assert float(mo.mean.sum()) == pytest.approx(float(observed.sum()), rel=1e-9), what
    chi2, df, zmax = pearson(observed, mo)
    limit = df + 5 * math.sqrt(2 * df)
    assert chi2 <= limit and zmax < 6, (
        f"{what}: X^2 = {chi2:.1f} over {df} bins (limit {limit:.1f}), max |z| {zmax:.2f}")


# ---- the tests ----------------------------------------------------------------------------
@pytest.mark.parametrize("variant", ["kn", "unigram"])
def test_target_noising_matches_case_b_and_the_joint_counts_match_b_then_a(corpus, variant):
    n = noise_prefix(corpus, variant)
    bins, k = word_bins(n)
    for case in ("b", "b then a"):  # the per-position model sums to the printed formula
        torch.testing.assert_close(moments(n, case, n.gamma, n.q, bins, k).mean,
                                   closed_form(n, case, n.gamma, bins, k), rtol=1e-9, atol=1e-6)
    # Case (b): the training targets against the observed previous words.
    assert_matches(observed_bins(n.x, n.y_noised, bins, k),
                   moments(n, "b", n.gamma, n.q, bins, k), f"{variant}: case (b)")
    # What the learner sees: (noised input, noised target).
    assert_matches(observed_bins(n.x_noised, n.y_noised, bins, k),
                   moments(n, "b then a", n.gamma, n.q, bins, k), f"{variant}: joint")
    # The share of targets changed: gamma(x) (1 - q(y)) at each position, within 5 sd.
    p = n.gamma[n.x] * (1 - n.q[n.y])
    changed = float((n.y_noised != n.y).double().sum())
    assert abs(changed - float(p.sum())) < 5 * math.sqrt(float((p * (1 - p)).sum()))
    assert float(p.mean()) > 0.1  # a fair share of the positions is noised


def test_blank_noising_is_case_a_with_the_blank(corpus):
    n = noise_prefix(corpus, "blank")
    bins, k = word_bins(n)
    assert torch.equal(n.y_noised, n.y)  # targets untouched
    blank = torch.zeros(n.vocab + 1, dtype=torch.float64)
    blank[n.vocab] = 1.0
    mo = moments(n, "a, blank", n.gamma, blank, bins, k)
    torch.testing.assert_close(mo.mean, closed_form(n, "a, blank", n.gamma, bins, k),
                               rtol=1e-9, atol=1e-6)
    assert_matches(observed_bins(n.x_noised, n.y, bins, k), mo, "blank: case (a)")


def test_the_statistic_rejects_wrong_formulas(corpus):
    """The check can fail: gamma doubled, halved or 5% off, or the wrong case of App. B.1."""
    n = noise_prefix(corpus, "kn")
    bins, k = word_bins(n)
    target = observed_bins(n.x, n.y_noised, bins, k)
    joint = observed_bins(n.x_noised, n.y_noised, bins, k)
    wrong = {
        "gamma doubled": (target, "b", 2 * n.gamma),
        "gamma halved": (target, "b", 0.5 * n.gamma),
        "gamma x 1.05": (target, "b", 1.05 * n.gamma),
        "case (c) for the joint": (joint, "c", n.gamma),
        "case (b) for the joint": (joint, "b", n.gamma),
    }
    for what, (observed, case, gamma) in wrong.items():
        with pytest.raises(AssertionError):
            assert_matches(observed, moments(n, case, gamma, n.q, bins, k), what)
