"""Business objectives next to relevance: their weights, and the per-item factors they weigh.

A ranker's final score is ``relevance * conversion**w_c * value**w_v``: ``conversion`` is the
item's smoothed probability of leading to the key conversion relative to the base rate,
``value`` its business value relative to the median item's. All-zero weights give relevance
alone; ``{conversion: 1, margin: 1}`` ranks by expected value.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from target_personalize.engine.arrays import FloatArray
from target_personalize.engine.exceptions import RankerError

if TYPE_CHECKING:
    from target_personalize.engine.ranking.interactions import Interactions

__all__ = ["ItemFactors", "Objectives"]


#: Pseudo-sessions that pull an item's conversion rate towards its category's.
_ITEM_PRIOR = 10.0
#: Pseudo-sessions that pull a category's conversion rate towards the base rate.
_CATEGORY_PRIOR = 50.0


@dataclass(frozen=True)
class Objectives:
    """How much each business objective counts next to relevance (0 = not at all).

    Attributes:
        conversion: weight of the item's probability of leading to the key conversion.
        margin: weight of the item's value (catalog margin, else price, else order value).
    """

    conversion: float = 0.0
    margin: float = 0.0

    @classmethod
    def parse(cls, value: Objectives | Mapping[str, float] | None) -> Objectives:
        """Objectives from a mapping such as ``{"conversion": 1.0, "margin": 0.5}``.

        ``value`` and ``revenue`` are accepted as names of the margin objective.

        Raises:
            RankerError: for an unknown objective or a negative weight.
        """
        if value is None:
            return cls()
        if isinstance(value, Objectives):
            return value
        weights = {"conversion": 0.0, "margin": 0.0}
        for name, weight in value.items():
            key = {"value": "margin", "revenue": "margin"}.get(name, name)
            if key not in weights:
                raise RankerError(
                    f"unknown objective {name!r}: use conversion and margin (or value)"
                )
            if not isinstance(weight, int | float) or weight < 0 or math.isnan(weight):
                raise RankerError(f"objective {name!r} needs a weight >= 0, got {weight!r}")
            weights[key] = float(weight)
        return cls(**weights)

    @classmethod
    def from_pairs(cls, pairs: Iterable[str]) -> Objectives:
        """Objectives from ``NAME=WEIGHT`` texts, as the CLI, the HTTP API and experiments take them.

        ``NAME:WEIGHT`` works too, e.g. ``["conversion=1", "margin:0.5"]``.

        Raises:
            RankerError: for a text that is not ``NAME=WEIGHT``, a weight that is not a number,
                an objective given twice, an unknown objective or a negative weight.
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
        return self.conversion == 0 and self.margin == 0

    def as_dict(self) -> dict[str, float]:
        """A JSON-friendly form."""
        return {"conversion": self.conversion, "margin": self.margin}

    def score(self, relevance: FloatArray, factors: ItemFactors) -> FloatArray:
        """The final score of every item (``relevance`` itself when every weight is zero)."""
        if self.relevance_only:
            return relevance
        score = relevance.copy()
        if self.conversion:
            score *= factors.conversion_factor**self.conversion
        if self.margin:
            score *= factors.value_factor**self.margin
        return score


@dataclass
class ItemFactors:
    """Per item: what the objectives weigh (grown by one item for each item seen live).

    Attributes:
        conversion: the item's smoothed probability of leading to the key conversion.
        conversion_factor: ``conversion`` / the base rate (1 without conversions).
        value: the item's business value (NaN when unknown).
        value_factor: the value relative to the median item's (1 when unknown).
        base_rate: conversions per item exposure (session holding the item).
        category_rate: the smoothed rate of each category, then the base rate (no category).
        value_middle: the median positive value (1 without values).
    """

    conversion: FloatArray
    conversion_factor: FloatArray
    value: FloatArray
    value_factor: FloatArray
    base_rate: float
    category_rate: FloatArray
    value_middle: float

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
        positive = value[np.isfinite(value) & (value > 0)]
        middle = float(np.median(positive)) if positive.size else 1.0
        if positive.size:
            value_factor = (
                np.where(np.isfinite(value), np.maximum(value, 0.0), middle) + 0.05 * middle
            ) / middle
        else:
            value_factor = np.ones(n)
        return cls(
            conversion=conversion,
            conversion_factor=conversion / base_rate if base_rate > 0 else np.ones(n),
            value=value,
            value_factor=value_factor,
            base_rate=base_rate,
            category_rate=category_rate,
            value_middle=middle,
        )

    def add_item(self, category: int, price: float) -> None:
        """Append an item without interactions: its category's rate, its price as value."""
        known = 0 <= category < self.category_rate.size - 1
        rate = float(self.category_rate[category] if known else self.base_rate)
        self.conversion = np.append(self.conversion, rate)
        self.conversion_factor = np.append(
            self.conversion_factor, rate / self.base_rate if self.base_rate > 0 else 1.0
        )
        self.value = np.append(self.value, price)
        self.value_factor = np.append(
            self.value_factor,
            (max(price, 0.0) + 0.05 * self.value_middle) / self.value_middle
            if math.isfinite(price)
            else 1.0,
        )
