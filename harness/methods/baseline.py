"""Baseline: the primary loss alone."""

from harness.methods.base import Method


class Baseline(Method):
    """Cross-entropy (or the task's primary loss) only; the restricted model is unused."""

    name = "baseline"
