"""The LM task's noising (LmViews.noise) against Xie et al.'s code and App. B.1's counts.

The default (``noising_coins: one``) must do what the noising loop of Xie et al.'s code
does, the code behind the paper's Table 1 noising row. The oracle,
``tests/xie_noising_oracle.py``, transcribes that loop one position at a time in numpy
(its docstring says what it reads from the reference). Per scheme:

- the rate of every word of the text and the draw distribution, product against
  oracle, to float64 rounding;
- the product's noised batch against the oracle loop's law: each position fires with the
  oracle's rate of its observed input x; when it fires, kn and mbgkn replace the input
  and the target by two independent draws from the oracle's history frequencies q --
  App. B.1's case (c), "both noised", with ONE coin per position:

      c~(x, y) = [1 - gamma(x)] c(x, y) + q(x) q(y) sum_x' gamma(x') c(x'),

  and the training targets against the observed inputs follow case (b),
  c~(x, y) = [1 - gamma(x)] c(x, y) + q(y) gamma(x) c(x);

  unigram replaces only the input, by a unigram draw, and blank only the input, by the
  blank: case (a), c~(x, y) = [1 - gamma(x)] c(x, y) + q(x) sum_x' gamma(x') c(x', y);
- the oracle's own loop against the same law, by the same statistic, so that the law is
  the loop's.

``noising_coins: two`` (the harness's earlier form) flips a coin for the input and
another for the target, each with gamma(x), kn drawing from the KN bigram's lower order:
the counts of (observed context, training target) are case (b), and those the learner
sees, (model input, training target), case (b) followed by case (a) with the same gamma:

    c~(x, y) = [1 - gamma(x)]^2 c(x, y)
               + q(y) gamma(x) [1 - gamma(x)] c(x)
               + q(x) sum_x' gamma(x') [1 - gamma(x')] c(x', y)
               + q(x) q(y) sum_x' gamma(x')^2 c(x').

How: one LmViews on a real PTB prefix (every position of the prefix, tiled REPS times as
a large batch) is noised once; the noised pairs are counted in bins (the TOP most
frequent words of the prefix one bin each, the other seen words one bin, unseen words
one bin, the blank one bin). The law's binned expectation is computed twice, from the
printed closed form and as a sum over positions of each position's probabilities (which
must agree); the per-position form also gives each bin's exact variance (a sum of
independent Bernoullis). With z = (O - E) / sd per bin (bins with E < MIN_EXPECTED pooled
into one), X^2 = sum z^2 has mean df and sd about sqrt(2 df): the test asserts
X^2 <= df + 5 sqrt(2 df) (five standard deviations) and every |z| < 6; the number of
replaced words must lie within 5 sd of its expectation. Over 8 generator seeds per
scheme, (X^2 - df) / sqrt(2 df) stayed within [-2.5, 2.7], max |z| at most 4.1 and the
replaced count within 2.6 sd; test_the_statistic_rejects_wrong_laws shows what fails:
one coin read as two (667 sd), two read as one (2344 sd), the KN lower order for the
continuation (6553 sd), the rate 5% off (28 to 42 sd in the replaced count).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from conftest import DATA, needs_ptb
from torch import Tensor
from xie_noising_oracle import ReferenceCounts, law, noise_batch

from harness.methods.config import NoisingParams
from harness.methods.noising import Noising
from harness.ngram.kneser_ney import KneserNeyBigram
from harness.tasks.base import make_generator
from harness.tasks.ptb_lstm.config import PtbLstmParams
from harness.tasks.ptb_lstm.model import LstmLm
from harness.tasks.ptb_lstm.noising import NoisingCounts, noising_rate
from harness.tasks.ptb_lstm.sampler import ContextSampler
from harness.tasks.ptb_lstm.views import LmViews, StaleModel, TrainContext, batchify

pytestmark = needs_ptb

PREFIX = 5000  # training tokens: the counts' text and the noised batch
ROWS = 10  # the prefix as a (ROWS, PREFIX / ROWS) batch
REPS = 200  # the batch tiled this many times: about 1M noised positions
ORACLE_REPS = 20  # the oracle loop's own sample: about 100k positions
GAMMA0 = 0.4  # large, so that a wrong rate shows strongly
TOP = 60
MIN_EXPECTED = 25.0
SCHEMES = ("kn", "mbgkn", "unigram", "blank")


@dataclass
class Noised:
    """One noising of the tiled prefix and what the laws need."""

    x: Tensor  # observed previous words (N,)
    y: Tensor  # observed next words
    x_noised: Tensor  # what the main forward reads
    y_noised: Tensor  # the training targets
    gamma: Tensor  # the rate per word, float64 (V,)
    q: Tensor  # the replacement's distribution, float64 (V + 1,: the blank last)
    vocab: int


@pytest.fixture(scope="module")
def corpus():
    from harness.tasks.ptb_lstm.corpus import load_corpus

    return load_corpus(str(DATA))


@pytest.fixture(scope="module")
def prefix(corpus) -> Tensor:
    return corpus.train[:PREFIX]


@pytest.fixture(scope="module")
def reference(corpus, prefix) -> ReferenceCounts:
    return ReferenceCounts(prefix.tolist(), len(corpus.vocab))


def observed_pairs(prefix: Tensor, reps: int) -> tuple[Tensor, Tensor]:
    data = batchify(prefix, ROWS)
    return data[:, :-1].repeat(reps, 1), data[:, 1:].repeat(reps, 1)


def make_views(prefix: Tensor, vocab: int, variant: str, coins: str = "one",
               seed: str = "noising-test", reps: int = REPS, **params) -> LmViews:
    """LmViews of the prefix tiled ``reps`` times, with a fresh noising generator."""
    bigram = KneserNeyBigram.from_stream(prefix, vocab)
    x, y = observed_pairs(prefix, reps)
    blank = vocab if variant == "blank" else None
    settings = PtbLstmParams(noising_variant=variant, noising_coins=coins, emb_size=4,
                             hidden_size=4, layers=1, **params)
    cpu = torch.device("cpu")
    model = LstmLm(vocab, 4, 4, 1, 0.0, 0.1, input_vocab=None if blank is None else vocab + 1)
    model.dropout_generator = make_generator(cpu, "dropout")
    ctx = TrainContext(params=settings, model=model, bigram=bigram,
                       sampler=ContextSampler(prefix, vocab, 3),
                       generator=make_generator(cpu, seed, variant, coins),
                       steps_per_epoch=1, stale=StaleModel(batchify(prefix, ROWS), 35, vocab),
                       blank_id=blank)
    return LmViews(ctx, x, y, model.zero_state(x.shape[0]))


def product_noising(prefix: Tensor, vocab: int, variant: str, coins: str = "one",
                    seed: str = "noising-test") -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(x, y, noised x, noised y) of LmViews.noise at gamma0 = GAMMA0, flattened."""
    views = make_views(prefix, vocab, variant, coins, seed)
    y_noised = views.noise(GAMMA0)  # ratio = gamma0 (noising_gamma0 is null)
    return (views.inputs.reshape(-1), views.targets.reshape(-1),
            views.model_inputs.reshape(-1), y_noised.reshape(-1))


