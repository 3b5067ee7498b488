"""The method contract: every method is "primary loss + lambda x a term from the restricted
model" (or from anything else a task supplies). A method sees a task only through a
batch's ``Views`` (harness.tasks.base) and the task's declared capabilities.

To add a method, subclass ``Method`` and override only what differs from the baseline:

- ``requires``: the capabilities (harness.capabilities) it needs from a task; a task that
  does not supply one skips the cell with a reason. ``regularises``: True when the method
  has a term or changes the targets (a task with an auxiliary branch, such as GLUE's
  masked-LM, trains that branch for such methods).
- ``targets(views)``: the targets the primary loss is computed on (noising resamples them).
- ``term(views, step)``: a per-item regulariser, weighted by lambda (reverse-KD, IMM).
- ``weights(views, step)``: (primary, term) weights for a schedule of its own; by
  default lambda weighs the term, within the task's ``loss_form`` ("convex":
  (primary + lambda term) / (1 + lambda)).
- ``predict(probs, restricted)``: the prediction used at evaluation (interpolation mixes;
  declare "mixed_prediction" in ``requires``). Return ``probs`` itself (the same tensor)
  when the prediction is the model's own, as the baseline does: tasks then score it by
  the baseline's exact path (the PTB task's log_softmax, not log of the softmax), so a
  method at lambda 0 gives the baseline's numbers bit for bit on any processor.
- ``skip(task)``: a reason string when the method cannot run on a task for a reason the
  capabilities do not express.
- ``term_form``: the name (harness.capabilities.TERM_FORMS) of the term's closed form, so
  that a task may compute it by a faster exact path; None (the default) = autograd on
  ``loss_parts``. A subclass that overrides how the loss is formed without restating
  ``term_form`` gets None: its term may no longer be that form.

- ``lambda_batch``: True when tuning trials that differ only in lambda may train as one
  batch with a lambda per run (``lam_rows``): lambda enters training only through the
  default weights and ``deterministic_term()`` says the term draws nothing. A subclass
  that overrides a training hook must restate it (as ``term_form``).

Register it with its params model (a ``harness.methods.config.MethodParams`` subclass in a
light module): built-ins in ``harness.registry``, outside methods through a plugin
(``harness.registry.plugins``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import Tensor

if TYPE_CHECKING:
    from harness.tasks.base import Task, Views


# The hooks through which a method changes training (``predict`` changes evaluation only).
TRAINING_HOOKS = ("targets", "term", "weights", "loss_parts", "loss")


class Method:
    """Baseline behaviour: primary loss on the observed targets, no regulariser."""

    name: ClassVar[str] = "method"
    requires: ClassVar[frozenset[str]] = frozenset()
    regularises: ClassVar[bool] = False
    term_form: ClassVar[str | None] = None

    # True when runs with different lambdas may train as one batch (``batches_lambda``);
    # like ``term_form``, a subclass that overrides a training hook must restate it.
    lambda_batch: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        overrides = {"term", "targets", "weights", "loss_parts", "loss"} & set(vars(cls))
        if overrides and "term_form" not in vars(cls):
            cls.term_form = None
        if (overrides or "deterministic_term" in vars(cls)) and "lambda_batch" not in vars(cls):
            cls.lambda_batch = False

    def __init__(self, params: Any, lam: float | None) -> None:
        self.params = params
        self.lam = float(lam) if lam is not None else 0.0
        # Per-run lambdas (float64, one per run of the batch) when several lambdas train
        # as one batch (``batches_lambda``); None: ``lam`` for every run.
        self.lam_rows: Tensor | None = None

    @property
    def ratio(self) -> float:
        """r = lambda / (1 + lambda): the weight of the restricted model in [0, 1)."""
        return self.lam / (1.0 + self.lam)

    @classmethod
    def trains_as_primary(cls) -> bool:
        """True when the method overrides none of the training hooks: it trains on the
        primary loss alone, whatever its lambda and params (interpolation trains as the
        baseline), so a task may train such cells once and evaluate each."""
        return not any(hook in vars(klass) for klass in cls.__mro__
                       if klass is not Method and issubclass(klass, Method)
                       for hook in TRAINING_HOOKS)

    def batches_lambda(self) -> bool:
        """True when runs with different lambdas may train as one batch (tuning trials,
        within float rounding of each alone): the class declares ``lambda_batch`` (its
        lambda enters training only through the default weights of ``loss_parts``: no
        ``weights``, ``loss_parts``, ``loss`` or ``targets`` of its own) and its term
        draws no random numbers with these params (``deterministic_term``)."""
        if not self.lambda_batch or self.trains_as_primary():
            return False
        hooks = ("targets", "weights", "loss_parts", "loss")
        return not any(hook in vars(klass) for klass in type(self).__mro__
                       if klass is not Method and issubclass(klass, Method)
                       for hook in hooks) and self.deterministic_term()

    def deterministic_term(self) -> bool:
        """Whether ``term`` draws no random numbers with these params (a batch of lambdas
        would draw them otherwise); methods whose term may sample say when it does not."""
        return True

    def skip(self, task: Task) -> str | None:
        return None

    def targets(self, views: Views) -> Tensor:
        return views.targets

    def term(self, views: Views, step: int) -> Tensor | None:
        return None

    def predict(self, probs: Tensor, restricted: Tensor) -> Tensor:
        return probs

    def weights(self, views: Views, step: int) -> tuple[float, float] | None:
        """(weight of the primary loss, weight of the term) at ``step`` for a method with a
        schedule of its own; None (the default) = lambda in the task's ``loss_form``."""
        return None

    def loss_parts(self, views: Views, step: int) -> tuple[Tensor, Tensor | None]:
        """(weighted primary, weighted regulariser or None) as scalars; their sum is the loss.

        Tasks that treat the two gradients differently (the LSTM clips each one
        separately, as in the paper's App. D.2.2) use the parts; others use ``loss``.
        """
        per_item = views.primary_loss(self.targets(views))
        term = self.term(views, step)
        if term is not None:
            self._check_term_shape(views, per_item, term)
        if self.lam_rows is not None:
            return self._lambda_rows_parts(views, per_item, term)
        primary = views.reduce(per_item)
        if term is None:
            return primary, None
        term = views.reduce(term)
        custom = self.weights(views, step)
        if custom is not None:
            return primary * custom[0], term * custom[1]
        if views.loss_form == "convex":
            return primary / (1.0 + self.lam), term * (self.lam / (1.0 + self.lam))
        return primary, term * self.lam

    def _check_term_shape(self, views: Views, per_item: Tensor, term: Tensor) -> None:
        """A term must hold one value per regularised item: broadcasting would hide a
        wrong shape (and, in a group, mix runs), so it fails the cell naming both."""
        expected = views.term_shape(tuple(per_item.shape))
        if (tuple(term.shape) != expected if expected is not None
                else term.dim() != per_item.dim()):  # broadcasting would hide it: "ok"
            from harness.errors import ContractError

            raise ContractError(
                f"method {self.name if self.name != 'method' else type(self).__name__}: "
                f"its term has shape {tuple(term.shape)} but the primary loss per item has "
                f"shape {tuple(per_item.shape)}"
                f"{'' if expected in (None, tuple(per_item.shape)) else f' (the term: {expected})'}"
                "; Method.term returns one value per item")

    def _lambda_rows_parts(self, views: Views, primary_items: Tensor, term: Tensor | None
                           ) -> tuple[Tensor, Tensor | None]:
        """``loss_parts`` with a lambda per run: each run's reduced primary and term
        weighted before the runs are summed, with the weights formed in float64 as the
        scalar path forms them, so every run's gradient has the bits it has alone."""
        assert term is not None and self.lam_rows is not None
        lam = self.lam_rows
        primary, term_rows = views.per_run(primary_items), views.per_run(term)
        if views.loss_form == "convex":
            return ((primary / (1.0 + lam).to(primary.dtype)).sum(),
                    (term_rows * (lam / (1.0 + lam)).to(term_rows.dtype)).sum())
        return primary.sum(), (term_rows * lam.to(term_rows.dtype)).sum()

    def loss(self, views: Views, step: int) -> Tensor:
        """The scalar to minimise at ``step``: primary + lambda * term, as the task combines."""
        primary, term = self.loss_parts(views, step)
        return primary if term is None else primary + term


def sample_categorical(probs: Tensor, generator: torch.Generator) -> Tensor:
    """One class index per item from (..., C) probabilities, with an explicit generator."""
    # Inverse-CDF sampling: one uniform per item, vectorised (multinomial is slow here).
    u = torch.rand(probs.shape[:-1] + (1,), generator=generator, device=probs.device)
    draws = (probs.cumsum(-1) < u).sum(-1)
    return draws.clamp_max(probs.shape[-1] - 1)
