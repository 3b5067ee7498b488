"""The grid RL task: environment dynamics and reward, the FIB solver's bounds, convergence
and symmetry, the induced policy, determinism, and the paper's headline effect."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from harness.cli import main
from harness.methods.induced import crosstalk_cross_entropy
from harness.registry import METHODS, TASKS
from harness.tasks.base import CellRequest, make_generator
from harness.tasks.grid_rl import pomdp
from harness.tasks.grid_rl.env import Grid
from harness.tasks.grid_rl.task import GridRlViews, _TrainState

Params = TASKS.config("grid_rl")
UP, DOWN, LEFT, RIGHT = range(4)
ROOT = Path(__file__).resolve().parents[1]


def make_task(**params):
    return TASKS.get("grid_rl")(Params(**params))


def make_method(name, lam=None, **params):
    return METHODS.get(name)(METHODS.config(name)(**params), lam)


# ---- environment ------------------------------------------------------------------------
def test_moves_wrap_around_the_torus_and_are_permutations():
    g = Grid(11)
    nxt = g.next_state
    assert nxt[g.state(3, 10), UP] == g.state(3, 0)
    assert nxt[g.state(3, 0), DOWN] == g.state(3, 10)
    assert nxt[g.state(0, 7), LEFT] == g.state(10, 7)
    assert nxt[g.state(10, 7), RIGHT] == g.state(0, 7)
    assert nxt[g.state(4, 4), RIGHT] == g.state(5, 4)
    for a in range(4):
        assert sorted(nxt[:, a]) == list(range(121))  # each action is a bijection
    # UP then DOWN (and LEFT then RIGHT) returns to the start everywhere
    assert (nxt[nxt[:, UP], DOWN] == np.arange(121)).all()
    assert (nxt[nxt[:, LEFT], RIGHT] == np.arange(121)).all()


def test_mountain_reward_peak_symmetry_and_width():
    g = Grid(11, 2.0, 0.1)
    r = g.reward.reshape(11, 11)
    assert r.argmax() == g.state(5, 5)
    assert r[5, 5] == pytest.approx(1.0 / (2 * np.pi * 0.1))  # about 1.59
    assert r[5, 6] == pytest.approx(r[5, 5] * np.exp(-0.4**2 / 0.2))
    np.testing.assert_allclose(r, r.T)
    np.testing.assert_allclose(r, r[::-1, :])
    wide = Grid(11, 2.0, 0.3).reward.reshape(11, 11)
    assert wide[5, 5] < r[5, 5] and wide[5, 8] > r[5, 8]  # the width is a real knob
    # the POMDP is built on the same reward: R(s, a) = R(next(s, a))
    np.testing.assert_array_equal(g.step_reward, g.reward[g.next_state])


def test_rollout_follows_the_policy_and_earns_the_reward_of_the_cell_reached():
    task = make_task()
    probs = torch.zeros(2, 121, 4, device=task.device)
    probs[0, :, RIGHT] = 1.0
    probs[1, :, UP] = 1.0
    starts = np.array([[Grid(11).state(0, 5)], [Grid(11).state(5, 9)]])
    uniforms = np.random.default_rng(0).random((2, 1, 6))
    states, actions, rewards = task.rollout(probs, starts, uniforms)
    x, y = task.grid.coords(states[0, 0])
    assert list(x) == [0, 1, 2, 3, 4, 5] and (y == 5).all()
    x, y = task.grid.coords(states[1, 0])
    assert list(y) == [9, 10, 0, 1, 2, 3] and (x == 5).all()
    assert (actions[0] == RIGHT).all() and (actions[1] == UP).all()
    reached = task.grid.next_state[states, actions]
    np.testing.assert_array_equal(rewards, task.grid.reward[reached])
    assert rewards[0, 0, 4] == pytest.approx(task.grid.reward.max())  # step into (5, 5)


def test_inverse_cdf_sampling_matches_the_policy():
    task = make_task()
    probs = torch.tensor([0.1, 0.2, 0.3, 0.4], device=task.device).expand(1, 121, 4)
    gen = make_generator(torch.device("cpu"), "test")
    starts, uniforms = task.draws(gen, 1, 4000, 1)
    _, actions, _ = task.rollout(probs, starts, uniforms)
    freq = np.bincount(actions.reshape(-1), minlength=4) / actions.size
    np.testing.assert_allclose(freq, [0.1, 0.2, 0.3, 0.4], atol=0.025)


# ---- the FIB solver -----------------------------------------------------------------------
def random_pomdp(seed, n_s=12, n_a=3, n_o=4):
    rng = np.random.default_rng(seed)
    t = rng.random((n_a, n_s, n_s)) ** 4
    t /= t.sum(-1, keepdims=True)
    o = rng.random((n_a, n_s, n_o)) ** 2
    o /= o.sum(-1, keepdims=True)
    return t, o, rng.normal(size=(n_s, n_a))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fib_lies_between_blind_and_mdp_bounds(seed):
    t, o, r = random_pomdp(seed)
    gamma = 0.9
    lower = pomdp.blind(t, r, gamma).alphas
    fib = pomdp.fib(t, o, r, gamma).alphas
    upper = pomdp.qmdp(t, r, gamma).alphas
    assert (lower <= fib + 1e-8).all() and (fib <= upper + 1e-8).all()
    # with stochastic moves and noisy observations the bounds are strict somewhere
    assert (upper - fib).max() > 1e-3 and (fib - lower).max() > 1e-3
    beliefs = np.random.default_rng(seed).dirichlet(np.ones(12), size=50)
    v_blind = pomdp.belief_value(lower, beliefs)
    v_fib = pomdp.belief_value(fib, beliefs)
    v_mdp = beliefs @ upper.max(0)  # the fully observed MDP's value at the belief
    assert (v_blind <= v_fib + 1e-8).all() and (v_fib <= v_mdp + 1e-8).all()


def test_fib_converges_to_its_fixed_point_and_is_exact_with_full_observability():
    t, o, r = random_pomdp(3)
    gamma = 0.9
    sol = pomdp.fib(t, o, r, gamma, tol=1e-11)
    assert sol.residual <= 1e-11 and sol.iterations < 400
    a = sol.alphas
    x = o[:, :, :, None] * a.T[None, :, None, :]
    backup = r.T + gamma * np.einsum("ast,atob->asob", t, x).max(-1).sum(-1)
    np.testing.assert_allclose(backup, a, atol=1e-9)  # the FIB equation holds
    # seeing the state itself makes FIB the MDP's Q-values (QMDP)
    identity = np.broadcast_to(np.eye(12), (3, 12, 12))
    np.testing.assert_allclose(pomdp.fib(t, identity, r, gamma).alphas,
                               pomdp.qmdp(t, r, gamma).alphas, atol=1e-8)


def test_grid_fib_is_qmdp_and_respects_the_torus_symmetries():
    g = Grid(11)
    fib = pomdp.fib(g.transitions, g.observations, g.step_reward, 0.9)
    assert fib.residual <= 1e-10
    # deterministic moves: FIB coincides with QMDP
    np.testing.assert_allclose(fib.alphas, pomdp.qmdp(g.transitions, g.step_reward, 0.9).alphas,
                               atol=1e-8)
    a = fib.alphas.reshape(4, 11, 11)  # [action, x, y]
    np.testing.assert_allclose(a[UP], a[DOWN][:, ::-1], atol=1e-8)  # mirror y
    np.testing.assert_allclose(a[LEFT], a[RIGHT][::-1, :], atol=1e-8)  # mirror x
    np.testing.assert_allclose(a[UP], a[RIGHT].T, atol=1e-8)  # swap x and y
    blind = pomdp.blind(g.transitions, g.step_reward, 0.9).alphas
    assert (blind <= fib.alphas + 1e-8).all() and (blind < fib.alphas - 1e-3).any()


def test_restricted_policy_heads_for_the_central_column():
    argmax = pomdp.restricted_policy(11, 2.0, 0.1, 0.9, "argmax", 1.0)
    np.testing.assert_allclose(argmax[5], [0.5, 0.5, 0.0, 0.0])  # symmetric tie UP/DOWN
    assert (argmax[:5, RIGHT] == 1).all() and (argmax[6:, LEFT] == 1).all()
    soft = {t: pomdp.restricted_policy(11, 2.0, 0.1, 0.9, "softmax", t) for t in (0.5, 1.0)}
    for policy in soft.values():
        np.testing.assert_allclose(policy.sum(-1), 1.0)
        assert (policy.argmax(-1)[:5] == RIGHT).all()
    # lower temperature = closer to the argmax policy (higher quality)
    best = argmax.argmax(-1)
    assert (soft[0.5][np.arange(11), best] > soft[1.0][np.arange(11), best]).all()


def test_pomdp_policy_beats_a_random_policy_in_the_mdp():
    task = make_task()
    gen = make_generator(torch.device("cpu"), "eval")
    starts, uniforms = task.draws(gen, 4, 200, 22)
    _, _, r_pomdp = task.rollout(task.restricted_table()[None].expand(4, -1, -1), starts,
                                 uniforms)
    _, _, r_random = task.rollout(torch.full((4, 121, 4), 0.25, device=task.device), starts,
                                  uniforms)
    assert r_pomdp.sum(-1).mean() > 2 * r_random.sum(-1).mean()


# ---- views and the induced policy --------------------------------------------------------
def make_views(task, runs=3, steps=20, seed=0):
    weights = task.init_weights(runs, seed)
    log_pi = task.log_policy(weights)
    gen = make_generator(torch.device("cpu"), "views", seed)
    starts, uniforms = task.draws(gen, runs, 1, steps)
    visited, actions, rewards = task.rollout(log_pi.detach().exp(), starts, uniforms)
    state = _TrainState(task, make_generator(task.device, "method", seed))
    dev = task.device
    returns = torch.from_numpy(rewards[:, 0]).float().to(dev) @ task.discount_matrix[
        :steps, :steps]
    views = GridRlViews(state, log_pi, torch.from_numpy(visited[:, 0]).to(dev),
                        torch.arange(runs, device=dev)[:, None],
                        torch.from_numpy(actions[:, 0]).to(dev), returns, epochs=10, epoch=0)
    return weights, views


def test_policy_table_is_the_mlp_on_one_hot_states():
    task = make_task()
    weights, views = make_views(task)
    w1, b1, w2, b2 = weights
    one_hot = torch.eye(121, device=w1.device)
    for r in range(3):
        logits = torch.tanh(one_hot @ w1[r] + b1[r]) @ w2[r] + b2[r]
        torch.testing.assert_close(views.log_pi[r], torch.log_softmax(logits, -1))


def test_exact_induced_policy_is_the_belief_average_over_y():
    task = make_task()
    weights, views = make_views(task)
    exact = views.induced(None)
    probs = views.log_pi.detach().exp().reshape(3, 11, 11, 4)  # [run, x, y, a]
    by_x = probs.mean(2)  # uniform belief over y
    expected = by_x[views.arange_runs, views.visited_x]
    torch.testing.assert_close(exact.mixture().detach(), expected)
    assert exact.probs.shape == (3, 20, 11, 4)
    # k sampled y converge to the exact average
    sampled = views.induced(4000).mixture().detach()
    torch.testing.assert_close(sampled, expected, atol=0.02, rtol=0)
    # the crosstalk gradient of the IMM term is autograd's gradient of CE(P, mean_y pi)
    target = views.restricted()
    term = crosstalk_cross_entropy(target, views.induced(None)).mean(-1).sum()
    g_cross = torch.autograd.grad(term, weights, retain_graph=True)
    mix = views.log_pi.exp().reshape(3, 11, 11, 4).mean(2)[views.arange_runs, views.visited_x]
    direct = -(target * mix.log()).sum(-1).mean(-1).sum()
    g_direct = torch.autograd.grad(direct, weights)
    for a, b in zip(g_cross, g_direct, strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-4)


def test_stale_correction_refreshes_only_when_asked():
    task = make_task()
    weights, views = make_views(task)
    corr = views.stale_correction(refresh=True)
    q = views.log_pi.detach().exp()[views.arange_runs, views.visited]
    torch.testing.assert_close(corr, q / views.induced(None).mixture().detach())
    with torch.no_grad():
        moved = [w + 0.3 for w in weights]
    later = GridRlViews(views.state, task.log_policy(moved), views.visited, views.arange_runs,
                        views.targets, views.returns, epochs=10, epoch=0)
    torch.testing.assert_close(later.stale_correction(refresh=False), corr)  # stale
    fresh = later.stale_correction(refresh=True)
    assert (fresh - corr).abs().max() > 1e-3


@pytest.mark.parametrize("name", ["baseline", "imm_sampled", "reverse_kd", "imm_serialized"])
def test_replicates_have_independent_gradients(name):
    task = make_task()
    weights, views = make_views(task)
    method = make_method(name, None if name == "baseline" else 0.25)

    def grads(ws):
        log_pi = task.log_policy(ws)
        v = GridRlViews(_TrainState(task, make_generator(task.device, "m")), log_pi,
                        views.visited, views.arange_runs, views.targets, views.returns, 10, 0)
        return torch.autograd.grad(method.loss(v, 0), ws)

    before = grads(weights)
    with torch.no_grad():
        other = [w.clone() for w in weights]
        for w in other:
            w[0] += 0.5  # change replicate 0 only
    other = [w.requires_grad_(True) for w in other]
    after = grads(other)
    for b, a in zip(before, after, strict=True):
        torch.testing.assert_close(b[1:], a[1:])  # replicates 1 and 2 unaffected
        assert b[1:].abs().sum() > 0
    assert any((b[0] - a[0]).abs().max() > 1e-6 for b, a in zip(before, after, strict=True))


# ---- training: determinism, reductions, the headline effect -------------------------------
def test_same_seed_same_numbers_and_seeds_differ():
    task = make_task(steps_per_epoch=20)
    request = CellRequest(size=15, seed=3, runs=8)
    first = task.run(make_method("noising", 0.25), request)
    second = task.run(make_method("noising", 0.25), request)
    np.testing.assert_array_equal(first["reward"], second["reward"])
    other = task.run(make_method("noising", 0.25), CellRequest(15, 4, 8))
    assert not np.array_equal(first["reward"], other["reward"])
    validation = task.run(make_method("noising", 0.25),
                          CellRequest(15, 3, 8, split="validation"))
    assert not np.array_equal(first["reward"], validation["reward"])


def test_a_noising_probability_is_refused_where_noising_has_no_coin():
    task = make_task(steps_per_epoch=20)
    assert task.skip(make_method("noising", 0.25)) is None
    reason = task.skip(make_method("noising", 0.25, probability="one_minus_ratio"))
    assert reason is not None and "single-sample" in reason


def test_zero_lambda_methods_reduce_to_baseline():
    task = make_task(steps_per_epoch=20)
    request = CellRequest(size=12, seed=0, runs=6)
    base = task.run(make_method("baseline"), request)
    for name, extra in (("interpolation", {}), ("noising", {}), ("reverse_kd", {}),
                        ("imm_sampled", {}), ("imm_serialized", {"refresh_every": 3})):
        out = task.run(make_method(name, 0.0, **extra), request)
        np.testing.assert_allclose(out["reward"], base["reward"], err_msg=name)


def test_interpolation_with_a_large_lambda_acts_like_the_pomdp_policy():
    task = make_task()
    request = CellRequest(size=1, seed=0, runs=30)
    base = task.run(make_method("baseline"), request)["reward"]
    mixed = task.run(make_method("interpolation", 99.0), request)["reward"]
    assert mixed.mean() > base.mean() + 2.0  # an untrained MLP is near-random


def test_imm_beats_the_baseline_with_few_epochs():
    task = make_task()
    request = CellRequest(size=75, seed=0, runs=30)
    base = task.run(make_method("baseline"), request)["reward"]
    imm = task.run(make_method("imm_sampled", 0.25), request)["reward"]
    assert np.median(imm) > np.median(base) + 3.0


def test_smoke_specs_run_and_report(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("grid_rl", "grid_rl_quality"):
        spec = ROOT / "specs" / "smoke" / f"{name}.yaml"
        assert main(["run", str(spec), "--fresh", "--set",
                     f"output_dir={tmp_path / 'results'}"]) == 0
        out = tmp_path / "results" / f"smoke_{name}"
        assert (out / "report.md").is_file() and (out / "plot.png").is_file()
        assert "reward" in (out / "report.md").read_text()