def with_blank(q: np.ndarray | Tensor, vocab: int, variant: str) -> Tensor:
    """The replacement's distribution over vocab + 1 ids (the blank last)."""
    out = torch.zeros(vocab + 1, dtype=torch.float64)
    if variant == "blank":
        out[vocab] = 1.0
    else:
        out[:vocab] = torch.as_tensor(q, dtype=torch.float64)
    return out


def oracle_law(reference: ReferenceCounts, variant: str, vocab: int) -> tuple[Tensor, Tensor]:
    found = law(reference, GAMMA0, variant, vocab)
    return torch.from_numpy(found.rate), with_blank(found.draw, vocab, variant)


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

    if case == "a":  # [1 - g(x)] c(x, y) + q(x) sum_x' g(x') c(x', y)
        return pairs(1 - g) + outer(n.q, per_word(n, g, n.y))
    if case == "b":  # [1 - g(x)] c(x, y) + q(y) g(x) c(x)
        return pairs(1 - g) + outer(per_word(n, g, n.x), n.q)
    if case == "c":  # [1 - g(x)] c(x, y) + q(x) q(y) sum_x' g(x') c(x')
        return pairs(1 - g) + outer(n.q * float(g.sum()), n.q)
    if case == "b then a":
        return (pairs((1 - g) ** 2)
                + outer(per_word(n, g * (1 - g), n.x), n.q)   # only the target replaced
                + outer(n.q, per_word(n, g * (1 - g), n.y))   # only the input replaced
                + outer(n.q * float((g ** 2).sum()), n.q))    # both replaced
    raise ValueError(case)


