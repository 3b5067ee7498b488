"""The statistics of the leaderboard and the checks, on constructed values with known
answers: a paired difference, win rates and ranks, the data-equivalent gain."""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness.report.stats import (
    data_equivalent_gain,
    equivalent_size,
    isotonic,
    paired_difference,
    ranks,
    task_pairs_replicates,
    win_rates,
)


def keyed(values, seed: int = 0) -> dict[tuple[int, int], float]:
    return {(seed, i): float(v) for i, v in enumerate(values)}


# ---- paired differences ------------------------------------------------------------------
def test_a_known_paired_difference_gets_a_tight_interval_around_it():
    rng = np.random.default_rng(0)
    base = rng.uniform(0.5, 1.0, 400)  # a wide spread between replicates ...
    noise = np.where(np.arange(400) % 2 == 0, 0.01, -0.01)  # ... and a tiny paired one
    better = base + 0.02 + noise
    iv = paired_difference(keyed(better), keyed(base), paired=True, stat="mean")
    assert iv.estimate == pytest.approx(0.02)
    se = 0.01 / math.sqrt(400)  # sd of the differences / sqrt(n)
    assert iv.low == pytest.approx(0.02 - 1.96 * se, abs=0.3 * se)
    assert iv.high == pytest.approx(0.02 + 1.96 * se, abs=0.3 * se)
    assert iv.excludes_zero and iv.side(True) == "better" and iv.side(False) == "worse"
    assert (iv.n, iv.unit) == (400, "replicates")
    assert iv.method == "paired bootstrap over 400 replicates, 95%"
    # A constant shift: the median difference is the shift and the interval a point.
    shifted = paired_difference(keyed(base + 0.02), keyed(base), paired=True, stat="median")
    assert (shifted.estimate, shifted.low, shifted.high) == pytest.approx((0.02,) * 3)
    # Without the pairing (shuffled partners) the same data give a wide interval.
    shuffled = paired_difference(keyed(better), keyed(rng.permutation(base)), True, "mean")
    assert shuffled.high - shuffled.low > 20 * (iv.high - iv.low)


def test_intervals_are_deterministic_and_only_common_pairs_count():
    a = keyed(np.linspace(0, 1, 50))
    b = keyed(np.linspace(0, 1, 50) ** 2)
    first, again = (paired_difference(a, b, True) for _ in range(2))
    assert first == again
    del b[(0, 3)], b[(0, 7)]
    assert paired_difference(a, b, True).n == 48


def test_one_pair_has_no_interval_and_no_pairs_no_estimate():
    one = paired_difference({(0, 0): 0.9}, {(0, 0): 0.8}, paired=True)
    assert one.estimate == pytest.approx(0.1) and not one.has_interval
    assert one.method == "n = 1, no interval" and one.text(100) == "+10.00 (n = 1, no interval)"
    assert one.side(True) == "n.s." and not one.excludes_zero
    none = paired_difference({(0, 0): 0.9}, {(1, 0): 0.8}, paired=True)
    assert none.n == 0 and none.estimate is None and none.text() == "no pairs"


def test_unpaired_replicates_are_compared_over_seeds():
    # Three seeds, 5 replicates each: per-seed medians 0.8/0.7, 0.9/0.7, 0.85/0.8.
    a = {**keyed([0.7, 0.8, 0.8, 0.9, 0.75], 0), **keyed([0.9] * 5, 1),
         **keyed([0.85] * 5, 2)}
    b = {**keyed([0.7] * 5, 0), **keyed([0.6, 0.7, 0.7, 0.8, 0.9], 1),
         **keyed([0.8] * 5, 2)}
    iv = paired_difference(a, b, paired=False, stat="median")
    assert (iv.n, iv.unit) == (3, "seeds")
    assert iv.estimate == pytest.approx(np.mean([0.1, 0.2, 0.05]))
    assert iv.low == pytest.approx(0.05) and iv.high == pytest.approx(0.2)  # seed extremes
    assert iv.method == "paired bootstrap over 3 seeds, 95%"
    single = paired_difference(keyed([0.9, 0.8]), keyed([0.7, 0.6]), paired=False)
    assert single.n == 1 and single.method == "n = 1, no interval"


def test_every_built_in_task_declares_paired_replicates():
    assert all(task_pairs_replicates(t) for t in ("logistic", "grid_rl", "ptb_lstm",
                                                  "glue_bert"))
    assert not task_pairs_replicates("no_such_task")


