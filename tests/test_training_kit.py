"""The training kit's shared pieces (issue 12): one clip, one finite watch, one induced
table, used by every task."""

from __future__ import annotations

import pytest
import torch

from harness.errors import Diverged
from harness.tasks.kit import FiniteWatch, GroupMean, clip_norm_


def _grads(seed: int, scale: float) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(s, generator=gen) * scale for s in ((300, 200), (200,), (7, 3, 5))]


@pytest.mark.parametrize("scale", [1e-3, 1.0, 50.0])
def test_clip_equals_torch_clip_grad_norm_bit_for_bit(scale: float) -> None:
    grads = _grads(0, scale)
    params = [torch.zeros_like(g, requires_grad=True) for g in grads]
    for q, g in zip(params, grads, strict=True):
        q.grad = g.clone()
    torch.nn.utils.clip_grad_norm_(params, 5.0)
    ours = clip_norm_([g.clone() for g in grads], 5.0)
    for q, g in zip(params, ours, strict=True):
        assert torch.equal(q.grad, g)


def test_float64_clip_has_the_float64_reference_scale() -> None:
    grads = _grads(1, 20.0)
    norm = torch.sqrt(sum((g.double() ** 2).sum() for g in grads))
    scale = (5.0 / (norm + 1e-6)).clamp_max(1.0).float()
    ours = clip_norm_([g.clone() for g in grads], 5.0, norm_dtype=torch.float64)
    for g, o in zip(grads, ours, strict=True):
        assert torch.equal(o, g * scale)
    total = torch.sqrt(sum((g.double() ** 2).sum() for g in ours))
    assert abs(float(total) - 5.0) < 1e-5


def test_finite_watch_names_the_first_bad_step() -> None:
    watch = FiniteWatch()
    watch.watch(0, torch.tensor(1.0), None)
    watch.check("loss")  # fine so far
    watch.watch(1, torch.tensor(1.0), torch.tensor(float("nan")))
    watch.watch(2, torch.tensor(float("inf")))
    with pytest.raises(Diverged, match="non-finite loss step 1"):
        watch.check("loss")


def test_group_mean_is_the_mean_per_group() -> None:
    table = GroupMean(3, 2, torch.device("cpu"))
    table.add(torch.tensor([0, 2, 0]), torch.tensor([[1.0, 2.0], [5.0, 5.0], [3.0, 4.0]]))
    means = table.mean_()
    assert torch.equal(means, torch.tensor([[2.0, 3.0], [0.0, 0.0], [5.0, 5.0]]))
    assert torch.equal(table.counts, torch.tensor([2.0, 0.0, 1.0]))
