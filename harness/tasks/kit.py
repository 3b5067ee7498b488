"""The training kit: what every task's training loop shares, written once.

- ``Snapshot``: a value computed from the model at a refresh and kept until the next one
  (serialized IMM's stale model and its induced table, a previous epoch's predictions);
  ``model_copy`` for the networks such a snapshot holds.
- ``clip_norm_``: one global-norm clip of a list of gradients (no host read);
  ``clipped_backward``: the gradients of several loss parts, each clipped to its own norm
  before they are added (the paper's App. D.2.2: the primary and the regulariser's
  gradients clipped separately), built on it.
- ``GroupMean``: an induced table, the mean of predictions over the positions that share
  a short context (index_add_ of the rows and of the counts).
- ``ProgressMeter``: a cell's progress over its replicates, reported at most ~100 times,
  and its learning curves (``due``/``curve``: per-epoch metrics, ~100 points a cell).
- ``require_finite``: one check (and one device synchronisation) for NaN/inf;
  ``FiniteWatch``: the same check kept on the device step after step, read once.
- ``stable_seed`` and ``make_generator``: named random streams, stable across processes.

Tasks keep their own loops (a REINFORCE epoch is not a language-model step); they call
these instead of keeping private copies.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Callable, Iterable, Sequence
from typing import Generic, TypeVar

import torch
from torch import Tensor

from harness.errors import Diverged

T = TypeVar("T")
Progress = Callable[[float], None]
# Where a cell's learning-curve points go: (step, replicate, {metric: value}).
CurveSink = Callable[[int, int, dict[str, float]], None]


def stable_seed(*parts: object) -> int:
    """A seed from any parts, stable across processes and Python versions (unlike hash())."""
    digest = hashlib.sha256(repr(parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def make_generator(device: torch.device, *parts: object) -> torch.Generator:
    """A torch generator on ``device`` seeded by ``stable_seed(*parts)``: one named stream
    per purpose (data order, the method's draws, ...) so that methods stay paired."""
    gen = torch.Generator(device=device)
    gen.manual_seed(stable_seed(*parts))
    return gen


class Snapshot(Generic[T]):
    """A value made from the model now and kept until ``get(refresh=True)`` remakes it.

    Serialized IMM's stale model (its correction Q_stale / Qbar_stale) and a previous
    epoch's predictions (self-distillation) are snapshots; the task says how to make one
    (a closure over the current model, run without gradients)."""

    def __init__(self) -> None:
        self.value: T | None = None
        self.refreshes = 0

    def get(self, refresh: bool, make: Callable[[], T]) -> T:
        if refresh or self.value is None:
            with torch.no_grad():
                self.value = make()
            self.refreshes += 1
        return self.value

    def clear(self) -> None:
        self.value = None


def model_copy(model: torch.nn.Module, into: torch.nn.Module | None = None
               ) -> torch.nn.Module:
    """A frozen, eval-mode copy of ``model``'s current weights (reusing ``into``'s storage
    when given): what a stale snapshot of a network holds."""
    if into is None:
        into = copy.deepcopy(model)
    else:
        into.load_state_dict(model.state_dict())
    into.eval()
    return into


NORM_CHUNK = 1 << 16  # elements per float64 partial norm on the CPU (cache-sized pieces)


def clip_norm_(grads: Sequence[Tensor], max_norm: float,
               norm_dtype: torch.dtype | None = None) -> Sequence[Tensor]:
    """Scale ``grads`` in place to global L2 norm at most ``max_norm``; the scale stays a
    device tensor (nothing is read back to the host).

    With ``norm_dtype`` None this is ``torch.nn.utils.clip_grad_norm_`` op for op (same
    bits). ``norm_dtype=torch.float64`` accumulates the norm in float64 by foreach
    kernels, on the CPU over cache-sized pieces (no float64 copy of a whole gradient):
    within ~1e-14 of the float64 sum of squares, so the float32 scale is the one the
    float64 reference gives (the PTB LSTM's recorded digits)."""
    if not grads:
        return grads
    if norm_dtype is None:
        norms = torch._foreach_norm(list(grads), 2)
    else:
        pieces = list(grads) if grads[0].device.type != "cpu" else [
            part for g in grads for part in g.reshape(-1).split(NORM_CHUNK)]
        norms = torch._foreach_norm(pieces, 2, dtype=norm_dtype)
    total = torch.linalg.vector_norm(torch.stack(norms), 2)
    scale = torch.clamp(max_norm / (total + 1e-6), max=1.0).to(grads[0].dtype)
    torch._foreach_mul_(list(grads), scale)
    return grads


def clipped_backward(parameters: Sequence[Tensor],
                     parts: Sequence[tuple[Tensor, float | None]]) -> None:
    """Set ``.grad`` of ``parameters`` to the sum over ``parts`` of each part's gradient,
    clipped to that part's max norm (None: not clipped). One part with a norm is the usual
    global-norm clip; several are App. D.2.2's separate clipping."""
    params = [q for q in parameters if q.requires_grad]
    total: list[Tensor | None] = [None] * len(params)
    for i, (loss, max_norm) in enumerate(parts):
        for q in params:
            q.grad = None
        loss.backward(retain_graph=i < len(parts) - 1)
        if max_norm is not None:
            clip_norm_([q.grad for q in params if q.grad is not None], max_norm)
        for j, q in enumerate(params):
            if q.grad is not None:
                total[j] = q.grad if total[j] is None else total[j].add_(q.grad)
    for q, g in zip(params, total, strict=True):
        q.grad = g


def require_finite(values: Iterable[Tensor] | Tensor, what: str) -> None:
    """Raise Diverged("non-finite <what>") when any value is NaN or inf (one sync)."""
    tensors = [values] if isinstance(values, Tensor) else list(values)
    if not tensors:
        return
    flags = torch.stack([torch.isfinite(t.detach()).all() for t in tensors])
    if not bool(flags.all()):
        raise Diverged(f"non-finite {what}")


class FiniteWatch:
    """Remembers, on the device, the first step whose values were not finite, so that a
    GPU step never waits for a value to reach the host; ``check`` reads it once (an
    epoch's end) and raises Diverged."""

    def __init__(self) -> None:
        self._first_bad: Tensor | None = None

    def watch(self, step: int, *values: Tensor | None) -> None:
        present = [v.detach() for v in values if v is not None]
        if not present:
            return
        ok = torch.isfinite(present[0])
        for v in present[1:]:
            ok = ok & torch.isfinite(v)
        if self._first_bad is None:
            self._first_bad = torch.full((), -1, dtype=torch.long, device=present[0].device)
        self._first_bad = torch.where(~ok & (self._first_bad < 0), step, self._first_bad)

    def check(self, what: str) -> None:
        """Raise Diverged("non-finite <what> step <n>") if a watched step was bad."""
        if self._first_bad is not None and int(self._first_bad) >= 0:
            raise Diverged(f"non-finite {what} step {int(self._first_bad)}")


class GroupMean:
    """Means of rows grouped by an index: the induced table Qbar(.|short) = the average
    of the model's predictions over the positions that share a short context."""

    def __init__(self, groups: int, width: int, device: torch.device) -> None:
        self.sums = torch.zeros(groups, width, device=device)
        self.counts = torch.zeros(groups, device=device)

    def add(self, group: Tensor, rows: Tensor) -> None:
        """Add ``rows`` (N, width) to the groups ``group`` (N,)."""
        self.sums.index_add_(0, group, rows)
        self.counts.index_add_(0, group, torch.ones_like(group, dtype=self.counts.dtype))

    def mean_(self) -> Tensor:
        """The means, formed in the sums' memory (groups never added to stay zero)."""
        return self.sums.div_(self.counts.clamp_min(1.0)[:, None])


CURVE_POINTS = 100  # learning-curve points a cell reports at most (per metric)


def curve_due(step: int, total: int) -> bool:
    """Whether the 0-based ``step`` of ``total`` is a learning-curve point (about
    CURVE_POINTS of them, the last included)."""
    every = max(1, -(-total // CURVE_POINTS))
    return (step + 1) % every == 0 or step + 1 == total


class ProgressMeter:
    """Reports a cell's progress, (replicate + fraction of its training) / replicates,
    to the runner's callback, at most once per 1% (tasks call ``update`` every step).

    Learning curves go the same way: a task calls ``curve(step, name=value, ...)`` at the
    epochs where ``due`` says so (about CURVE_POINTS of them, the last included); the
    runner's callback keeps them for the record (its ``curve`` method), and MLflow shows
    them as step metrics. ``due`` is False when nobody listens (tuning trials, a plain
    callback), so a task reads no value it would not otherwise read."""

    def __init__(self, progress: Progress | None, runs: int = 1) -> None:
        self.progress, self.runs = progress, max(1, runs)
        self.run = 0
        self._last = -1.0
        self._sink = getattr(progress, "curve", None)

    def due(self, step: int, total: int) -> bool:
        """Whether the 0-based ``step`` of ``total`` is a learning-curve point."""
        return self._sink is not None and curve_due(step, total)

    def curve(self, step: int, **values: float | torch.Tensor) -> None:
        """Per-epoch metrics of the current replicate (or the mean over batched ones)
        after ``step`` epochs; tensors are read here (one host read each)."""
        if self._sink is not None:
            self._sink(step, self.run, {k: float(v) for k, v in values.items()})

    def start(self, run: int) -> ProgressMeter:
        self.run = run
        return self

    def update(self, fraction: float) -> None:
        if self.progress is None:
            return
        value = (self.run + min(max(fraction, 0.0), 1.0)) / self.runs
        if value - self._last >= 0.01 or fraction >= 1.0:
            self._last = value
            self.progress(value)
