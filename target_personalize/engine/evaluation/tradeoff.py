"""What a dial earns, before it is moved: a grid of objective settings replayed on held-out sessions.

The ranker is fitted once; every setting of the grid replays the same test predictions
(session-rec's protocol, :mod:`.replay`) and reports, each with a bootstrap interval over test
sessions (sessions resampled, so predictions of one session move together):

* HR@k: the next item is in the list;
* conversion hit@k: among predictions whose session later carts or converts, the list holds
  one of those items;
* realized value@k: the value (margin, else price) of those later-converted items that the
  list holds, over all of it;
* expected value per list: the sum over the list of P(conversion) x value, the ranker's own
  expectation.

A setting is on the frontier when no other setting is at least as good on conversion hit and
realized value and better on one of them.
"""

from __future__ import annotations

import itertools
import math
import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import stats

from target_personalize.engine.evaluation.replay import SESSION_COLUMNS, replay
from target_personalize.engine.exceptions import RankerError
from target_personalize.engine.ranking.event_weights import CART_TYPES
from target_personalize.engine.ranking.objectives import Objectives

if TYPE_CHECKING:
    from target_personalize.engine.arrays import FloatArray
    from target_personalize.engine.ranking.contract import RankerBase
    from target_personalize.engine.ranking.interactions import Interactions

__all__ = [
    "MIN_PREDICTIONS",
    "DialPoint",
    "Interval",
    "TradeoffReport",
    "objective_grid",
    "tradeoff",
]

#: Below this many predictions the intervals are too wide to tell settings apart.
MIN_PREDICTIONS = 200

_NUMBER = r"(\d+(?:\.\d*)?|\.\d+)"
_RANGE = re.compile(rf"^\s*([a-z_]+)\s*=\s*{_NUMBER}\s*(?:\.\.\s*{_NUMBER})?\s*$")


@dataclass(frozen=True)
class Interval:
    """A figure with its bootstrap interval (``low``/``high`` are NaN without data)."""

    value: float
    low: float
    high: float

    def as_dict(self) -> dict[str, float]:
        """A JSON-friendly form."""
        return {"value": self.value, "low": self.low, "high": self.high}


@dataclass(frozen=True)
class DialPoint:
    """One dial setting's figures.

    Attributes:
        objectives: the setting.
        hit_rate: HR@k.
        conversion_hit_rate: conversion hit@k.
        realized_value: share of the later-converted value the lists hold (realized value@k).
        expected_value: mean of sum(P x value) over each list.
        on_frontier: whether no other setting beats it on conversions and realized value.
    """

    objectives: Objectives
    hit_rate: Interval
    conversion_hit_rate: Interval
    realized_value: Interval
    expected_value: Interval
    on_frontier: bool = False

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly form."""
        return {
            "objectives": self.objectives.as_dict(),
            "label": self.objectives.label(),
            "hit_rate": self.hit_rate.as_dict(),
            "conversion_hit_rate": self.conversion_hit_rate.as_dict(),
            "realized_value": self.realized_value.as_dict(),
            "expected_value_per_list": self.expected_value.as_dict(),
            "on_frontier": self.on_frontier,
        }


@dataclass(frozen=True)
class TradeoffReport:
    """The grid's figures on one split.

    Attributes:
        k: list length.
        points: one per setting, in grid order.
        sessions: test sessions replayed.
        predictions: predictions per setting.
        conversion_predictions: predictions whose session later carts or converts.
        value_kind: what "value" is (``margin``, ``price`` ...).
        confidence: level of the intervals.
        current: the setting the saved model uses, if known.
    """

    k: int
    points: tuple[DialPoint, ...]
    sessions: int
    predictions: int
    conversion_predictions: int
    value_kind: str
    confidence: float
    current: Objectives | None = None

    @property
    def too_small(self) -> bool:
        """Whether there are fewer than :data:`MIN_PREDICTIONS` predictions."""
        return self.predictions < MIN_PREDICTIONS

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly form."""
        return {
            "k": self.k,
            "sessions": self.sessions,
            "predictions": self.predictions,
            "conversion_predictions": self.conversion_predictions,
            "value_kind": self.value_kind,
            "confidence": self.confidence,
            "too_small": self.too_small,
            "current": None if self.current is None else self.current.as_dict(),
            "points": [p.as_dict() for p in self.points],
        }


def objective_grid(ranges: Sequence[str], steps: int = 3) -> list[Objectives]:
    """The settings of ``NAME=LOW..HIGH`` (or ``NAME=W``) ranges, every combination.

    ``steps`` values per range, evenly spaced, ends included. No range gives
    ``conversion=0..1`` and ``margin=0..1``.

    Raises:
        RankerError: for a text that is not a range, an unknown objective or LOW > HIGH.
    """
    if steps < 2:
        raise RankerError(f"a grid needs at least 2 steps per range, got {steps}")
    axes: dict[str, list[float]] = {}
    for text in ranges or ("conversion=0..1", "margin=0..1"):
        match = _RANGE.match(text)
        if match is None:
            raise RankerError(f"objective range {text!r} must be NAME=LOW..HIGH, e.g. margin=0..2")
        name, low_text, high_text = match.groups()
        low, high = float(low_text), float(high_text or low_text)
        if low > high:
            raise RankerError(f"objective range {text!r} goes down: write LOW..HIGH")
        Objectives.parse({name: low})  # names the known objectives when unknown
        axes[name] = sorted({float(v) for v in np.linspace(low, high, steps if high > low else 1)})
    names = list(axes)
    return [
        Objectives.parse(dict(zip(names, combo, strict=True)))
        for combo in itertools.product(*(axes[n] for n in names))
    ]


