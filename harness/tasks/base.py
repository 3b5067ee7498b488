"""The task contract: how a task trains replicates of its full model with any method.

A task subclasses ``Task`` and implements:

1. ``run(method, request, progress)``: train ``request.runs`` replicates of the full model
   on a dataset of ``request.size`` drawn from ``request.seed`` (the same data for every
   method, so comparisons are paired), with ``method.loss(views, step)`` (or
   ``method.loss_parts``) as the objective, and return one value per replicate for each
   metric its params declare, evaluated on ``request.split`` ("test", or "validation"
   when tuning: tuning never sees test data). Data files are read from
   ``request.data_dir``; checkpoints (if any) go under ``request.checkpoint_dir``. Raise
   ``harness.errors.Diverged`` on NaN/inf (``harness.tasks.kit.require_finite``).
   A task whose params declare ``warm_up_rules`` also honours ``request.warm_start``
   (``WarmStart`` below): replicate r starts from ``<start>/run<r>.pt`` (a warm-up's
   saved training state), and a warm-up (``stop`` set) trains until its rule holds,
   saves its state to ``<save>/run<r>.pt`` and returns at least ``valid_ppl``-like
   metrics of that point instead of its test metrics.
2. A ``Views`` subclass: what a method may see of one training batch (below).
3. ``supplies``: the capabilities (harness.capabilities) its views and evaluation
   provide, and ``declines`` for those it withholds on purpose, with the reason. A method
   that needs something the task does not supply is skipped with that reason.
4. Optionally ``run_group(members, progress)`` with "cell_groups" in ``supplies``: train
   several cells (members differing only in method, size, lambda or seed) as one
   program, yielding each member's metrics (or its exception) as soon as it is known,
   with the numbers that member's ``run`` gives alone (``lambdas``: members differing
   only in lambda may batch it, within float rounding), and each member's learning
   curve to its own ``curve`` sink (``harness.tasks.groups.report_curve``: a member's
   curve is the one it has alone). The default runs them one by one.
5. A params model (a ``harness.tasks.config.TaskParams`` subclass, in a light module):
   its ``metrics``, ``higher_is_better``, ``data_files`` / ``check_data`` for the files a
   cell reads, and ``contract_params`` (tiny settings for tests/contract).

The shared machinery (stale snapshots, separate gradient clipping, progress, the finite
check, named random streams) is in ``harness.tasks.kit``.

Views (C = number of classes; ``...`` = the task's batch shape, e.g. (runs, n)):

- ``targets``: the observed labels (...).
- ``log_q()``: log Q(y | full context), (..., C), differentiable.
- ``log_q_imm()``: the same as the IMM branch sees it (e.g. without dropout); defaults
  to ``log_q()``.
- ``restricted()``: P_restricted(y | short context), (..., C), constant.
- ``induced(k)``: an ``Induced`` of Q over extended contexts sharing the short context:
  all of them with the task's weights (k=None) or k sampled ones.
- ``stale_correction(refresh)``: Q_stale(y|x) / Qbar_stale(y|short), (..., C), from a
  snapshot of the model the task keeps (re-taken when ``refresh``).
- ``stale_log_q(refresh)``: log Q_stale(y | x) of the same snapshot kind, (..., C), no
  gradient (self-distillation from an earlier model).
- ``primary_loss(targets)``: the per-item primary loss (...,) on the given targets.
- ``reduce(per_item)``: the scalar to differentiate (e.g. mean per run, summed over runs).
- ``per_run(per_item)``: the same per run, (runs,), with ``reduce(x) == per_run(x).sum()``
  (tasks supplying "cell_groups": runs with different lambdas train as one batch).
- ``loss_form``: "convex" ((primary + lam term)/(1 + lam)) or "additive".
- ``noising``: which form of noising applies: "targets" (targets resampled from the
  restricted model), "single_sample" (the IMM term with one extended context) or "task"
  (the task's own noising: ``views.noise(ratio)`` returns the targets, e.g. Xie et al.'s
  LM noising of inputs and targets).
- ``generator``: the torch.Generator for the method's randomness.
- ``refresh_period``: the steps that ``refresh_every: size`` means for serialized IMM:
  the dataset size n for logistic regression (the paper's choice), the steps of one epoch
  for the language and GLUE tasks, the epochs (= the size) for grid RL.
- ``progress``: the fraction of the training schedule done, in [0, 1] (for methods
  whose weights follow a schedule).
- ``epoch``: the index of the current pass over the training data.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from torch import Tensor

from harness.methods.base import Method
from harness.methods.induced import Induced
from harness.tasks.kit import CurveSink, Progress, make_generator, stable_seed

__all__ = ["CellRequest", "GroupMember", "MemberResult", "Progress", "Task", "Views",
           "WarmStart", "make_generator", "pick_device", "stable_seed"]


@dataclass(frozen=True)
class WarmStart:
    """Where a cell's training starts and where a warm-up stops (harness.runner.dependencies).

    ``start``: a folder holding a warm-up's saved training state (``run<r>.pt`` for
    replicate r) to start from instead of a fresh model; ``lr``: the learning rate from
    there, the method's term switched on (None: the saved schedule carries on, so that
    the warm-up's own method continues exactly as it would have). ``stop``: (rule, value)
    at which a warm-up ends, a rule of the task's ``warm_up_rules``; ``save``: the folder
    its state goes to. ``same_method``: the state was trained by this cell's method
    with the same params, so the method's random streams continue from it (else they
    start fresh). A task raises ``WarmUpNotReached`` when training ends before the rule
    holds."""

    start: str | None = None
    lr: float | None = None
    stop: tuple[str, float | None] | None = None
    save: str | None = None
    # The warm-up trained this cell's method (same params): its random streams continue.
    same_method: bool = False


@dataclass(frozen=True)
class CellRequest:
    """One cell's work: dataset size, seed, batched replicates, evaluation split, and
    where its data files are and where it may checkpoint (None: nowhere); its warm start
    (None: from scratch)."""

    size: int
    seed: int
    runs: int
    split: Literal["test", "validation"] = "test"
    data_dir: str | None = None
    checkpoint_dir: str | None = None
    warm_start: WarmStart | None = None



@dataclass(frozen=True)
class GroupMember:
    """One cell of a group: its method (with its lambda), its request, and where its
    learning curve goes (the runner's ``CellProgress.curve`` of that cell; None: nobody
    listens, e.g. a tuning trial)."""

    method: Method
    request: CellRequest
    curve: CurveSink | None = None


# A member's outcome: {metric: (runs,) array}, or the exception its run raised.
MemberResult = dict[str, np.ndarray] | Exception


class Views(ABC):
    """One training batch as methods see it (see the module docstring)."""

    targets: Tensor
    generator: torch.Generator
    refresh_period: int
    progress: float = 0.0
    epoch: int = 0
    loss_form: Literal["convex", "additive"] = "additive"
    noising: Literal["targets", "single_sample", "task"] = "targets"

    @abstractmethod
    def log_q(self) -> Tensor: ...

    def log_q_imm(self) -> Tensor:
        """log Q on the items' own contexts as the IMM branch sees them."""
        return self.log_q()

    @abstractmethod
    def restricted(self) -> Tensor: ...

    @abstractmethod
    def induced(self, k: int | None) -> Induced: ...

    @abstractmethod
    def stale_correction(self, refresh: bool) -> Tensor: ...

    def stale_log_q(self, refresh: bool) -> Tensor:
        """log Q_stale(y | x) from a snapshot (tasks supplying "stale_prediction")."""
        raise NotImplementedError(f"{type(self).__name__} keeps no stale predictions")

    @abstractmethod
    def primary_loss(self, targets: Tensor) -> Tensor: ...

    @abstractmethod
    def reduce(self, per_item: Tensor) -> Tensor: ...

    def per_run(self, per_item: Tensor) -> Tensor:
        """``reduce`` before the sum over runs: (runs,)."""
        raise NotImplementedError(f"{type(self).__name__} does not reduce per run")

    def term_shape(self, primary_shape: tuple[int, ...]) -> tuple[int, ...] | None:
        """The shape a method's term must have, one value per regularised item: by
        default the primary loss's per-item shape. A task whose term covers other items
        says which (None: only the number of dimensions is known)."""
        return primary_shape

    def noise(self, ratio: float) -> Tensor:
        """The targets under the task's own noising (only for ``noising == "task"``)."""
        raise NotImplementedError(f"{type(self).__name__} has no task-specific noising")


