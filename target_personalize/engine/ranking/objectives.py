"""Business objectives next to relevance, as expected values per shown item.

A ranker's final score is::

    relevance * P(conversion) ** (w_conversion + w_margin + w_revenue)
              * margin ** w_margin * price ** w_revenue * engagement ** w_engagement

so each dial weighs an expected quantity: ``conversion=1`` ranks by relevance times the
probability of the key conversion, ``margin=1, conversion=0`` by relevance times the expected
margin ``P * margin``, ``revenue=1`` by relevance times the expected revenue ``P * price``,
``engagement=1`` by relevance times the item's mean engagement (``engagement_ms``, else
``media_progress_pct``, per item event carrying it): the expected watch or read time of
showing it, relevance standing for the chance it is opened (no P: media and content are
engaged with, not bought). Without either signal in the store engagement is ``none`` and the
dial changes nothing; the commands say so. All-zero weights give relevance alone. ``margin`` is the catalog's margin (else price minus
cost); where a shop has only prices the margin dial weighs the price ("value = price") and
says so. ``P`` is the item's smoothed conversion rate, or, for the items the query reaches,
what a :class:`ConversionModel` set on the ranker says.

Factors are divided by the base rate and the median value, which leaves every ordering as
it is and keeps scores near relevance's scale.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Protocol

import numpy as np

from target_personalize.engine.arrays import FloatArray, IntArray
from target_personalize.engine.exceptions import RankerError

if TYPE_CHECKING:
    from target_personalize.engine.ranking.interactions import Interactions
    from target_personalize.engine.ranking.query import Query

__all__ = ["ConversionModel", "ItemFactors", "Objectives"]


#: Pseudo-sessions that pull an item's conversion rate towards its category's.
_ITEM_PRIOR = 10.0
#: Pseudo-sessions that pull a category's conversion rate towards the base rate.
_CATEGORY_PRIOR = 50.0
#: Share of the median value an item without value keeps, so relevance still orders them.
_VALUE_FLOOR = 0.01
#: Names accepted for each objective.
_ALIASES = {
    "conversion": "conversion",
    "margin": "margin",
    "value": "margin",
    "revenue": "revenue",
    "engagement": "engagement",
}


class ConversionModel(Protocol):
    """What supplies P(key conversion | session) for the items a query reaches.

    Set one on a ranker (``ranker.conversion_model = model``) to replace the items' smoothed
    conversion rates in the objectives; items the query does not reach keep their rates.
    """

    def probability(self, items: IntArray, query: Query) -> FloatArray:
        """P(the session converts on each of ``items``), in [0, 1], in the items' order."""
        ...


