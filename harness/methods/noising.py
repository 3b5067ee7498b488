"""Noising (Xie et al. 2017, read as in the paper's Sec. 6 and App. B.1).

A task declares which form applies to it (``Views.noising``):

- "targets": each target is replaced, with probability r = lambda/(1+lambda), by a draw
  from the restricted model's prediction for its short context, afresh at every step.
  Its expected loss is (1 - r) CE + r CE(P_restricted, Q): a stochastic reverse-KD.
  ``probability: one_minus_ratio`` replaces with probability 1 - r = 1/(1+lambda) instead
  (the paper's Table 4 noising numbers behave like it: 0.4 at lambda 1.5, not 0.6).
- "single_sample": the regulariser is CE(P_restricted, Q(.| short, one sampled extended
  context)), i.e. IMM with k = 1, which the paper shows is noising's close cousin.
- "task": the task's own noising, ``views.noise(p)`` with p the noising probability (the
  LSTM LM: Xie et al.'s noising of inputs and targets, with gamma0 = p).
"""

import torch
from torch import Tensor

from harness.methods.base import Method, sample_categorical
from harness.methods.induced import crosstalk_cross_entropy
from harness.tasks.base import Views


class Noising(Method):
    """Targets resampled from the restricted model (or the single-sample IMM term)."""

    name = "noising"
    requires = frozenset({"restricted", "noising"})
    regularises = True

    @property
    def probability(self) -> float:
        """The noising probability: r = lambda/(1+lambda), or 1 - r (``probability``)."""
        if self.params.probability == "one_minus_ratio":
            return 1.0 - self.ratio
        return self.ratio

    def targets(self, views: Views) -> Tensor:
        if views.noising == "task":
            return views.noise(self.probability)
        if views.noising != "targets":
            return views.targets
        observed = views.targets
        gen = views.generator
        drawn = sample_categorical(views.restricted(), gen)
        flip = torch.rand(observed.shape, generator=gen, device=observed.device) < self.probability
        return torch.where(flip, drawn, observed)

    def term(self, views: Views, step: int) -> Tensor | None:
        if views.noising != "single_sample":
            return None
        return crosstalk_cross_entropy(views.restricted(), views.induced(1))