# ---- the same cases per position: exact means and variances of the binned counts ------------
def position_probs(case: str, ea: Tensor, eb: Tensor, g: Tensor, qb: Tensor) -> Tensor:
    """(d, k, k): P(the noised pair falls in each bin) for positions with observed bins
    ea, eb (one-hot (d, k)) and rate g (d,); qb the replacement's distribution binned."""
    g = g[:, None]
    replaced = (1 - g) * eb + g * qb  # kept, or replaced by a draw, with its own coin
    if case == "a":  # one coin; the input replaced
        return ((1 - g) * ea + g * qb)[:, :, None] * eb[:, None, :]
    if case == "b":  # the target replaced
        return ea[:, :, None] * replaced[:, None, :]
    if case == "c":  # one coin, two draws
        return ((1 - g)[:, :, None] * ea[:, :, None] * eb[:, None, :]
                + g[:, :, None] * torch.outer(qb, qb))
    if case == "b then a":  # two coins, two draws: independent input and target
        return ((1 - g) * ea + g * qb)[:, :, None] * replaced[:, None, :]
    raise ValueError(case)


@dataclass
class Moments:
    mean: Tensor  # (k, k) expected counts
    var: Tensor  # (k, k) their variances
    pooled: Tensor  # (k, k) bool: bins pooled into one (small expectations)
    pooled_var: float


def moments(n: Noised, case: str, gamma: Tensor, q: Tensor, bins: Tensor, k: int) -> Moments:
    """Positions are independent, and the law of a position's binned noised pair depends
    only on the bins of its observed pair and on the rate of its previous word: with m the
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


def assert_changed_share(n: Noised, gamma: Tensor, target: bool, what: str) -> None:
    """The number of replaced words (targets, or else inputs) within 5 sd of its
    expectation: at each position the word changes with probability
    gamma(x) (1 - q(word)); a sum of independent Bernoullis."""
    word, noised = (n.y, n.y_noised) if target else (n.x, n.x_noised)
    p = gamma[n.x] * (1 - n.q[word])
    changed = float((noised != word).double().sum())
    sd = math.sqrt(float((p * (1 - p)).sum()))
    assert abs(changed - float(p.sum())) < 5 * sd, (
        f"{what}: {changed:.0f} words replaced, expected {float(p.sum()):.0f} +- {sd:.0f}")


def case_of(variant: str) -> str:
    """App. B.1's case of the one-coin form: kn schemes noise both, the others the input."""
    return "c" if "kn" in variant else "a"


def noised(x: Tensor, y: Tensor, xn: Tensor, yn: Tensor, gamma: Tensor, q: Tensor,
           vocab: int) -> Noised:
    return Noised(x, y, xn, yn, gamma, q, vocab)


# ---- the default: Xie et al.'s one coin, against the oracle ----------------------------------
@pytest.mark.parametrize("variant", SCHEMES)
def test_rates_and_draw_distributions_are_the_reference_s(corpus, prefix, reference, variant):
    """Deterministic: every word's rate and the replacement's distribution, to rounding."""
    vocab = len(corpus.vocab)
    counts = NoisingCounts.of(KneserNeyBigram.from_stream(prefix, vocab))
    rate, q = oracle_law(reference, variant, vocab)
    contexts = torch.nonzero(~torch.isnan(rate)).flatten()
    params = PtbLstmParams(noising_variant=variant)
    ours = noising_rate(params, counts, contexts, GAMMA0)
    torch.testing.assert_close(ours, rate[contexts], rtol=1e-12, atol=0.0)
    assert variant not in ("kn", "mbgkn") or float(ours.std()) > 0.01  # rates vary by word
    if variant != "blank":
        drawn = counts.continuation if "kn" in variant else counts.unigram
        torch.testing.assert_close(with_blank(drawn, vocab, variant), q, rtol=1e-12,
                                   atol=1e-15)