class Task(ABC):
    """Base class of tasks; see the module docstring for the contract."""

    name: ClassVar[str] = "task"
    # The capabilities (harness.capabilities) this task's views and evaluation supply, and
    # those it withholds on purpose, with the reason a method that needs one is skipped.
    supplies: ClassVar[frozenset[str]] = frozenset()
    declines: ClassVar[dict[str, str]] = {}
    # With "cell_groups": True when run_group trains each dataset size as a program of
    # its own (the runner then hands out sizes one by one, for balance).
    sizes_apart: ClassVar[bool] = False

    def __init__(self, params: Any, data_dir: str | None = None) -> None:
        self.params = params
        self.data_dir = data_dir
        self.device = pick_device(getattr(params, "device", "auto"))

    def skip(self, method: Method) -> str | None:
        """A reason when this task does not run ``method`` (the cell is skipped); the
        method's own ``Method.skip(task)`` is asked first."""
        return None

    @abstractmethod
    def run(
        self, method: Method, request: CellRequest, progress: Progress | None = None
    ) -> dict[str, np.ndarray]:
        """Train ``request.runs`` replicates; return {metric: array of shape (runs,)}."""

    def run_group(self, members: Sequence[GroupMember], progress: Progress | None = None,
                  *, lambdas: bool = False) -> Iterator[tuple[int, MemberResult]]:
        """Train several cells; yield (member index, its metrics or exception) as each is
        done. Tasks supplying "cell_groups" train them as one program, each member with
        the bits it has alone; with ``lambdas`` (tuning trials) members that differ only
        in lambda may share one set of operations, within float rounding of their runs
        alone. This default runs them one after the other (any task can be handed a
        group)."""
        for index, member in enumerate(members):
            part = _MemberProgress(progress, index, len(members), member.curve)
            try:
                yield index, self.run(member.method, member.request, part)
            except Exception as exc:  # noqa: BLE001 - the member's own outcome
                yield index, exc


def pick_device(choice: str = "auto") -> torch.device:
    """cuda when asked for or available (auto), else cpu."""
    if choice == "cuda" or (choice == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")


class _MemberProgress:
    """The progress callback of member ``index`` of ``count`` run one after another: its
    share of the group's progress, and its own learning curve (``curve``, as the
    runner's callback of a cell alone has one)."""

    def __init__(self, progress: Progress | None, index: int, count: int,
                 curve: CurveSink | None) -> None:
        self.progress, self.index, self.count = progress, index, count
        self.curve = curve

    def __call__(self, fraction: float) -> None:
        if self.progress is not None:
            self.progress((self.index + fraction) / self.count)
