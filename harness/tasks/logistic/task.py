"""The logistic-regression toy (paper Sec. 7.1, App. D.1): all replicates of a cell train
together as one batched tensor program (weights of shape (runs, 3) and (runs,)).

Short context x1; extended context (x2, x3). The induced model at x1_t averages Q over
the training points' extended contexts with Laplace-kernel weights
w_t(t') proportional to exp(-alpha |x1_t - x1_t'|) (paper Eq. 22).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from harness.errors import Diverged
from harness.methods.base import Method
from harness.methods.induced import Induced, crosstalk_cross_entropy
from harness.tasks.base import CellRequest, Progress, Task, Views, make_generator
from harness.tasks.groups import (
    GroupMember,
    MemberResult,
    by_size,
    curve_sinks,
    report_curve,
    run_alone,
    training_slots,
)
from harness.tasks.kit import ProgressMeter, Snapshot, curve_due
from harness.tasks.logistic.config import LogisticParams
from harness.tasks.logistic.geometry import bayes_restricted

RESTRICTED_POINTS = 200


class LogisticTask(Task):
    """Toy logistic regression: 3 features on a cube, restricted model sees x1 only."""

    name = "logistic"
    supplies = frozenset({"restricted", "induced", "stale_correction", "stale_prediction",
                          "noising", "mixed_prediction", "cell_groups"})
    sizes_apart = True  # run_group: one program per size
    params: LogisticParams

    # ---- data -----------------------------------------------------------------------
    def sample(self, runs: int, n: int, *seed_parts: object) -> tuple[Tensor, Tensor]:
        """Features (runs, n, 3) uniform on the cube and labels (runs, n) from the plane."""
        gen = make_generator(torch.device("cpu"), "logistic", *seed_parts)
        lo, hi = self.params.cube
        x = torch.rand(runs, n, 3, generator=gen, dtype=torch.float32) * (hi - lo) + lo
        a, b, c, d = self.params.coefficients
        y = (a * x[..., 0] + b * x[..., 1] + c * x[..., 2] + d > 0).long()
        return x.to(self.device), y.to(self.device)

    def restricted_target(self, x1: Tensor) -> Tensor:
        """P_restricted(y | x1) as (..., 2): Bayes-optimal, mixed with a coin flip."""
        p1 = bayes_restricted(x1, self.params.coefficients, self.params.cube)
        p1 = (1.0 - self.params.flip) * p1 + self.params.flip * 0.5
        return torch.stack([1.0 - p1, p1], -1)

    def kernel_weights(self, x1_query: Tensor, x1_train: Tensor) -> Tensor:
        """(runs, m, n) Laplace-kernel weights over training points, rows summing to 1."""
        dist = (x1_query.unsqueeze(-1) - x1_train.unsqueeze(-2)).abs()
        return torch.softmax(-self.params.kernel_alpha * dist, dim=-1)

    # ---- training -------------------------------------------------------------------
    def run(
        self, method: Method, request: CellRequest, progress: Progress | None = None
    ) -> dict[str, np.ndarray]:
        """One cell: a group of one (the same program as in any group)."""
        return run_alone(self, method, request, progress)

    def run_group(self, members: Sequence[GroupMember], progress: Progress | None = None,
                  *, lambdas: bool = False) -> Iterator[tuple[int, MemberResult]]:
        """Every member of one size in one batched program (harness.tasks.groups), the
        sizes one after another, largest first; each size's members are yielded when it
        is done."""
        programs = by_size(members)
        meter = ProgressMeter(progress, len(programs))
        for number, indices in enumerate(programs):
            yield from self._train_together(members, indices, meter.start(number), lambdas)

    def _train_together(self, members: Sequence[GroupMember], indices: Sequence[int],
                        meter: ProgressMeter, lambdas: bool = False
                        ) -> Iterator[tuple[int, MemberResult]]:
        p = self.params
        n = members[indices[0]].request.size
        slots = training_slots(members, indices, lambdas)
        data: dict[tuple[int, int, int], _Data] = {}
        for slot in slots:
            key = (slot.request.seed, slot.request.runs, slot.copies)
            if key not in data:  # a slot of batched lambdas: its runs' data once per lambda
                x, y = self.sample(slot.request.runs, n, "train", slot.request.seed, n)
                data[key] = _Data(self, x.repeat(slot.copies, 1, 1), y.repeat(slot.copies, 1))
            if slot.method.lam_rows is not None:
                slot.method.lam_rows = slot.method.lam_rows.to(self.device)
            slot.extra["state"] = _TrainState(data[key], make_generator(
                self.device, "logistic-method", slot.request.seed, n, slot.method.name))
        x_all = torch.cat([slot.extra["state"].x for slot in slots])
        weight = torch.zeros(x_all.shape[0], 3, device=self.device, requires_grad=True)
        bias = torch.zeros(x_all.shape[0], device=self.device, requires_grad=True)
        sinks = [curve_sinks(members, slot) for slot in slots]
        for step in range(p.epochs):
            logits = torch.einsum("rnd,rd->rn", x_all, weight) + bias[:, None]
            loss, parts = None, []
            for slot in slots:
                rows = slot.rows
                views = LogisticViews(slot.extra["state"], weight[rows], bias[rows], step,
                                      logits[rows])
                part = slot.method.loss(views, step)
                parts.append(part)
                loss = part if loss is None else loss + part
            g_weight, g_bias = torch.autograd.grad(loss, (weight, bias))
            with torch.no_grad():
                weight -= p.lr * g_weight
                bias -= p.lr * g_bias
            if curve_due(step, p.epochs):  # each training's objective, mean over its runs
                for slot, part, to in zip(slots, parts, sinks, strict=True):
                    if to:
                        report_curve(to, step + 1,
                                     train_loss=part.detach() / slot.request.runs)
            meter.update((step + 1) / p.epochs)
        weight, bias = weight.detach(), bias.detach()
        for slot in slots:
            w, b = weight[slot.rows], bias[slot.rows]
            finite = torch.isfinite(w).all(-1) & torch.isfinite(b)
            for index in slot.members:
                bad = ~finite[slot.member_rows(index)]
                if bad.any():
                    runs = slot.request.runs
                    yield index, Diverged(f"{int(bad.sum())} of {runs} runs have non-finite "
                                          "weights")
                    continue
                member, own = members[index], slot.member_rows(index)
                try:
                    yield index, self.evaluate(member.method, w[own], b[own],
                                               slot.extra["state"].x[own], member.request)
                except Exception as exc:  # noqa: BLE001 - this member's outcome
                    yield index, exc

    # ---- evaluation -----------------------------------------------------------------
    def evaluate(
        self, method: Method, weight: Tensor, bias: Tensor, x_train: Tensor,
        request: CellRequest,
    ) -> dict[str, np.ndarray]:
        """Accuracy and log-loss of the (method-adjusted) prediction on fresh points, and the
        restricted-task cross-entropy CE(P_restricted, Qbar) of the induced model there."""
        m = self.params.test_size if request.split == "test" else self.params.validation_size
        x, y = self.sample(request.runs, m, request.split, request.seed, request.size)
        logits = torch.einsum("rmd,rd->rm", x, weight) + bias[:, None]
        q = torch.stack([torch.sigmoid(-logits), torch.sigmoid(logits)], -1)
        target = self.restricted_target(x[..., 0])
        pred = method.predict(q, target)
        accuracy = (pred.argmax(-1) == y).float().mean(-1)
        log_loss = -pred.gather(-1, y[..., None]).squeeze(-1).clamp_min(1e-12).log().mean(-1)
        # The restricted task is scored on the first RESTRICTED_POINTS evaluation points:
        # its cost grows with points x training size, and it is a secondary metric.
        xr = x[:, :RESTRICTED_POINTS]
        short = xr[..., 0] * weight[:, None, 0] + bias[:, None]
        extended = torch.einsum("rnd,rd->rn", x_train[..., 1:], weight[:, 1:])
        induced = Induced(
            probs=torch.sigmoid(short[:, :, None] + extended[:, None, :]),
            weights=self.kernel_weights(xr[..., 0], x_train[..., 0]),
        )
        restricted_ce = crosstalk_cross_entropy(target[:, :RESTRICTED_POINTS], induced).mean(-1)
        return {
            "accuracy": accuracy.cpu().numpy().astype(float),
            "log_loss": log_loss.cpu().numpy().astype(float),
            "restricted_ce": restricted_ce.cpu().numpy().astype(float),
        }


class _Data:
    """A training set (runs, n) shared by the trainings of one seed: features, labels, the
    restricted targets, and the kernel between training points (built on first use: IMM
    methods only)."""

    def __init__(self, task: LogisticTask, x: Tensor, y: Tensor) -> None:
        self.task, self.x, self.y = task, x, y
        self.restricted = task.restricted_target(x[..., 0])
        self._kernel: Tensor | None = None

    @property
    def kernel(self) -> Tensor:
        if self._kernel is None:
            self._kernel = self.task.kernel_weights(self.x[..., 0], self.x[..., 0])
        return self._kernel


class _TrainState:
    """What persists across steps of one training: its data, the method's generator and
    the serialized snapshot."""

    def __init__(self, data: _Data, generator: torch.Generator) -> None:
        self.data = data
        self.task, self.x, self.y = data.task, data.x, data.y
        self.restricted = data.restricted
        self.generator = generator
        self.stale: Snapshot[_Stale] = Snapshot()  # serialized IMM, self-distillation

    @property
    def kernel(self) -> Tensor:
        """Kernel weights between training points (shared by the trainings of a seed)."""
        return self.data.kernel


class _Stale:
    """A snapshot of the weights; what serialized IMM and self-distillation read of it is
    computed on first use (from the copied weights: the same numbers as at the refresh)."""

    def __init__(self, views: LogisticViews) -> None:
        self.views = LogisticViews(views.state, views.weight.detach().clone(),
                                   views.bias.detach().clone())
        self.cache: dict[str, Tensor] = {}

    def correction(self) -> Tensor:
        if "correction" not in self.cache:
            q = self.views.log_q().exp()
            self.cache["correction"] = q / self.views.induced(None).mixture().clamp_min(1e-12)
        return self.cache["correction"]

    def log_q(self) -> Tensor:
        if "log_q" not in self.cache:
            self.cache["log_q"] = self.views.log_q()
        return self.cache["log_q"]


class LogisticViews(Views):
    """The full training set of every replicate, as one batch of shape (runs, n); one
    full-batch gradient step is one epoch."""

    def __init__(self, state: _TrainState, weight: Tensor, bias: Tensor, step: int = 0,
                 logits: Tensor | None = None) -> None:
        self.state = state
        self.weight, self.bias = weight, bias
        self.targets = state.y
        self.generator = state.generator
        self.refresh_period = state.x.shape[1]  # the paper: refresh every n steps
        self.epoch = step
        self.progress = step / state.task.params.epochs
        self.loss_form = state.task.params.loss_form
        self._logits = logits  # computed for the whole group's batch, or here on first use

    def logits(self) -> Tensor:
        if self._logits is None:
            z = torch.einsum("rnd,rd->rn", self.state.x, self.weight)
            self._logits = z + self.bias[:, None]
        return self._logits

    def log_q(self) -> Tensor:
        z = self.logits()
        return torch.stack([F.logsigmoid(-z), F.logsigmoid(z)], -1)

    def restricted(self) -> Tensor:
        return self.state.restricted

    def induced(self, k: int | None) -> Induced:
        x = self.state.x
        short = x[..., 0] * self.weight[:, None, 0] + self.bias[:, None]  # (runs, n)
        extended = torch.einsum("rnd,rd->rn", x[..., 1:], self.weight[:, 1:])  # (runs, n)
        if k is None:
            probs = torch.sigmoid(short[:, :, None] + extended[:, None, :])
            return Induced(probs=probs, weights=self.state.kernel)
        runs, n = short.shape
        idx = torch.multinomial(
            self.state.kernel.reshape(runs * n, n), k, replacement=True, generator=self.generator
        ).reshape(runs, n, k)
        picked = extended.gather(1, idx.reshape(runs, n * k)).reshape(runs, n, k)
        probs = torch.sigmoid(short[:, :, None] + picked)
        return Induced(probs=probs, weights=torch.full_like(probs, 1.0 / k))

    def stale_correction(self, refresh: bool) -> Tensor:
        with torch.no_grad():
            return self.state.stale.get(refresh, lambda: _Stale(self)).correction()

    def stale_log_q(self, refresh: bool) -> Tensor:
        with torch.no_grad():
            return self.state.stale.get(refresh, lambda: _Stale(self)).log_q()

    def primary_loss(self, targets: Tensor) -> Tensor:
        return -self.log_q().gather(-1, targets[..., None]).squeeze(-1)

    def reduce(self, per_item: Tensor) -> Tensor:
        return self.per_run(per_item).sum()

    def per_run(self, per_item: Tensor) -> Tensor:
        return per_item.mean(-1)