def test_discounting_is_a_switch_of_its_own(corpus, prefix, reference):
    """noising_discounting (the reference's --absolute_discounting) on or off for any
    scheme: unigram and blank take kn's rate, kn and mbgkn a constant gamma0."""
    vocab = len(corpus.vocab)
    counts = NoisingCounts.of(KneserNeyBigram.from_stream(prefix, vocab))
    words = torch.tensor(sorted(reference.total))
    discounted = noising_rate(PtbLstmParams(), counts, words, GAMMA0)
    for variant in ("unigram", "blank"):
        on = PtbLstmParams(noising_variant=variant, noising_discounting=True)
        assert torch.equal(noising_rate(on, counts, words, GAMMA0), discounted)
    for variant in ("kn", "mbgkn"):
        off = PtbLstmParams(noising_variant=variant, noising_discounting=False)
        assert bool((noising_rate(off, counts, words, GAMMA0) == GAMMA0).all())


@pytest.mark.parametrize("variant", SCHEMES)
def test_one_coin_noising_follows_the_reference_loop(corpus, prefix, reference, variant):
    vocab = len(corpus.vocab)
    rate, q = oracle_law(reference, variant, vocab)
    n = noised(*product_noising(prefix, vocab, variant), rate.nan_to_num(0.0), q, vocab)
    bins, k = word_bins(n)
    case = case_of(variant)
    mo = moments(n, case, n.gamma, n.q, bins, k)
    # the per-position law sums to the printed formula
    torch.testing.assert_close(mo.mean, closed_form(n, case, n.gamma, bins, k), rtol=1e-9,
                               atol=1e-6)
    assert_matches(observed_bins(n.x_noised, n.y_noised, bins, k), mo, f"{variant}: joint")
    assert_changed_share(n, n.gamma, case == "c", f"{variant}: replaced words")
    if case == "a":
        assert torch.equal(n.y_noised, n.y)  # the target is never replaced
    else:  # the training targets against the observed inputs: case (b), one coin
        assert_matches(observed_bins(n.x, n.y_noised, bins, k),
                       moments(n, "b", n.gamma, n.q, bins, k), f"{variant}: case (b)")
    # the oracle loop's own sample follows the same law
    x, y = observed_pairs(prefix, ORACLE_REPS)
    rng = np.random.default_rng(sum(map(ord, variant)))
    xo, yo = noise_batch(x.numpy(), y.numpy(), reference, GAMMA0, variant, rng,
                         blank=vocab if variant == "blank" else None)
    o = noised(x.reshape(-1), y.reshape(-1), torch.from_numpy(xo).reshape(-1),
               torch.from_numpy(yo).reshape(-1), n.gamma, q, vocab)
    assert_matches(observed_bins(o.x_noised, o.y_noised, bins, k),
                   moments(o, case, o.gamma, o.q, bins, k), f"{variant}: the oracle loop")


# ---- the earlier two-coin form, by name ------------------------------------------------------
def two_coin_law(prefix: Tensor, vocab: int, variant: str) -> tuple[Tensor, Tensor]:
    """(gamma, q) of the two-coin form: gamma0 N1+(x.)/c(x) and the KN lower order for
    kn; gamma0 and the unigram for unigram; gamma0 and the blank for blank."""
    bigram = KneserNeyBigram.from_stream(prefix, vocab)
    if variant == "kn":
        gamma = (GAMMA0 * bigram.follow_types().double()
                 / bigram.context_counts().double().clamp_min(1.0)).clamp_max(1.0)
        return gamma, with_blank(bigram.continuation(), vocab, variant)
    gamma = torch.full((vocab,), GAMMA0, dtype=torch.float64)
    return gamma, with_blank(bigram.unigram(), vocab, variant)


@pytest.mark.parametrize("variant", ["kn", "unigram"])
def test_two_coins_match_case_b_and_the_joint_counts_match_b_then_a(corpus, prefix, variant):
    vocab = len(corpus.vocab)
    n = noised(*product_noising(prefix, vocab, variant, coins="two"),
               *two_coin_law(prefix, vocab, variant), vocab)
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


def test_two_coin_blank_is_case_a_with_the_blank(corpus, prefix):
    vocab = len(corpus.vocab)
    n = noised(*product_noising(prefix, vocab, "blank", coins="two"),
               *two_coin_law(prefix, vocab, "blank"), vocab)
    bins, k = word_bins(n)
    assert torch.equal(n.y_noised, n.y)  # targets untouched
    assert_matches(observed_bins(n.x_noised, n.y, bins, k),
                   moments(n, "a", n.gamma, n.q, bins, k), "blank: case (a)")


