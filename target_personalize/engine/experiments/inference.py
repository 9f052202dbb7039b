"""Relative lift with intervals and p-values, CUPED, ratio metrics and the sample-ratio check.

The formulas are those of GrowthBook's open stats engine (``gbstats``), so numbers can be
compared with it:

* relative lift ``(m_b - m_a) / |m_a|``; its variance by the delta method,
  ``v_b / (n_b m_a^2) + v_a m_b^2 / (n_a m_a^4)``; Welch-Satterthwaite degrees of freedom; a
  two-sided Student-t interval and p-value on that estimate (so the interval excludes 0 exactly
  when p < alpha);
* ratio metrics ``sum(M) / sum(D)`` per arm (visitors are the units) with the delta-method
  variance ``v_M/mu_D^2 + v_D mu_M^2/mu_D^4 - 2 c mu_M/mu_D^3`` per visitor;
* CUPED: ``theta = cov(post, pre) / var(pre)`` over both arms pooled, adjusted means
  ``m - theta * pre_mean``, the relative lift over the *unadjusted* control mean, and
  GrowthBook's delta-method variance for it;
* sequential testing: Waudby-Smith et al.'s asymptotic confidence sequence (arXiv 2103.06476,
  eq. 9, with rho tuned to ``n_tune`` visitors by eq. 161) and its always-valid p-value (eq. 155);
* sample-ratio mismatch: Pearson's chi-square of the arms' visitor counts against the
  configured weights (``scipy.stats.chisquare``).

Distributions and tests come from scipy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from scipy import stats

from target_personalize.engine.experiments.moments import Moments

__all__ = [
    "DEFAULT_N_TUNE",
    "SRM_THRESHOLD",
    "ArmStatistic",
    "Estimate",
    "SampleRatio",
    "cuped_lift",
    "mean_statistic",
    "ratio_statistic",
    "relative_lift",
    "sample_ratio_mismatch",
    "sequential_halfwidth",
    "welch_dof",
]

#: GrowthBook's default tuning of the confidence sequence: narrowest near this many visitors.
DEFAULT_N_TUNE = 5000.0
#: The sample-ratio check flags p-values below this (GrowthBook, Eppo).
SRM_THRESHOLD = 0.001


@dataclass(frozen=True)
class ArmStatistic:
    """One arm's estimate of a metric: the visitors, the metric's value and its unit variance.

    The variance is per visitor (the variance of the mean times ``n``).
    """

    n: int
    mean: float
    variance: float


def mean_statistic(moments: Moments) -> ArmStatistic:
    """A per-visitor mean (conversion rate, revenue per visitor) from its moments."""
    return ArmStatistic(moments.n, moments.mean_y, moments.var_y)


def ratio_statistic(moments: Moments) -> ArmStatistic:
    """A ratio metric ``sum(y) / sum(x)`` (AOV, CTR) with its delta-method unit variance."""
    mean_m, mean_d = moments.mean_y, moments.mean_x
    if moments.n <= 1 or mean_d == 0:
        return ArmStatistic(moments.n, 0.0, 0.0)
    variance = (
        moments.var_y / mean_d**2
        + moments.var_x * mean_m**2 / mean_d**4
        - 2 * moments.cov_xy * mean_m / mean_d**3
    )
    return ArmStatistic(moments.n, mean_m / mean_d, max(variance, 0.0))


@dataclass(frozen=True)
class Estimate:
    """A relative lift with its interval and p-value; all ``None`` when it cannot be computed.

    Attributes:
        estimate: the relative lift (0.05 = +5%).
        ci_low, ci_high: the interval's bounds (always-valid when sequential).
        p_value: two-sided, against no lift.
        standard_error: of ``estimate``.
        difference: the absolute difference (variant minus control, adjusted under CUPED).
        reason: why there is no estimate, else ``None``.
    """

    estimate: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    standard_error: float | None
    difference: float | None
    reason: str | None = None

    @classmethod
    def missing(cls, reason: str) -> Estimate:
        """No estimate, for ``reason``."""
        return cls(None, None, None, None, None, None, reason)


def welch_dof(control: ArmStatistic, variant: ArmStatistic) -> float:
    """Welch-Satterthwaite degrees of freedom of the two arms' means."""
    a = control.variance / control.n
    b = variant.variance / variant.n
    denominator = a**2 / (control.n - 1) + b**2 / (variant.n - 1)
    return (a + b) ** 2 / denominator if denominator > 0 else math.inf


def _rho(alpha: float, n_tune: float) -> float:
    log_alpha = -2 * math.log(alpha)
    return math.sqrt((log_alpha + math.log(log_alpha + 1)) / n_tune)


def sequential_halfwidth(
    standard_error: float, n: int, alpha: float, n_tune: float = DEFAULT_N_TUNE
) -> float:
    """Half-width of the two-sided asymptotic confidence sequence after ``n`` visitors."""
    rho2 = _rho(alpha, n_tune) ** 2
    s2 = standard_error**2 * n
    return math.sqrt(
        s2 * 2 * (n * rho2 + 1) / (n**2 * rho2) * math.log(math.sqrt(n * rho2 + 1) / alpha)
    )


