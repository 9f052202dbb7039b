"""The experiment readout: per-variant metrics, lift against the control, SRM, exclusions.

:func:`build_readout` turns :class:`~.visitors.VisitorData` into a :class:`Readout`, whose
:meth:`Readout.as_dict` is the JSON shape of ``personalize experiment report --format json``::

    {"experiment_id", "conversion", "control", "alpha", "sequential",
     "variants": [{"variant_id", "visitors", "conversions", "conversion_rate", ...}],
     "lift": [{"variant_id", "metric", "estimate", "ci_low", "ci_high", "p_value", ...,
               "cuped": {...} | null}],
     "srm": {"p_value", "flagged", "observed", "expected"},
     "excluded": {"multiple_variants"}}

Metrics: ``conversion_rate`` (converted visitors / visitors), ``revenue_per_visitor`` and
``margin_per_visitor`` are per-visitor means; ``aov`` (revenue / conversion events) and ``ctr``
(clicks / impressions) are ratio metrics over visitors. CUPED is reported beside the plain
estimate of the per-visitor means whose pre-exposure column is given.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from target_personalize.engine.experiments.errors import ExperimentError
from target_personalize.engine.experiments.inference import (
    DEFAULT_N_TUNE,
    ArmStatistic,
    Estimate,
    SampleRatio,
    cuped_lift,
    mean_statistic,
    ratio_statistic,
    relative_lift,
    sample_ratio_mismatch,
)
from target_personalize.engine.experiments.moments import Moments, arm_moments
from target_personalize.engine.experiments.visitors import VisitorData

__all__ = [
    "DEFAULT_MIN_SAMPLE",
    "METRICS",
    "Lift",
    "Metric",
    "Readout",
    "VariantSummary",
    "build_readout",
]


#: GrowthBook's default minimum sample size: visitors with a value of the metric in the control
#: or the variant before a lift gets an interval and a p-value.
DEFAULT_MIN_SAMPLE = 150


@dataclass(frozen=True)
class Metric:
    """A metric of the readout.

    Attributes:
        name: as reported (``conversion_rate``...).
        numerator: the per-visitor column summed (``converted`` is ``conversion_events > 0``).
        denominator: the per-visitor column it is divided by; ``None`` for visitors (a mean).
        covariate: the pre-exposure column CUPED adjusts by, for a mean.
        sample: what the minimum sample counts: visitors with a non-zero numerator.
    """

    name: str
    numerator: str
    denominator: str | None = None
    covariate: str | None = None
    sample: str = ""


#: Every metric, in report order.
METRICS: tuple[Metric, ...] = (
    Metric("conversion_rate", "converted", None, "pre_converted", "converting visitors"),
    Metric("revenue_per_visitor", "revenue", None, "pre_revenue", "visitors with revenue"),
    Metric("margin_per_visitor", "margin", None, "pre_margin", "visitors with margin"),
    Metric("aov", "revenue", "conversion_events", None, "visitors with revenue"),
    Metric("ctr", "clicks", "impressions", None, "visitors with clicks"),
)


@dataclass(frozen=True)
class VariantSummary:
    """One variant's figures; ``None`` where the input lacks the column."""

    variant_id: str
    visitors: int
    conversions: int
    conversion_rate: float | None
    conversion_events: float
    revenue: float
    revenue_per_visitor: float | None
    aov: float | None
    margin: float | None
    margin_per_visitor: float | None
    clicks: float | None
    impressions: float | None
    ctr: float | None


@dataclass(frozen=True)
class Lift:
    """A variant's relative lift over the control on one metric.

    Attributes:
        variant_id: the compared variant.
        metric: one of :data:`METRICS`' names.
        plain: the unadjusted estimate.
        cuped: the CUPED-adjusted estimate, when a pre-exposure column is given.
        theta: CUPED's theta, when ``cuped`` is given.
    """

    variant_id: str
    metric: str
    plain: Estimate
    cuped: Estimate | None = None
    theta: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """The JSON shape: the plain estimate's fields, then ``cuped`` and ``theta``."""
        return {
            "variant_id": self.variant_id,
            "metric": self.metric,
            **asdict(self.plain),
            "cuped": None if self.cuped is None else asdict(self.cuped),
            "theta": self.theta,
        }


@dataclass(frozen=True)
class Readout:
    """The whole readout of one experiment."""

    experiment_id: str
    conversion: str
    control: str
    alpha: float
    sequential: bool
    min_sample: int
    variants: tuple[VariantSummary, ...]
    lift: tuple[Lift, ...]
    srm: SampleRatio
    multiple_variants: int

    def as_dict(self) -> dict[str, Any]:
        """The JSON shape (no NaN or infinity: missing values are ``None``)."""
        return {
            "experiment_id": self.experiment_id,
            "conversion": self.conversion,
            "control": self.control,
            "alpha": self.alpha,
            "sequential": self.sequential,
            "min_sample": self.min_sample,
            "variants": [asdict(v) for v in self.variants],
            "lift": [lift.as_dict() for lift in self.lift],
            "srm": {
                "p_value": self.srm.p_value,
                "flagged": self.srm.flagged,
                "observed": list(self.srm.observed),
                "expected": list(self.srm.expected),
            },
            "excluded": {"multiple_variants": self.multiple_variants},
        }