# ---- the statistic can fail ----------------------------------------------------------------
def test_the_statistic_rejects_wrong_laws(corpus, prefix, reference):
    """One coin taken for two and two for one, the KN lower order taken for the
    continuation, the one-coin unigram taken for the two-coin one, the rate 5% off."""
    vocab = len(corpus.vocab)
    rate, q = oracle_law(reference, "kn", vocab)
    gamma = rate.nan_to_num(0.0)
    one = noised(*product_noising(prefix, vocab, "kn"), gamma, q, vocab)
    two = noised(*product_noising(prefix, vocab, "kn", coins="two"),
                 *two_coin_law(prefix, vocab, "kn"), vocab)
    bins, k = word_bins(one)
    joint_one = observed_bins(one.x_noised, one.y_noised, bins, k)
    joint_two = observed_bins(two.x_noised, two.y_noised, bins, k)
    uni = noised(*product_noising(prefix, vocab, "unigram"), *oracle_law(reference, "unigram",
                                                                         vocab), vocab)
    uni.gamma = uni.gamma.nan_to_num(0.0)
    wrong = {
        "one coin read as two": (joint_one, one, "b then a", gamma, q),
        "two coins read as one": (joint_two, two, "c", two.gamma, two.q),
        "KN lower order for the continuation": (joint_one, one, "c", gamma, two.q),
        "unigram: the target replaced too": (observed_bins(uni.x_noised, uni.y_noised, bins, k),
                                             uni, "b then a", uni.gamma, uni.q),
    }
    for what, (observed, n, case, g, dist) in wrong.items():
        with pytest.raises(AssertionError):
            assert_matches(observed, moments(n, case, g, dist, bins, k), what)
    for factor in (1.05, 0.95):
        with pytest.raises(AssertionError):
            assert_changed_share(one, factor * gamma, True, f"rate x {factor}")


# ---- where gamma0 comes from -----------------------------------------------------------------
def test_gamma0_is_the_method_s_noising_probability_unless_set(corpus, prefix):
    """The noising method passes its probability (lambda / (1 + lambda), or 1 / (1 +
    lambda) with probability: one_minus_ratio) as gamma0; noising_gamma0 overrides it."""
    vocab = len(corpus.vocab)

    def noised_by(views: LmViews, noise: Callable[[LmViews], Tensor]) -> tuple[Tensor, Tensor]:
        targets = noise(views)
        return views.model_inputs, targets

    lam = 1.5
    expected = noised_by(make_views(prefix, vocab, "kn", reps=1), lambda v: v.noise(0.4))
    for method in (Noising(NoisingParams(probability="one_minus_ratio"), lam),
                   Noising(NoisingParams(), 2 / 3)):
        assert method.probability == pytest.approx(0.4)
        got = noised_by(make_views(prefix, vocab, "kn", reps=1), method.targets)
        assert all(torch.equal(a, b) for a, b in zip(got, expected, strict=True))
    other = noised_by(make_views(prefix, vocab, "kn", reps=1),
                      Noising(NoisingParams(), lam).targets)  # 0.6
    assert not torch.equal(other[0], expected[0])
    overridden = noised_by(make_views(prefix, vocab, "kn", reps=1, noising_gamma0=0.4),
                           Noising(NoisingParams(), lam).targets)
    assert all(torch.equal(a, b) for a, b in zip(overridden, expected, strict=True))


# ---- cell ids ----------------------------------------------------------------------------
def test_noising_cells_carry_the_coin_form_in_their_ids_and_no_other_cell_does():
    """The default became one coin: a noising cell's id names the form even at its default
    (so results of the earlier default are not reused); other methods' ids are unchanged
    by it, and the two forms are two cells."""
    from harness.cells.grid import cell_config, config_id
    from harness.spec import validate_spec

    def identity(entry: dict, **task: object) -> dict:
        spec = validate_spec({"name": "ids", "task": {"name": "ptb_lstm", "params": task},
                              "methods": [entry], "sizes": [1000]})
        return cell_config(spec, spec.methods[0], 1000, 0, identity=True)

    noising = {"name": "noising", "lambda": 0.25}
    assert identity(noising)["task"]["params"] == {"noising_coins": "one"}
    assert identity({"name": "baseline"})["task"]["params"] == {}
    assert identity({"name": "imm_sampled", "lambda": 0.2})["task"]["params"] == {}
    assert config_id(identity(noising)) != config_id(identity(noising, noising_coins="two"))
