"""The logistic-regression toy (paper Sec. 7.1, App. D.1): all replicates of a cell train
together as one batched tensor program (weights of shape (runs, 3) and (runs,)).

Short context x1; extended context (x2, x3). The induced model at x1_t averages Q over
the training points' extended contexts with Laplace-kernel weights
w_t(t') proportional to exp(-alpha |x1_t - x1_t'|) (paper Eq. 22).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from harness.errors import Diverged
from harness.methods.base import Method
from harness.methods.induced import Induced, crosstalk_cross_entropy
from harness.tasks.base import CellRequest, Progress, Task, Views, make_generator
from harness.tasks.kit import ProgressMeter, Snapshot
from harness.tasks.logistic.config import LogisticParams
from harness.tasks.logistic.geometry import bayes_restricted

RESTRICTED_POINTS = 200


class LogisticTask(Task):
    """Toy logistic regression: 3 features on a cube, restricted model sees x1 only."""

    name = "logistic"
    supplies = frozenset({"restricted", "induced", "stale_correction", "stale_prediction",
                          "noising", "mixed_prediction"})
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
        p = self.params
        runs, n = request.runs, request.size
        x, y = self.sample(runs, n, "train", request.seed, n)
        weight = torch.zeros(runs, 3, device=self.device, requires_grad=True)
        bias = torch.zeros(runs, device=self.device, requires_grad=True)
        state = _TrainState(
            task=self,
            x=x,
            y=y,
            restricted=self.restricted_target(x[..., 0]),
            generator=make_generator(self.device, "logistic-method", request.seed, n, method.name),
        )
        meter = ProgressMeter(progress)
        for step in range(p.epochs):
            views = LogisticViews(state, weight, bias, step)
            loss = method.loss(views, step)
            g_weight, g_bias = torch.autograd.grad(loss, (weight, bias))
            with torch.no_grad():
                weight -= p.lr * g_weight
                bias -= p.lr * g_bias
            if meter.due(step, p.epochs):  # the objective, mean over the replicates
                meter.curve(step + 1, train_loss=loss.detach() / runs)
            meter.update((step + 1) / p.epochs)
        bad = ~(torch.isfinite(weight).all(-1) & torch.isfinite(bias))
        if bad.any():
            raise Diverged(f"{int(bad.sum())} of {runs} runs have non-finite weights")
        return self.evaluate(method, weight.detach(), bias.detach(), x, request)

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


class _TrainState:
    """What persists across steps: the data, the targets and the serialized snapshot."""

    def __init__(self, task: LogisticTask, x: Tensor, y: Tensor, restricted: Tensor,
                 generator: torch.Generator) -> None:
        self.task, self.x, self.y = task, x, y
        self.restricted = restricted
        self.generator = generator
        self.stale: Snapshot[_Stale] = Snapshot()  # serialized IMM, self-distillation
        self._kernel: Tensor | None = None

    @property
    def kernel(self) -> Tensor:
        """Kernel weights between training points; built on first use (IMM methods only)."""
        if self._kernel is None:
            self._kernel = self.task.kernel_weights(self.x[..., 0], self.x[..., 0])
        return self._kernel


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

    def __init__(self, state: _TrainState, weight: Tensor, bias: Tensor, step: int = 0
                 ) -> None:
        self.state = state
        self.weight, self.bias = weight, bias
        self.targets = state.y
        self.generator = state.generator
        self.refresh_period = state.x.shape[1]  # the paper: refresh every n steps
        self.epoch = step
        self.progress = step / state.task.params.epochs
        self.loss_form = state.task.params.loss_form
        self._logits: Tensor | None = None

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
        return per_item.mean(-1).sum()
