"""The exact restricted target of the logistic toy: P(y = 1 | x1), by geometry.

With (x2, x3) uniform on the square [lo, hi]^2, y = 1 iff b x2 + c x3 > s where
s = -(a x1 + d). A = b x2 and B = c x3 are independent uniforms on intervals, and the
area of {A + B <= s} inside their rectangle is, by inclusion-exclusion,
G(s - a1 - b1) - G(s - a2 - b1) - G(s - a1 - b2) + G(s - a2 - b2), G(z) = max(z, 0)^2 / 2.
"""

from __future__ import annotations

from torch import Tensor


def _interval(coef: float, lo: float, hi: float) -> tuple[float, float]:
    ends = (coef * lo, coef * hi)
    return min(ends), max(ends)


def bayes_restricted(
    x1: Tensor, coefficients: tuple[float, float, float, float], cube: tuple[float, float]
) -> Tensor:
    """P(y = 1 | x1) for features uniform on cube^3; exact, vectorised over x1."""
    a, b, c, d = coefficients
    lo, hi = cube
    a1, a2 = _interval(b, lo, hi)
    b1, b2 = _interval(c, lo, hi)
    s = -(a * x1 + d)

    def g(z: Tensor) -> Tensor:
        return z.clamp_min(0.0).square() / 2.0

    below = g(s - a1 - b1) - g(s - a2 - b1) - g(s - a1 - b2) + g(s - a2 - b2)
    return (1.0 - below / ((a2 - a1) * (b2 - b1))).clamp(0.0, 1.0)
