"""The logistic toy: exact restricted model, determinism, paired data, method sanity and
the paper's headline effect (IMM above the baseline)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from harness.registry import METHODS, TASKS
from harness.tasks.base import CellRequest, make_generator
from harness.tasks.logistic.geometry import bayes_restricted

Params = TASKS.config("logistic")


def make_task(**params):
    return TASKS.get("logistic")(Params(**params))


def make_method(name, lam=None, **params):
    return METHODS.get(name)(METHODS.config(name)(**params), lam)


@pytest.mark.parametrize("coefficients,cube", [
    ((1.0, 1.0, 1.0, -1.5), (0.0, 1.0)),
    ((2.0, -0.5, 1.5, 0.3), (-1.0, 2.0)),
])
def test_exact_restricted_model_matches_monte_carlo(coefficients, cube):
    gen = torch.Generator().manual_seed(1)
    lo, hi = cube
    a, b, c, d = coefficients
    x1 = torch.linspace(lo, hi, 9, dtype=torch.float64)
    x23 = torch.rand(400_000, 2, generator=gen, dtype=torch.float64) * (hi - lo) + lo
    positive = a * x1[:, None] + b * x23[None, :, 0] + c * x23[None, :, 1] + d > 0
    monte_carlo = positive.double().mean(1)
    exact = bayes_restricted(x1, coefficients, cube)
    torch.testing.assert_close(exact, monte_carlo, atol=4e-3, rtol=0)
    assert exact.max() - exact.min() > 0.6  # informative, not constant


def test_coin_flip_quality_knob():
    x1 = torch.tensor([0.1, 0.5, 0.9])
    exact = make_task().restricted_target(x1)
    low = make_task(restricted_quality="low").restricted_target(x1)
    torch.testing.assert_close(low, 0.5 * exact + 0.25)
    torch.testing.assert_close(exact.sum(-1), torch.ones(3))


def test_same_seed_same_numbers_and_paired_data():
    task = make_task(epochs=200)
    request = CellRequest(size=10, seed=3, runs=16)
    first = task.run(make_method("noising", 1.0), request)
    second = task.run(make_method("noising", 1.0), request)
    for metric in first:
        np.testing.assert_array_equal(first[metric], second[metric])
    other = task.run(make_method("noising", 1.0), CellRequest(10, 4, 16))
    assert not np.array_equal(first["accuracy"], other["accuracy"])
    x_a, y_a = task.sample(16, 10, "train", 3, 10)
    x_b, y_b = task.sample(16, 10, "train", 3, 10)
    assert torch.equal(x_a, x_b) and torch.equal(y_a, y_b)


def test_zero_lambda_methods_reduce_to_baseline():
    task = make_task(epochs=200)
    request = CellRequest(size=8, seed=0, runs=12)
    base = task.run(make_method("baseline"), request)
    for name in ("interpolation", "noising", "reverse_kd", "imm_sampled"):
        out = task.run(make_method(name, 0.0), request)
        np.testing.assert_allclose(out["accuracy"], base["accuracy"], err_msg=name)


def test_noising_probability_one_minus_ratio():
    """probability: one_minus_ratio replaces a target with probability 1 / (1 + lambda):
    at lambda 1.5 the numbers of lambda_ratio at lambda 2/3 (both 0.4), not those of
    lambda_ratio at 1.5 (0.6)."""
    assert make_method("noising", 1.5).probability == pytest.approx(0.6)
    inverse = make_method("noising", 1.5, probability="one_minus_ratio")
    assert inverse.probability == pytest.approx(0.4)
    task = make_task(epochs=200)
    request = CellRequest(size=10, seed=0, runs=12)
    out = task.run(inverse, request)["accuracy"]
    np.testing.assert_array_equal(out, task.run(make_method("noising", 2 / 3), request)["accuracy"])
    assert not np.array_equal(out, task.run(make_method("noising", 1.5), request)["accuracy"])


def test_sampled_induced_model_converges_to_the_kernel_average():
    task = make_task()
    x, y = task.sample(4, 12, "train", 0, 12)
    from harness.tasks.logistic.task import LogisticViews, _Data, _TrainState

    weight = torch.tensor([[1.0, -2.0, 0.5]], device=task.device).repeat(4, 1)
    bias = torch.full((4,), 0.3, device=task.device)
    state = _TrainState(_Data(task, x, y), make_generator(task.device, 0))
    views = LogisticViews(state, weight, bias)
    exact = views.induced(None).mixture()
    errors = [(views.induced(k).mixture() - exact).abs().mean().item() for k in (1, 10, 1000)]
    assert errors[0] > errors[1] > errors[2] and errors[2] < 0.01


def test_imm_beats_baseline():
    """Paired over 200 replicates at n = 10 with the paper's lambda schedule."""
    task = make_task(epochs=1000)
    lam = 0.7 / 0.3  # r = 0.7 at n = 10 (paper App. D.1.1)
    request = CellRequest(size=10, seed=0, runs=200)
    base = task.run(make_method("baseline"), request)["accuracy"]
    imm = task.run(make_method("imm_sampled", lam), request)["accuracy"]
    diff = imm - base
    assert np.median(imm) > np.median(base)
    assert diff.mean() > 3 * diff.std(ddof=1) / np.sqrt(len(diff))  # clearly positive


def test_serialized_and_k_sampled_imm_run_and_help():
    task = make_task(epochs=600)
    request = CellRequest(size=10, seed=1, runs=100)
    base = task.run(make_method("baseline"), request)["accuracy"].mean()
    serialized = task.run(make_method("imm_serialized", 1.0), request)["accuracy"].mean()
    sampled_k = task.run(make_method("imm_sampled", 1.0, k=5), request)["accuracy"].mean()
    assert serialized > base and sampled_k > base


def test_restricted_ce_falls_with_imm():
    """IMM improves the restricted task itself (paper Fig. 4)."""
    task = make_task(epochs=500)
    request = CellRequest(size=10, seed=2, runs=50)
    base = task.run(make_method("baseline"), request)["restricted_ce"]
    imm = task.run(make_method("imm_sampled", 2.0), request)["restricted_ce"]
    assert np.median(imm) < np.median(base)