def build_readout(
    visitors: VisitorData,
    *,
    experiment_id: str,
    conversion: str = "purchase",
    control: str | None = None,
    weights: Mapping[str, float] | None = None,
    alpha: float = 0.05,
    sequential: bool = False,
    n_tune: float = DEFAULT_N_TUNE,
    min_sample: int = DEFAULT_MIN_SAMPLE,
) -> Readout:
    """Summarise every variant and compare each with the control.

    Args:
        visitors: the per-visitor columns.
        experiment_id: reported as is.
        conversion: the key conversion's event type, reported as is.
        control: the control variant (default: the first of ``visitors.variant_ids``).
        weights: the configured split by variant id (default: even), for the SRM check.
        alpha: 1 - the intervals' confidence.
        sequential: always-valid intervals and p-values (confidence sequences), so the
            readout may be looked at any number of times.
        n_tune: the confidence sequence's tuning, in visitors.
        min_sample: a lift gets an interval and a p-value once the control or the variant has
            this many visitors with a non-zero value of the metric (GrowthBook's minimum
            sample size); before, only its estimate, as the normal approximation behind both
            does not hold yet.

    Raises:
        ExperimentError: for an unknown control or weights that do not match the variants.
    """
    ids = visitors.variant_ids
    control = control or ids[0]
    if control not in ids:
        raise ExperimentError(f"control {control!r} is not one of the variants ({', '.join(ids)})")
    if not 0 < alpha < 1:
        raise ExperimentError(f"alpha must be in (0, 1), got {alpha}")
    if weights is not None and set(weights) != set(ids):
        raise ExperimentError(
            f"weights are given for {sorted(weights)} but the variants are {list(ids)}"
        )
    split = [weights[i] for i in ids] if weights is not None else [1.0] * len(ids)

    columns = dict(visitors.columns())
    columns["converted"] = (visitors.conversion_events > 0).astype(np.float64)
    if visitors.pre_conversion_events is not None:
        columns["pre_converted"] = (visitors.pre_conversion_events > 0).astype(np.float64)

    k = len(ids)
    counts = np.bincount(visitors.variant, minlength=k)
    totals = {n: np.bincount(visitors.variant, weights=v, minlength=k) for n, v in columns.items()}
    summaries = [
        _summary(vid, int(counts[i]), {n: float(t[i]) for n, t in totals.items()})
        for i, vid in enumerate(ids)
    ]

    c = ids.index(control)
    n_tune_or_none = n_tune if sequential else None
    lifts: list[Lift] = []
    for metric in METRICS:
        if metric.numerator not in columns or (
            metric.denominator and metric.denominator not in columns
        ):
            continue
        covariate = metric.covariate if metric.covariate in columns else None
        second = metric.denominator or covariate
        numerator = columns[metric.numerator]
        arms = arm_moments(visitors.variant, k, numerator, columns[second] if second else None)
        support = np.bincount(visitors.variant, weights=numerator != 0, minlength=k)
        statistic: Callable[[Moments], ArmStatistic] = (
            ratio_statistic if metric.denominator else mean_statistic
        )
        for i, vid in enumerate(ids):
            if i == c:
                continue
            plain = relative_lift(
                statistic(arms[c]), statistic(arms[i]), alpha=alpha, n_tune=n_tune_or_none
            )
            adjusted, theta = (
                cuped_lift(arms[c], arms[i], alpha=alpha, n_tune=n_tune_or_none)
                if covariate
                else (None, None)
            )
            most = int(max(support[c], support[i]))
            if most < min_sample:
                reason = f"waiting for {min_sample} {metric.sample} in an arm (most so far: {most})"
                plain = _withheld(plain, reason)
                adjusted = None if adjusted is None else _withheld(adjusted, reason)
            lifts.append(Lift(vid, metric.name, plain, adjusted, theta))

    srm = sample_ratio_mismatch([s.visitors for s in summaries], split)
    return Readout(
        experiment_id,
        conversion,
        control,
        alpha,
        sequential,
        min_sample,
        tuple(summaries),
        tuple(lifts),
        srm,
        visitors.multiple_variants,
    )


def _withheld(estimate: Estimate, reason: str) -> Estimate:
    if estimate.estimate is None:
        return estimate
    return Estimate(estimate.estimate, None, None, None, None, estimate.difference, reason)


def _summary(variant_id: str, n: int, sums: Mapping[str, float]) -> VariantSummary:
    def per(name: str, by: str | None = None) -> float | None:
        value, divisor = sums.get(name), n if by is None else sums.get(by)
        return None if value is None or not divisor else value / divisor

    return VariantSummary(
        variant_id=variant_id,
        visitors=n,
        conversions=round(sums["converted"]),
        conversion_rate=per("converted"),
        conversion_events=sums["conversion_events"],
        revenue=sums["revenue"],
        revenue_per_visitor=per("revenue"),
        aov=per("revenue", "conversion_events"),
        margin=sums.get("margin"),
        margin_per_visitor=per("margin"),
        clicks=sums.get("clicks"),
        impressions=sums.get("impressions"),
        ctr=per("clicks", "impressions"),
    )
