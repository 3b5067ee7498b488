"""Interpolation: train as the baseline, mix the restricted model in at prediction time."""

from torch import Tensor

from harness.methods.base import Method


class Interpolation(Method):
    """Prediction (1 - r) Q(.|x) + r P_restricted(.|short), r = lambda / (1 + lambda)."""

    name = "interpolation"
    requires = frozenset({"restricted", "mixed_prediction"})

    def predict(self, probs: Tensor, restricted: Tensor) -> Tensor:
        """The mixture; at r = 0 (lambda 0) ``probs`` itself, the very tensor, so that a
        task scores it exactly as the baseline's prediction (``Method.predict``)."""
        if self.ratio == 0.0:
            return probs
        return (1.0 - self.ratio) * probs + self.ratio * restricted
