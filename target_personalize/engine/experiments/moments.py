"""Sufficient statistics of per-visitor columns, one set per arm, in one vectorised pass.

Everything the readout infers comes from these sums (count, sums, sums of squares and of
products), as in GrowthBook's stats engine, so SQL could hand over the sums instead of rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["FloatArray", "IntArray", "Moments", "arm_moments"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]


@dataclass(frozen=True)
class Moments:
    """Sums of a column ``y`` and, optionally, a second column ``x`` over ``n`` visitors.

    ``x`` is the pre-exposure covariate (CUPED) or the denominator of a ratio metric.
    Variances and the covariance use ``n - 1`` (the sample variance, as Welch's test).
    """

    n: int
    sum_y: float
    sum_yy: float
    sum_x: float = 0.0
    sum_xx: float = 0.0
    sum_xy: float = 0.0

    def __add__(self, other: Moments) -> Moments:
        return Moments(
            self.n + other.n,
            self.sum_y + other.sum_y,
            self.sum_yy + other.sum_yy,
            self.sum_x + other.sum_x,
            self.sum_xx + other.sum_xx,
            self.sum_xy + other.sum_xy,
        )

    @property
    def mean_y(self) -> float:
        """The mean of ``y`` (0 without visitors)."""
        return self.sum_y / self.n if self.n else 0.0

    @property
    def mean_x(self) -> float:
        """The mean of ``x`` (0 without visitors)."""
        return self.sum_x / self.n if self.n else 0.0

    def _centered(self, sum_a: float, sum_b: float, sum_ab: float) -> float:
        if self.n <= 1:
            return 0.0
        return (sum_ab - sum_a * sum_b / self.n) / (self.n - 1)

    @property
    def var_y(self) -> float:
        """The sample variance of ``y``."""
        return max(self._centered(self.sum_y, self.sum_y, self.sum_yy), 0.0)

    @property
    def var_x(self) -> float:
        """The sample variance of ``x``."""
        return max(self._centered(self.sum_x, self.sum_x, self.sum_xx), 0.0)

    @property
    def cov_xy(self) -> float:
        """The sample covariance of ``x`` and ``y``."""
        return self._centered(self.sum_x, self.sum_y, self.sum_xy)


def arm_moments(
    arm: IntArray, n_arms: int, y: FloatArray, x: FloatArray | None = None
) -> list[Moments]:
    """The :class:`Moments` of ``y`` (and ``x``) in each arm; ``arm`` holds each visitor's arm."""

    def sums(values: FloatArray) -> list[float]:
        return [float(v) for v in np.bincount(arm, weights=values, minlength=n_arms)]

    counts = np.bincount(arm, minlength=n_arms)
    sum_y, sum_yy = sums(y), sums(y * y)
    if x is None:
        return [Moments(int(counts[i]), sum_y[i], sum_yy[i]) for i in range(n_arms)]
    sum_x, sum_xx, sum_xy = sums(x), sums(x * x), sums(x * y)
    return [
        Moments(int(counts[i]), sum_y[i], sum_yy[i], sum_x[i], sum_xx[i], sum_xy[i])
        for i in range(n_arms)
    ]
