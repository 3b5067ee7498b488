"""Which tasks pair replicate i across methods (``paired_replicates`` on their params
models, read by harness.report.stats), tested on the tasks themselves: under two methods
that train alike, replicate i gives identical numbers, and under a real method the
per-replicate differences to the baseline vary less than differences to shuffled
partners (replicate i saw the same data)."""

from __future__ import annotations

import numpy as np
import pytest

from harness.registry import METHODS, TASKS
from harness.tasks.base import CellRequest


def method(name: str, lam: float | None = None, **params):
    return METHODS.get(name)(METHODS.config(name)(**params), lam)


# Grid RL pairs the random numbers (init, rollout and evaluation draws), but trajectories
# part as soon as the policies do, so its paired differences are only somewhat less
# variable; the logistic toy's replicates share their whole dataset.
@pytest.mark.parametrize("name, params, size, lam, metric, ratio", [
    ("logistic", {"epochs": 100}, 10, 1.0, "accuracy", 0.8),
    ("grid_rl", {"steps_per_epoch": 10, "eval_steps": 10}, 20, 0.25, "reward", 1.0),
])
def test_replicate_i_sees_the_same_data_under_every_method(name, params, size, lam, metric,
                                                           ratio):
    assert TASKS.config(name).paired_replicates is True
    task = TASKS.get(name)(TASKS.config(name)(**params))
    request = CellRequest(size=size, seed=2, runs=40)
    base = task.run(method("baseline"), request)[metric]
    # interpolation trains as the baseline and, at lambda 0, predicts as it: replicate by
    # replicate the same numbers, although the replicates differ among themselves.
    same = task.run(method("interpolation", 0.0), CellRequest(size, 2, 40))[metric]
    np.testing.assert_array_equal(same, base)
    assert np.unique(base).size > 5
    imm = task.run(method("imm_sampled", lam), request)[metric]
    shuffled = np.random.default_rng(0).permutation(base)
    assert np.std(imm - base) < ratio * np.std(imm - shuffled)


def test_ptb_and_glue_declare_paired_replicates():
    """Their pairing is tested on the tasks in tests/test_ptb_lstm.py
    (test_cells_are_deterministic_and_paired) and tests/test_glue_task.py
    (test_batches_and_masks_do_not_depend_on_the_method)."""
    from harness.tasks.glue_bert.config import GlueBertParams
    from harness.tasks.ptb_lstm.config import PtbLstmParams

    assert PtbLstmParams.paired_replicates is True
    assert GlueBertParams.paired_replicates is True