def tradeoff(
    ranker: RankerBase,
    train: Interactions,
    test: Interactions,
    settings: Sequence[Objectives],
    *,
    k: int = 20,
    event_weights: Mapping[str, float] | None = None,
    key_conversion: str = "purchase",
    confidence: float = 0.9,
    resamples: int = 1000,
    random_state: int = 0,
    current: Objectives | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> TradeoffReport:
    """Fit ``ranker`` on ``train`` once and replay ``test`` under every setting.

    Args:
        ranker: the ranker (fitted here).
        train: training interactions.
        test: test interactions on the same item vocabulary.
        settings: the dial settings, e.g. from :func:`objective_grid`.
        k: list length.
        event_weights: funnel event weights for the fit.
        key_conversion: the conversion.
        confidence: level of the bootstrap intervals.
        resamples: bootstrap resamples.
        random_state: seed of the bootstrap.
        current: the setting in use, marked in the report.
        progress: called with (done, total) settings.

    Returns:
        The report.
    """
    ranker.fit(train, event_weights=event_weights, key_conversion=key_conversion)
    sessions, starts = test.session_bounds()
    chosen = np.arange(sessions.size)
    converting = {key_conversion, *CART_TYPES}
    rows: list[FloatArray] = []
    for number, objectives in enumerate(settings):
        tally = replay(
            ranker, objectives, test, starts=starts, chosen=chosen, k=k, converting_types=converting
        )
        rows.append(tally.sessions())
        if progress is not None:
            progress(number + 1, len(settings))
    rng = np.random.default_rng(random_state)
    column = {name: i for i, name in enumerate(SESSION_COLUMNS)}

    def ratio(table: FloatArray, top: str, bottom: str) -> Interval:
        return _ratio_interval(
            table[:, column[top]], table[:, column[bottom]], confidence, resamples, rng
        )

    points = [
        DialPoint(
            objectives=objectives,
            hit_rate=ratio(table, "hits", "predictions"),
            conversion_hit_rate=ratio(table, "conversion_hits", "conversion_predictions"),
            realized_value=ratio(table, "value_hit", "value_total"),
            expected_value=ratio(table, "expected_value", "predictions"),
        )
        for objectives, table in zip(settings, rows, strict=True)
    ]
    first = rows[0] if rows else np.zeros((0, len(SESSION_COLUMNS)))
    return TradeoffReport(
        k=k,
        points=tuple(_mark_frontier(points)),
        sessions=int(first.shape[0]),
        predictions=int(first[:, column["predictions"]].sum()),
        conversion_predictions=int(first[:, column["conversion_predictions"]].sum()),
        value_kind=train.items.value_kind(),
        confidence=confidence,
        current=current,
    )


def _ratio_interval(
    top: FloatArray,
    bottom: FloatArray,
    confidence: float,
    resamples: int,
    rng: np.random.Generator,
) -> Interval:
    """sum(top) / sum(bottom), with a percentile bootstrap over the sessions (rows)."""
    total = float(bottom.sum())
    if total <= 0:
        return Interval(float("nan"), float("nan"), float("nan"))
    value = float(top.sum()) / total
    if top.size < 2 or (np.all(top == top[0]) and np.all(bottom == bottom[0])):
        return Interval(value, value, value)

    def statistic(a: FloatArray, b: FloatArray, axis: int = -1) -> FloatArray:
        below = np.asarray(b.sum(axis=axis), dtype=np.float64)
        above = np.asarray(a.sum(axis=axis), dtype=np.float64)
        out = np.full(below.shape, np.nan)
        np.divide(above, below, out=out, where=below > 0)
        return out

    with warnings.catch_warnings():
        # A degenerate bootstrap distribution (every resample alike) is a zero-width interval.
        warnings.simplefilter("ignore", stats.DegenerateDataWarning)
        result = stats.bootstrap(
            (top, bottom),
            statistic,
            paired=True,
            vectorized=True,
            confidence_level=confidence,
            n_resamples=resamples,
            method="percentile",
            rng=rng,
        )
    low, high = float(result.confidence_interval.low), float(result.confidence_interval.high)
    if math.isnan(low) or math.isnan(high):
        return Interval(value, value, value)
    return Interval(value, min(low, value), max(high, value))


def _mark_frontier(points: list[DialPoint]) -> list[DialPoint]:
    """Points not dominated on (conversion hit, realized value); NaN counts as 0."""

    def key(point: DialPoint) -> tuple[float, float]:
        return (
            np.nan_to_num(point.conversion_hit_rate.value),
            np.nan_to_num(point.realized_value.value),
        )

    marked = []
    for point in points:
        mine = key(point)
        dominated = any(
            other[0] >= mine[0] and other[1] >= mine[1] and other != mine
            for other in (key(p) for p in points)
        )
        marked.append(
            DialPoint(
                objectives=point.objectives,
                hit_rate=point.hit_rate,
                conversion_hit_rate=point.conversion_hit_rate,
                realized_value=point.realized_value,
                expected_value=point.expected_value,
                on_frontier=not dominated,
            )
        )
    return marked