# ---- win rates and ranks ---------------------------------------------------------------
def test_a_known_win_rate():
    columns = [  # higher is better except in the last column
        ({"a": 3.0, "b": 2.0, "c": 1.0}, True),
        ({"a": 1.0, "b": 2.0, "c": 0.5}, True),
        ({"a": 2.0, "b": 2.0, "c": 3.0, "d": 9.0}, True),
        ({"a": 1.0, "b": 5.0, "d": 0.5}, False),
    ]
    mean, pairwise = win_rates(columns)
    # a vs b: win, loss, tie, win = 2.5 of 4; a vs c: win, win, loss of 3; a vs d: 0 of 2
    assert pairwise["a"]["b"] == (0.625, 4)
    assert pairwise["a"]["c"] == (pytest.approx(2 / 3), 3)
    assert pairwise["a"]["d"] == (0.0, 2)
    assert mean["a"] == pytest.approx((0.625 + 2 / 3 + 0.0) / 3)
    assert mean["d"] == pytest.approx(1.0)  # d beats everyone where it is present
    assert pairwise["b"]["a"][0] == pytest.approx(1 - 0.625)  # the pair's rates add to 1


def test_ranks_share_ties_and_follow_the_direction():
    assert ranks({"a": 3.0, "b": 2.0, "c": 2.0, "d": 1.0}, True) == {
        "a": 1.0, "b": 2.5, "c": 2.5, "d": 4.0}
    assert ranks({"a": 3.0, "b": 1.0}, False) == {"a": 2.0, "b": 1.0}


# ---- the data-equivalent gain ----------------------------------------------------------
SIZES = (2, 4, 8, 16, 32)


def test_a_method_worth_30_percent_more_data_measures_30_percent():
    ref = {n: math.log2(n) for n in SIZES}  # straight in log size
    method = {n: math.log2(1.3 * n) for n in SIZES}  # what the reference gets at 1.3 n
    gain = data_equivalent_gain(ref, method)
    assert [p.gain for p in gain.points[:4]] == pytest.approx([30.0] * 4)
    assert gain.points[-1].gain is None and "largest size" in gain.points[-1].note
    assert gain.mean == pytest.approx(30.0) and len(gain.defined) == 4
    assert gain.text() == "+30.0% (mean over 4 of 5 sizes)"
    # Lower is better (a perplexity falling with log size): the same 30%.
    ppl = {n: 100 - 10 * math.log2(n) for n in SIZES}
    better = {n: 100 - 10 * math.log2(1.3 * n) for n in SIZES}
    assert data_equivalent_gain(ppl, better, higher_is_better=False).mean == pytest.approx(30)


def test_gain_interpolates_in_log_size_and_is_negative_for_a_worse_method():
    ref = {2: 0.6, 4: 0.8, 8: 0.9}
    # 0.7 is halfway from 2 to 4 in log size: sqrt(2 * 4) = 2.828...
    size, why = equivalent_size(list(ref), list(ref.values()), 0.7)
    assert size == pytest.approx(math.sqrt(8)) and why == ""
    gain = data_equivalent_gain(ref, {4: 0.7, 8: 0.85})
    assert gain.points[0].gain == pytest.approx(100 * (math.sqrt(8) / 4 - 1))  # -29.3%
    assert gain.points[1].gain == pytest.approx(100 * (math.sqrt(32) / 8 - 1))
    low = data_equivalent_gain(ref, {2: 0.5})
    assert low.mean is None and "smallest size" in low.points[0].note
    assert low.text() == "undefined at all 1 sizes"


def test_a_noisy_reference_is_made_monotone_first():
    assert isotonic([1, 3, 2, 4]).tolist() == [1, 2.5, 2.5, 4]
    assert isotonic([3, 2, 1]).tolist() == [2, 2, 2]
    # The reference dips at 8: its fit is flat at 0.85 from 4 to 8, and the smallest size
    # reaching 0.85 is 4.
    ref = {2: 0.6, 4: 0.9, 8: 0.8, 16: 0.95}
    assert equivalent_size(list(ref), list(ref.values()), 0.85)[0] == pytest.approx(4.0)
    assert equivalent_size([4], [0.9], 0.9) == (None, "the reference has fewer than two sizes")