@dataclass(frozen=True)
class Objectives:
    """How much each business objective counts next to relevance (0 = not at all).

    Attributes:
        conversion: weight of P(key conversion).
        margin: weight of the expected margin ``P * margin`` (``P * price`` where the
            catalog has only prices).
        revenue: weight of the expected revenue ``P * price`` (order value without prices).
        engagement: weight of the expected engagement ``relevance * mean engagement``.
    """

    #: The largest weight taken: factors are raised to the weights, so a larger one only
    #: overflows every score to infinity (and NaN or infinity would make every score null).
    MAX_WEIGHT: ClassVar[float] = 1e6

    conversion: float = 0.0
    margin: float = 0.0
    revenue: float = 0.0
    engagement: float = 0.0

    @classmethod
    def parse(cls, value: Objectives | Mapping[str, float] | None) -> Objectives:
        """Objectives from a mapping such as ``{"conversion": 1.0, "margin": 0.5}``.

        ``value`` is accepted as a name of the margin objective.

        Raises:
            RankerError: for an unknown objective, or a weight that is negative, not finite or
                above :attr:`MAX_WEIGHT`.
        """
        if value is None:
            return cls()
        if isinstance(value, Objectives):
            return value
        weights = {"conversion": 0.0, "margin": 0.0, "revenue": 0.0, "engagement": 0.0}
        for name, weight in value.items():
            key = _ALIASES.get(name)
            if key is None:
                raise RankerError(
                    f"unknown objective {name!r}: use conversion, margin (or value), revenue "
                    "and engagement"
                )
            # The comparison is False for NaN too.
            if not isinstance(weight, int | float) or not 0 <= weight <= cls.MAX_WEIGHT:
                raise RankerError(
                    f"objective {name!r} needs a weight from 0 to {cls.MAX_WEIGHT:g}, "
                    f"got {weight!r}"
                )
            weights[key] = float(weight)
        return cls(**weights)

    @classmethod
    def from_pairs(cls, pairs: Iterable[str]) -> Objectives:
        """Objectives from ``NAME=WEIGHT`` texts, as the CLI, the HTTP API and experiments take them.

        ``NAME:WEIGHT`` works too, e.g. ``["conversion=1", "margin:0.5"]``.

        Raises:
            RankerError: for a text that is not ``NAME=WEIGHT``, a weight that is not a number,
                an objective given twice, an unknown objective or a weight out of range.
        """
        parsed: dict[str, float] = {}
        for pair in pairs:
            name, sep, raw = (s.strip() for s in pair.replace(":", "=", 1).partition("="))
            if not sep or not name or not raw:
                raise RankerError(
                    f"objective {pair.strip()!r} must be NAME=WEIGHT, e.g. conversion=1"
                )
            try:
                weight = float(raw)
            except ValueError:
                raise RankerError(f"weight {raw!r} of objective {name!r} is not a number") from None
            if name in parsed:
                raise RankerError(f"objective {name!r} is given twice")
            parsed[name] = weight
        return cls.parse(parsed)

    @property
    def relevance_only(self) -> bool:
        """Whether every weight is zero."""
        return not (self.conversion or self.margin or self.revenue or self.engagement)

    @property
    def probability_power(self) -> float:
        """The exponent of P(conversion): each objective but engagement is P times a value."""
        return self.conversion + self.margin + self.revenue

    def as_dict(self) -> dict[str, float]:
        """A JSON-friendly form."""
        return {
            "conversion": self.conversion,
            "margin": self.margin,
            "revenue": self.revenue,
            "engagement": self.engagement,
        }

    def label(self) -> str:
        """A short name such as ``conversion 1, margin 0.5`` (``relevance`` without weights)."""
        parts = [f"{name} {weight:g}" for name, weight in self.as_dict().items() if weight]
        return ", ".join(parts) or "relevance"

    def score(
        self,
        relevance: FloatArray,
        factors: ItemFactors,
        conversion_factor: FloatArray | None = None,
    ) -> FloatArray:
        """The final score of every item (``relevance`` itself when every weight is zero).

        Args:
            relevance: relevance of every item.
            factors: the items' factors.
            conversion_factor: P(conversion) over the base rate per item, when a conversion
                model gives it (default: ``factors.conversion_factor``).
        """
        if self.relevance_only:
            return relevance
        score = relevance.copy()
        power = self.probability_power
        if power:
            ratio = factors.conversion_factor if conversion_factor is None else conversion_factor
            score *= ratio**power
        if self.margin:
            score *= factors.value_factor**self.margin
        if self.revenue:
            score *= factors.revenue_factor**self.revenue
        if self.engagement:
            score *= factors.engagement_factor**self.engagement
        return score


def _relative(value: FloatArray) -> tuple[FloatArray, float]:
    """``value`` over its median positive value (unknown: 1, at least a small floor)."""
    positive = value[np.isfinite(value) & (value > 0)]
    if not positive.size:
        return np.ones(value.size), 1.0
    middle = float(np.median(positive))
    known = np.where(np.isfinite(value), np.maximum(value, 0.0), middle)
    return np.maximum(known, _VALUE_FLOOR * middle) / middle, middle


