"""The crosstalk decomposition (paper App. C.2) gives autograd's gradient of
-sum_y P(y) log sum_j w_j Q_j(y), also when accumulated one extended context at a time."""

from __future__ import annotations

import torch

from harness.methods.induced import Induced, crosstalk_cross_entropy


def _setup(binary: bool):
    gen = torch.Generator().manual_seed(0)
    batch, k, classes = (4, 6), 7, 5
    logits = torch.randn(*batch, k, 1 if binary else classes, generator=gen, dtype=torch.float64)
    logits.requires_grad_(True)
    weights = torch.softmax(torch.randn(*batch, k, generator=gen, dtype=torch.float64), -1)
    target = torch.softmax(torch.randn(*batch, 2 if binary else classes, generator=gen,
                                       dtype=torch.float64), -1)
    return logits, weights, target


def _direct_loss(logits, weights, target, binary):
    if binary:
        p1 = torch.sigmoid(logits.squeeze(-1))
        probs = torch.stack([1 - p1, p1], -1)
    else:
        probs = torch.softmax(logits, -1)
    mix = (weights.unsqueeze(-1) * probs).sum(-2)
    return -(target * mix.log()).sum(-1)


def _induced(logits, weights, binary):
    if binary:
        return Induced(probs=torch.sigmoid(logits.squeeze(-1)), weights=weights)
    return Induced(probs=torch.softmax(logits, -1), weights=weights)


def test_value_and_gradient_equal_autograd_multiclass_and_binary():
    for binary in (False, True):
        logits, weights, target = _setup(binary)
        direct = _direct_loss(logits, weights, target, binary)
        (g_direct,) = torch.autograd.grad(direct.sum(), logits)
        crosstalk = crosstalk_cross_entropy(target, _induced(logits, weights, binary))
        (g_cross,) = torch.autograd.grad(crosstalk.sum(), logits)
        torch.testing.assert_close(crosstalk, direct.detach())
        torch.testing.assert_close(g_cross, g_direct)
        assert g_direct.abs().sum() > 0


def test_gradient_accumulated_one_component_at_a_time():
    """The point of crosstalk: weights c_j(y) need no gradient, so each extended context's
    backward pass can run alone (memory does not grow with k) and the sum is exact."""
    logits, weights, target = _setup(binary=False)
    (g_direct,) = torch.autograd.grad(_direct_loss(logits, weights, target, False).sum(), logits)
    with torch.no_grad():
        probs = torch.softmax(logits, -1)
        mix = (weights.unsqueeze(-1) * probs).sum(-2)
        crosstalk = weights.unsqueeze(-1) * probs / mix.unsqueeze(-2)  # c_j(y)
    accumulated = torch.zeros_like(logits)
    for j in range(logits.shape[-2]):
        component = logits[..., j, :]
        log_q = torch.log_softmax(component, -1)
        part = -(target * crosstalk[..., j, :] * log_q).sum()
        (g,) = torch.autograd.grad(part, logits)
        accumulated += g
    torch.testing.assert_close(accumulated, g_direct)


def test_shared_rows_through_an_index_equal_per_item_rows():
    """One induced prediction per distinct short context (index) gives the same values and
    gradients as one per item."""
    logits, weights, target = _setup(binary=False)
    rows_logits = logits[0]  # 6 distinct rows, (6, K, C)
    index = torch.tensor([[0, 3, 3, 5], [1, 1, 0, 2]])
    item_target = torch.softmax(torch.randn(2, 4, target.shape[-1], dtype=torch.float64), -1)
    shared = crosstalk_cross_entropy(
        item_target, Induced(torch.softmax(rows_logits, -1), weights[0], index=index))
    (g_shared,) = torch.autograd.grad(shared.sum(), logits)
    per_item = crosstalk_cross_entropy(
        item_target, Induced(torch.softmax(rows_logits[index], -1), weights[0][index]))
    (g_item,) = torch.autograd.grad(per_item.sum(), logits)
    torch.testing.assert_close(shared, per_item)
    torch.testing.assert_close(g_shared, g_item)
