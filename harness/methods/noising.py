"""Noising (Xie et al. 2017, read as in the paper's Sec. 6): targets resampled from the
restricted model. Its expected loss is (1 - r) CE + r CE(P_restricted, Q), i.e. a
stochastic reverse-KD, which is why the paper calls it single-sample IMM's cousin."""

import torch
from torch import Tensor

from harness.methods.base import Method, sample_categorical
from harness.tasks.base import Views


class Noising(Method):
    """With probability r = lambda/(1+lambda), a target is replaced by a draw from
    P_restricted(.|short); drawn afresh at every step."""

    name = "noising"

    def targets(self, views: Views) -> Tensor:
        observed = views.targets
        gen = views.generator
        drawn = sample_categorical(views.restricted(), gen)
        flip = torch.rand(observed.shape, generator=gen, device=observed.device) < self.ratio
        return torch.where(flip, drawn, observed)