@dataclass
class ItemFactors:
    """Per item: what the objectives weigh (grown by one item for each item seen live).

    Attributes:
        conversion: the item's smoothed probability of leading to the key conversion.
        conversion_factor: ``conversion`` / the base rate (1 without conversions).
        value: the item's margin (else price, else order value; NaN when unknown).
        value_factor: the value relative to the median item's (1 when unknown).
        revenue: the item's price (else order value; NaN when unknown).
        revenue_factor: the revenue relative to the median item's (1 when unknown).
        base_rate: conversions per item exposure (session holding the item).
        category_rate: the smoothed rate of each category, then the base rate (no category).
        value_middle: the median positive value (1 without values).
        revenue_middle: the median positive revenue (1 without prices).
        engagement: the item's mean engagement (NaN when unknown).
        engagement_factor: the engagement relative to the median item's (1 when unknown,
            and for every item when the store has no engagement signal).
        engagement_middle: the median positive engagement (1 without any).
    """

    conversion: FloatArray
    conversion_factor: FloatArray
    value: FloatArray
    value_factor: FloatArray
    revenue: FloatArray
    revenue_factor: FloatArray
    base_rate: float
    category_rate: FloatArray
    value_middle: float
    revenue_middle: float
    engagement: FloatArray
    engagement_factor: FloatArray
    engagement_middle: float

    @classmethod
    def build(cls, data: Interactions, key_conversion: str) -> ItemFactors:
        """The factors of every item of ``data``'s vocabulary."""
        n = len(data.items)
        key = data.kind_of(key_conversion)
        # Sessions per item (exposure) and sessions converting on the item.
        pair = (
            np.unique(data.session.astype(np.int64) * n + data.item) if n else np.zeros(0, np.int64)
        )
        exposure = np.bincount(pair % n if n else pair, minlength=n).astype(np.float64)
        if key >= 0 and n:
            conv_rows = data.kind == key
            conv_pair = np.unique(
                data.session[conv_rows].astype(np.int64) * n + data.item[conv_rows]
            )
            conversions = np.bincount(conv_pair % n, minlength=n).astype(np.float64)
        else:
            conversions = np.zeros(n)
        total_exposure = exposure.sum()
        base_rate = conversions.sum() / total_exposure if total_exposure else 0.0
        # Smoothed twice: the category's rate shrinks to the base rate, the item's to its
        # category's, so rare items get their category's rate rather than a noisy one.
        codes = np.where(data.items.category >= 0, data.items.category, len(data.items.categories))
        slots = len(data.items.categories) + 1
        category_exposure = np.bincount(codes, weights=exposure, minlength=slots)
        category_conversions = np.bincount(codes, weights=conversions, minlength=slots)
        category_rate = (category_conversions + _CATEGORY_PRIOR * base_rate) / (
            category_exposure + _CATEGORY_PRIOR
        )
        category_rate[-1] = base_rate
        conversion = (conversions + _ITEM_PRIOR * category_rate[codes]) / (exposure + _ITEM_PRIOR)
        value = data.items.value()
        value_factor, middle = _relative(value)
        revenue = np.where(np.isnan(data.items.price), data.items.order_value, data.items.price)
        revenue_factor, revenue_middle = _relative(revenue)
        engagement = data.items.engagement
        engagement_factor, engagement_middle = _relative(engagement)
        return cls(
            conversion=conversion,
            conversion_factor=conversion / base_rate if base_rate > 0 else np.ones(n),
            value=value,
            value_factor=value_factor,
            revenue=revenue,
            revenue_factor=revenue_factor,
            base_rate=base_rate,
            category_rate=category_rate,
            value_middle=middle,
            revenue_middle=revenue_middle,
            engagement=engagement,
            engagement_factor=engagement_factor,
            engagement_middle=engagement_middle,
        )

    def conversion_ratio(self, probability: FloatArray) -> FloatArray:
        """Probabilities over the base rate (1 without conversions)."""
        if self.base_rate > 0:
            return probability / self.base_rate
        return np.ones(probability.size)

    def add_item(self, category: int, price: float) -> None:
        """Append an item without interactions: its category's rate, its price as value."""
        known = 0 <= category < self.category_rate.size - 1
        rate = float(self.category_rate[category] if known else self.base_rate)
        self.conversion = np.append(self.conversion, rate)
        self.conversion_factor = np.append(
            self.conversion_factor, rate / self.base_rate if self.base_rate > 0 else 1.0
        )
        self.value = np.append(self.value, price)
        self.value_factor = np.append(self.value_factor, self._factor(price, self.value_middle))
        self.revenue = np.append(self.revenue, price)
        self.revenue_factor = np.append(
            self.revenue_factor, self._factor(price, self.revenue_middle)
        )
        self.engagement = np.append(self.engagement, np.nan)
        self.engagement_factor = np.append(self.engagement_factor, 1.0)

    @staticmethod
    def _factor(value: float, middle: float) -> float:
        if not math.isfinite(value):
            return 1.0
        return max(value, _VALUE_FLOOR * middle) / middle