def _sequential_p_value(
    estimate: float, standard_error: float, n: int, alpha: float, n_tune: float
) -> float:
    rho2 = _rho(alpha, n_tune) ** 2
    st2 = estimate**2 * n / standard_error**2
    scale = n * rho2 + 1
    log_e = rho2 * st2 / (2 * scale) - 0.5 * math.log(scale)
    return 1.0 if log_e <= 0 else math.exp(-log_e)


def _infer(
    difference: float,
    estimate: float,
    variance: float,
    control: ArmStatistic,
    variant: ArmStatistic,
    *,
    alpha: float,
    n_tune: float | None,
) -> Estimate:
    if not variance > 0:
        return Estimate.missing("no variation within the arms")
    se = math.sqrt(variance)
    if n_tune is None:
        dof = welch_dof(control, variant)
        halfwidth = float(stats.t.ppf(1 - alpha / 2, dof)) * se
        p_value = float(2 * stats.t.sf(abs(estimate) / se, dof))
    else:
        n = control.n + variant.n
        halfwidth = sequential_halfwidth(se, n, alpha, n_tune)
        p_value = _sequential_p_value(estimate, se, n, alpha, n_tune)
    return Estimate(estimate, estimate - halfwidth, estimate + halfwidth, p_value, se, difference)


def _problem(control: ArmStatistic, variant: ArmStatistic) -> str | None:
    if control.n < 2 or variant.n < 2:
        return "fewer than 2 visitors in an arm"
    if control.mean == 0:
        return "the control's value is 0, so a relative lift is undefined"
    if control.variance <= 0 and variant.variance <= 0:
        return "no variation within the arms"
    return None


def relative_lift(
    control: ArmStatistic,
    variant: ArmStatistic,
    *,
    alpha: float = 0.05,
    n_tune: float | None = None,
) -> Estimate:
    """The variant's relative lift over the control, by the delta method.

    Args:
        control: the control arm.
        variant: the compared arm.
        alpha: 1 - the interval's confidence.
        n_tune: ``None`` for a fixed-horizon t interval; else the confidence sequence's tuning
            (:data:`DEFAULT_N_TUNE`) for an always-valid interval and p-value.
    """
    problem = _problem(control, variant)
    if problem:
        return Estimate.missing(problem)
    m_a, m_b = control.mean, variant.mean
    variance = variant.variance / (variant.n * m_a**2) + control.variance * m_b**2 / (
        control.n * m_a**4
    )
    return _infer(
        m_b - m_a, (m_b - m_a) / abs(m_a), variance, control, variant, alpha=alpha, n_tune=n_tune
    )


def cuped_lift(
    control: Moments,
    variant: Moments,
    *,
    alpha: float = 0.05,
    n_tune: float | None = None,
) -> tuple[Estimate, float]:
    """The relative lift adjusted by the pre-exposure covariate ``x`` (CUPED), and theta.

    ``theta = cov(y, x) / var(x)`` over both arms pooled; 0 (no adjustment) when either column
    is constant.
    """
    pooled = control + variant
    theta = pooled.cov_xy / pooled.var_x if pooled.var_x > 0 and pooled.var_y > 0 else 0.0

    def adjusted(m: Moments) -> ArmStatistic:
        variance = m.var_y + theta**2 * m.var_x - 2 * theta * m.cov_xy
        return ArmStatistic(m.n, m.mean_y - theta * m.mean_x, max(variance, 0.0))

    arm_a, arm_b = adjusted(control), adjusted(variant)
    problem = _problem(mean_statistic(control), mean_statistic(variant))
    if problem:
        return Estimate.missing(problem), theta
    y_a, y_b = control.mean_y, variant.mean_y
    v_b = arm_b.variance / (variant.n * y_a**2)
    v_a = (
        control.var_y * y_b**2 / y_a**2
        - 2 * theta * control.cov_xy * y_b / y_a
        + theta**2 * control.var_x
    ) / (control.n * y_a**2)
    difference = arm_b.mean - arm_a.mean
    estimate = difference / abs(y_a)
    return _infer(difference, estimate, v_a + v_b, arm_a, arm_b, alpha=alpha, n_tune=n_tune), theta


@dataclass(frozen=True)
class SampleRatio:
    """The sample-ratio check.

    Attributes:
        p_value: of Pearson's chi-square test; ``None`` without visitors.
        flagged: ``p_value`` below the threshold (default :data:`SRM_THRESHOLD`).
        observed: visitors per arm.
        expected: visitors per arm the weights lead one to expect.
    """

    p_value: float | None
    flagged: bool
    observed: tuple[int, ...]
    expected: tuple[float, ...]


def sample_ratio_mismatch(
    observed: Sequence[int], weights: Sequence[float], threshold: float = SRM_THRESHOLD
) -> SampleRatio:
    """Check the arms' visitor counts against the configured split (chi-square, scipy)."""
    total = sum(observed)
    weight_sum = math.fsum(weights)
    expected = tuple(w / weight_sum * total for w in weights)
    if total == 0:
        return SampleRatio(None, False, tuple(observed), expected)
    p_value = float(stats.chisquare(observed, expected).pvalue)
    return SampleRatio(p_value, p_value < threshold, tuple(observed), expected)
