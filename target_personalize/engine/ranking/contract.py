"""The ranker contract: :class:`RankerBase`, what every ranker shares, and its errors.

A ranker is fitted from the event store (or from :class:`Interactions`), then answers
``recommend`` (top items for a user or a session) and ``rank`` (re-rank given candidates, e.g.
search results). ``observe`` feeds it live events: the session state changes at once, with no
refit. Subclasses only say how relevant every item is to a query (:meth:`RankerBase._relevance`);
the base class adds the rest, the same way for every ranker:

* objectives: relevance times the item's conversion factor and value factor, each raised to its
  weight (``score = relevance * conversion**w_c * value**w_v``), so all-zero weights give
  relevance alone and ``{conversion: 1, margin: 1}`` ranks by expected value;
* cold start (for rankers with ``cold_start = True``): popular and trending items narrowed by
  the categories, brands and search words of the session; items without interactions reached
  through their category and brand;
* filters, ``exclude_seen``, persistence (``.npz`` arrays + a ``.json`` description, no pickle).

Errors (all :class:`~target_personalize.engine.EngineError`)::

    RankerError              a ranker cannot do what was asked
    ├── ModelNotFittedError  recommend/rank/save before fit or load
    └── ModelFormatError     a saved model is missing, unreadable or of another kind
"""

from __future__ import annotations

import abc
import dataclasses
import json
import logging
import math
import re
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Self

import numpy as np
import numpy.typing as npt

from target_personalize.engine.exceptions import EngineError
from target_personalize.engine.ranking.index import concat_ranges, top_k
from target_personalize.engine.ranking.interactions import (
    Interactions,
    ItemTable,
    interactions_from_store,
    to_epoch,
)

if TYPE_CHECKING:
    from target_personalize.engine.store.event_store import EventStore

__all__ = [
    "DEFAULT_EVENT_WEIGHTS",
    "ModelFormatError",
    "ModelNotFittedError",
    "Objectives",
    "Query",
    "RankerBase",
    "RankerError",
    "ScoredItem",
    "check_random_state",
]

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

#: Event weights used when funnel mining has not supplied any (key conversion = 1.0).
DEFAULT_EVENT_WEIGHTS: dict[str, float] = {
    "page_view": 0.05,
    "engagement": 0.05,
    "remove_from_cart": 0.05,
    "category_view": 0.1,
    "search": 0.1,
    "filter": 0.1,
    "product_view": 0.2,
    "view": 0.2,
    "click": 0.2,
    "review_view": 0.3,
    "media_progress": 0.3,
    "add_to_wishlist": 0.4,
    "message": 0.4,
    "follow": 0.5,
    "add_to_cart": 0.6,
    "cart": 0.6,
    "begin_checkout": 0.8,
    "purchase": 1.0,
    "booking": 1.0,
}
#: Weight of an event type that neither the funnel nor the defaults know.
UNKNOWN_EVENT_WEIGHT = 0.2
#: Event types counted as "added to cart" by the conversion objective and the evaluation.
CART_TYPES = frozenset({"add_to_cart", "cart"})
#: Format of saved models.
MODEL_FORMAT = 1
#: Pseudo-sessions that pull an item's conversion rate towards its category's.
_ITEM_PRIOR = 10.0
#: Pseudo-sessions that pull a category's conversion rate towards the base rate.
_CATEGORY_PRIOR = 50.0
_TOKEN = re.compile(r"[0-9a-z]+")


class RankerError(EngineError):
    """A ranker cannot do what was asked."""


class ModelNotFittedError(RankerError):
    """The ranker has not been fitted (or loaded) yet."""


class ModelFormatError(RankerError):
    """A saved model is missing, unreadable, or was saved by another kind of ranker."""


def check_random_state(random_state: int | np.random.Generator | None) -> np.random.Generator:
    """A numpy ``Generator`` from a seed, a generator, or ``None`` (fresh entropy)."""
    if isinstance(random_state, np.random.Generator):
        return random_state
    return np.random.default_rng(random_state)


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

    @property
    def relevance_only(self) -> bool:
        """Whether every weight is zero."""
        return self.conversion == 0 and self.margin == 0

    def as_dict(self) -> dict[str, float]:
        """A JSON-friendly form."""
        return {"conversion": self.conversion, "margin": self.margin}


@dataclass(frozen=True)
class ScoredItem:
    """One ranked item.

    Attributes:
        item_id: the item.
        score: the final score (relevance times the objective factors).
        relevance: the relevance part, scaled so the best item of the answer is 1.
        conversion: the item's smoothed probability of leading to the key conversion.
        value: the item's business value (margin, else price, else order value), or ``None``.
    """

    item_id: str
    score: float
    relevance: float
    conversion: float
    value: float | None

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly form."""
        return {
            "item_id": self.item_id,
            "score": self.score,
            "relevance": self.relevance,
            "conversion": self.conversion,
            "value": self.value,
        }


@dataclass(frozen=True, eq=False)
class Query:
    """What a ranker knows at the moment of a request.

    Attributes:
        items: items of the current session, in order (may repeat; -1 never appears).
        kinds: event type index per session event.
        ts: time per session event.
        history_items: items of the visitor's earlier sessions, oldest first.
        history_kinds: event type per history event.
        history_ts: time per history event.
        now: the request time (the last event time when known).
        categories: category indexes the session showed (including item-less events).
        brands: brand indexes the session showed.
        words: search words of the session.
    """

    items: IntArray
    kinds: IntArray
    ts: FloatArray
    history_items: IntArray = field(default_factory=lambda: np.zeros(0, np.int64))
    history_kinds: IntArray = field(default_factory=lambda: np.zeros(0, np.int64))
    history_ts: FloatArray = field(default_factory=lambda: np.zeros(0))
    now: float = math.nan
    categories: tuple[int, ...] = ()
    brands: tuple[int, ...] = ()
    words: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        """Whether the query holds no items at all."""
        return self.items.size == 0 and self.history_items.size == 0


@dataclass
class _LiveSession:
    """A session fed by :meth:`RankerBase.observe` (mutable, in memory only)."""

    visitor: str | None
    items: list[int] = field(default_factory=list)
    kinds: list[int] = field(default_factory=list)
    ts: list[float] = field(default_factory=list)
    categories: list[int] = field(default_factory=list)
    brands: list[int] = field(default_factory=list)
    words: list[str] = field(default_factory=list)


class RankerBase(abc.ABC):
    """The contract every ranker follows.

    Args:
        random_state: seed or generator for anything random (sampling, tie noise).
        history_sessions: how many earlier sessions of a known visitor count as history.
        max_live_sessions: live sessions kept in memory (least recently used are dropped).
    """

    #: Name used in tables, files and the CLI.
    name: ClassVar[str] = "ranker"
    #: Whether popular/trending items and category/brand matches fill in for missing signal.
    cold_start: ClassVar[bool] = False
    #: Events per live session kept (older ones are forgotten).
    max_session_events: ClassVar[int] = 100

    def __init__(
        self,
        *,
        random_state: int | np.random.Generator | None = None,
        history_sessions: int = 5,
        max_live_sessions: int = 100_000,
    ) -> None:
        self.random_state = random_state
        self.history_sessions = history_sessions
        self.max_live_sessions = max_live_sessions
        self._rng = check_random_state(random_state)
        self._data: Interactions | None = None
        self.event_weights: dict[str, float] = dict(DEFAULT_EVENT_WEIGHTS)
        self.key_conversion = "purchase"
        self.objectives = Objectives()
        self.fitted_at: float = math.nan
        self.loaded_until: datetime | None = None
        self._live: OrderedDict[str, _LiveSession] = OrderedDict()
        self._visitor_live: dict[str, str] = {}
        self._extra_items: dict[str, int] = {}

    # Parameters (saved with the model)

    def get_params(self) -> dict[str, Any]:
        """Constructor arguments, JSON-friendly (subclasses add their own)."""
        return {
            "random_state": self.random_state if isinstance(self.random_state, int) else None,
            "history_sessions": self.history_sessions,
            "max_live_sessions": self.max_live_sessions,
        }

    # Fitting

    @property
    def data(self) -> Interactions:
        """The training interactions.

        Raises:
            ModelNotFittedError: before fit or load.
        """
        if self._data is None:
            raise ModelNotFittedError(f"{self.name}: call fit() or load() first")
        return self._data

    @property
    def items(self) -> ItemTable:
        """The item vocabulary (training items, catalog items and items seen live)."""
        return self.data.items

    def fit(
        self,
        data: EventStore | Interactions,
        *,
        event_weights: Mapping[str, float] | None = None,
        key_conversion: str | None = None,
        objectives: Objectives | Mapping[str, float] | None = None,
    ) -> Self:
        """Fit from the store (or from interactions already read).

        Args:
            data: an :class:`~target_personalize.engine.EventStore` or :class:`Interactions`.
            event_weights: weight in [0, 1] per event type, as funnel mining produces them
                (the key conversion has 1.0). Types it lacks keep :data:`DEFAULT_EVENT_WEIGHTS`.
            key_conversion: the conversion to optimize; by default the type weighted 1.0 in
                ``event_weights``, else ``purchase``.
            objectives: default objective weights for requests that give none.

        Returns:
            The fitted ranker.

        Raises:
            RankerError: if an event weight is outside [0, 1].
        """
        started = time.perf_counter()
        self._set_weights(event_weights, key_conversion)
        self.objectives = Objectives.parse(objectives)
        if isinstance(data, Interactions):
            interactions = data
        else:
            self.loaded_until = _max_loaded_at(data)
            interactions = interactions_from_store(data)
        self._fit_all(interactions)
        logger.info(
            "Fitted %s on %d item events, %d sessions, %d items in %.2f s",
            self.name,
            len(interactions),
            interactions.n_sessions,
            len(interactions.items),
            time.perf_counter() - started,
        )
        return self

    def update(self, store: EventStore) -> Self:
        """Refit incrementally: read only sessions touched by loads since the last fit.

        Sessions that grew are read again in full and replace their old version; everything
        else comes from the model. Falls back to a full fit when the model has no load time.

        Returns:
            The refreshed ranker.
        """
        if self._data is None or self.loaded_until is None:
            return self.fit(
                store,
                event_weights=self.event_weights,
                key_conversion=self.key_conversion,
                objectives=self.objectives,
            )
        since = self.loaded_until
        latest = _max_loaded_at(store)
        if latest is None or latest <= since:
            return self
        fresh = interactions_from_store(store, min_loaded_at=since)
        merged = _merge_interactions(self._data, fresh)
        self.loaded_until = latest
        self._fit_all(merged)
        logger.info(
            "Updated %s with %d item events of %d sessions", self.name, len(fresh), fresh.n_sessions
        )
        return self

    def _set_weights(
        self, event_weights: Mapping[str, float] | None, key_conversion: str | None
    ) -> None:
        weights = dict(DEFAULT_EVENT_WEIGHTS)
        for name, weight in (event_weights or {}).items():
            if not 0.0 <= float(weight) <= 1.0:
                raise RankerError(f"event weight of {name!r} must be in [0, 1], got {weight!r}")
            weights[name] = float(weight)
        if key_conversion is None:
            given = dict(event_weights or {})
            top = max(given.values(), default=None)
            best = sorted(name for name, weight in given.items() if weight == top)
            key_conversion = "purchase" if not best or "purchase" in best else best[0]
        weights[key_conversion] = 1.0
        self.event_weights = weights
        self.key_conversion = key_conversion

    def _fit_all(self, data: Interactions) -> None:
        previous = self._data
        self._data = data
        self._extra_items = {}
        self._prepare()
        self._fit(data)
        self.fitted_at = time.time()
        if previous is not None and self._live:
            self._remap_live(previous.items, previous.event_types)

    def _remap_live(self, previous: ItemTable, event_types: tuple[str, ...]) -> None:
        """Point live sessions at the new vocabularies (items seen only live are re-added)."""
        kinds = {old: self._kind_index(name) for old, name in enumerate(event_types)}
        used = sorted({i for session in self._live.values() for i in session.items})
        mapping: dict[int, int] = {}
        for old in used:
            item_id = str(previous.item_ids[old])
            found = int(self._lookup([item_id])[0])
            if found < 0:
                category, brand = previous.category[old], previous.brand[old]
                found = self._item_index(
                    {
                        "item_id": item_id,
                        "category": previous.categories[category] if category >= 0 else None,
                        "brand": previous.brands[brand] if brand >= 0 else None,
                        "price": None
                        if math.isnan(previous.price[old])
                        else float(previous.price[old]),
                    }
                )
            mapping[old] = found
        for session in self._live.values():
            session.items = [mapping[i] for i in session.items]
            session.kinds = [kinds[k] for k in session.kinds]

    def _prepare(self) -> None:
        """Per-item statistics every ranker shares: popularity, trend, conversion, value."""
        data = self.data
        n = len(data.items)
        self._kind_weight = np.array(
            [self.event_weights.get(t, UNKNOWN_EVENT_WEIGHT) for t in data.event_types] or [0.0],
            dtype=np.float64,
        )
        key = data.kind_of(self.key_conversion)
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
        self._base_rate = base_rate
        self._category_rate = category_rate
        self._conversion = (conversions + _ITEM_PRIOR * category_rate[codes]) / (
            exposure + _ITEM_PRIOR
        )
        self._conversion_factor = self._conversion / base_rate if base_rate > 0 else np.ones(n)
        value = data.items.value()
        positive = value[np.isfinite(value) & (value > 0)]
        middle = float(np.median(positive)) if positive.size else 1.0
        self._value_middle = middle
        if positive.size:
            factor = (
                np.where(np.isfinite(value), np.maximum(value, 0.0), middle) + 0.05 * middle
            ) / middle
        else:
            factor = np.ones(n)
        self._value = value
        self._value_factor = factor
        # Popularity (rows) and trend (rows weighted by recency, half-life a tenth of the span).
        self._popularity = np.bincount(data.item, minlength=n).astype(np.float64)
        if len(data):
            end, start = float(data.ts.max()), float(data.ts.min())
            half_life = max((end - start) / 10.0, 3600.0)
            recency = np.exp2(-(end - data.ts) / half_life)
            self._trend = np.bincount(data.item, weights=recency, minlength=n).astype(np.float64)
            self._now = end
        else:
            self._trend = np.zeros(n)
            self._now = time.time()
        self._has_interactions = exposure > 0
        self._cold_base = self._popular_and_trending()
        self._cold_base_max = float(self._cold_base.max(initial=0.0))
        self._group_items()
        self._session_end = data.session_end_times()
        order = np.argsort(data.session_visitor, kind="stable")
        self._visitor_sessions = order.astype(np.int64)
        self._visitor_ptr = np.concatenate(
            ([0], np.cumsum(np.bincount(data.session_visitor, minlength=data.visitors.size)))
        ).astype(np.int64)
        self._category_words = [set(_TOKEN.findall(c.lower())) for c in data.items.categories]
        self._brand_words = [set(_TOKEN.findall(b.lower())) for b in data.items.brands]

    def _group_items(self) -> None:
        items = self.items
        self._by_category = _Groups.build(items.category, len(items.categories))
        self._by_brand = _Groups.build(items.brand, len(items.brands))
        cold = ~self._has_interactions
        self._cold_by_category = _Groups.build(
            np.where(cold, items.category, -1).astype(np.int32), len(items.categories)
        )
        self._cold_by_brand = _Groups.build(
            np.where(cold, items.brand, -1).astype(np.int32), len(items.brands)
        )
        self._cold_count = int(np.count_nonzero(cold))

    def _popular_and_trending(self) -> FloatArray:
        """Half popularity, half trend, each scaled to a maximum of 1, then to a max of 1."""
        base = np.zeros(self._popularity.size)
        for counts in (self._popularity, self._trend):
            top = float(counts.max(initial=0.0))
            if top > 0:
                base += 0.5 * counts / top
        top = float(base.max(initial=0.0))
        return base / top if top > 0 else base

    @abc.abstractmethod
    def _fit(self, data: Interactions) -> None:
        """Build the ranker's own structures from the training interactions."""

    @abc.abstractmethod
    def _relevance(self, query: Query) -> FloatArray:
        """A non-negative relevance score per item of the vocabulary (0 = no signal)."""

    # Scoring

    def _score(self, query: Query, objectives: Objectives) -> tuple[FloatArray, FloatArray]:
        """(final scores, relevance scaled to a maximum of 1) for every item."""
        relevance = self._relevance(query)
        n = len(self.items)
        if relevance.size < n:
            relevance = np.concatenate([relevance, np.zeros(n - relevance.size)])
        top = float(relevance.max()) if relevance.size else 0.0
        if top > 0:
            relevance = relevance / top
        if self.cold_start:
            relevance = self._with_cold_start(relevance, query)
        if objectives.relevance_only:
            return relevance, relevance
        score = relevance.copy()
        if objectives.conversion:
            score *= self._conversion_factor**objectives.conversion
        if objectives.margin:
            score *= self._value_factor**objectives.margin
        return score, relevance

    def _with_cold_start(self, relevance: FloatArray, query: Query) -> FloatArray:
        """Reach items without interactions through category and brand; fill with trends.

        An item without interactions scores a quarter of the sum of the best relevance in its
        category and in its brand. Every item then gets a small share (1e-3 of the best) of
        its popularity and trend, raised tenfold for the categories (and, half as much, the
        brands) the session showed or searched for, so that these order the items nothing
        else tells apart. Work is proportional to the items touched, not to the catalog.
        """
        items = self.items
        base = self._cold_base
        share = 1e-3
        categories, brands = self._context(query)
        touched = np.zeros(0, dtype=np.int64)
        boosted = np.zeros(0)
        if categories.size or brands.size:
            in_category = self._by_category.members(categories)
            in_brand = self._by_brand.members(brands)
            weight = np.concatenate([np.ones(in_category.size), np.full(in_brand.size, 0.5)])
            touched, at = np.unique(np.concatenate([in_category, in_brand]), return_inverse=True)
            match = np.bincount(at, weights=weight)
            boosted = base[touched] * (1.0 + 9.0 * match) + 0.05 * match
            share = 1e-3 / max(self._cold_base_max, float(boosted.max(initial=0.0)), 1e-12)
        else:
            share = 1e-3 / max(self._cold_base_max, 1e-12)
        scored = np.flatnonzero(relevance > 0)
        # A floor (1e-9) so that every item can fill a list, e.g. under a narrow filter.
        out = base * share
        out += relevance
        out += 1e-9
        if touched.size:
            out[touched] += share * (boosted - base[touched])
        if scored.size and self._cold_count:
            best_category, reached_categories = _best_per_group(
                items.category, len(items.categories), scored, relevance
            )
            best_brand, reached_brands = _best_per_group(
                items.brand, len(items.brands), scored, relevance
            )
            # Cold items of the groups reached; an item listed twice is still raised once
            # (fancy-index ``+=`` applies one update per index).
            reached = np.concatenate(
                [
                    self._cold_by_category.members(reached_categories),
                    self._cold_by_brand.members(reached_brands),
                ]
            )
            if reached.size:
                out[reached] += 0.25 * (
                    best_category[items.category[reached]] + best_brand[items.brand[reached]]
                )
        return out

    def _context(self, query: Query) -> tuple[IntArray, IntArray]:
        """Category and brand codes the session showed, searched or filtered for."""
        items = self.items
        seen = np.concatenate([query.items, query.history_items[-10:]])
        categories = {int(c) for c in items.category[seen] if c >= 0} | set(query.categories)
        brands = {int(b) for b in items.brand[seen] if b >= 0} | set(query.brands)
        words = set(query.words)
        if words:
            categories |= {i for i, w in enumerate(self._category_words) if w & words}
            brands |= {i for i, w in enumerate(self._brand_words) if w & words}
        return np.array(sorted(categories), dtype=np.int64), np.array(
            sorted(brands), dtype=np.int64
        )

    # Live events

    def observe(self, event: Mapping[str, Any]) -> None:
        """Add one canonical event to its live session; the next answer reflects it.

        The session is the event's ``session_id``, else its visitor's live session. Item
        ids the model has never seen join the vocabulary (with their category and brand).

        Raises:
            ModelNotFittedError: before fit or load.
        """
        self.data  # noqa: B018 - raises when not fitted
        visitor = event.get("user_id") or event.get("anonymous_id")
        key = event.get("session_id") or (f"{visitor}#live" if visitor else None)
        if key is None:
            return
        key = str(key)
        session = self._live.get(key)
        if session is None:
            session = _LiveSession(str(visitor) if visitor else None)
            self._live[key] = session
            if len(self._live) > self.max_live_sessions:
                old_key, old = self._live.popitem(last=False)
                if old.visitor and self._visitor_live.get(old.visitor) == old_key:
                    del self._visitor_live[old.visitor]
        else:
            self._live.move_to_end(key)
            if visitor and session.visitor is None:
                session.visitor = str(visitor)
        if session.visitor:
            self._visitor_live[session.visitor] = key
        kind = self._kind_index(
            str(event.get("event_type") or event.get("event_name") or "unknown")
        )
        moment = to_epoch(event.get("event_ts"))
        if math.isnan(moment):
            moment = session.ts[-1] if session.ts else self._now
        for raw in event.get("items") or []:
            item = self._item_index(raw)
            if item < 0:
                continue
            session.items.append(item)
            session.kinds.append(kind)
            session.ts.append(moment)
        words = _TOKEN.findall(str(event.get("search_query") or "").lower())
        session.words.extend(words)
        filters = event.get("filters")
        if isinstance(filters, Mapping):
            for name in ("category", "brand"):
                value = filters.get(name)
                if isinstance(value, str):
                    session.words.extend(_TOKEN.findall(value.lower()))
        for name in ("items", "kinds", "ts", "words"):
            values = getattr(session, name)
            if len(values) > self.max_session_events:
                del values[: len(values) - self.max_session_events]

    def adopt_live(self, previous: RankerBase) -> None:
        """Take over the live sessions of ``previous``, the model this one replaces.

        For a model refreshed while serving: the sessions observed so far (including while
        this one was fitted) keep answering, their items pointed at this model's vocabularies.

        Raises:
            ModelNotFittedError: before fit or load.
        """
        self.data  # noqa: B018 - raises when not fitted
        self._live = previous._live
        self._visitor_live = previous._visitor_live
        if self._live:
            self._remap_live(previous.items, previous.data.event_types)

    def _kind_index(self, name: str) -> int:
        data = self.data
        if name not in data.event_types:
            types = (*data.event_types, name)
            self._data = dataclasses.replace(data, event_types=types)
            self._kind_weight = np.append(
                self._kind_weight, self.event_weights.get(name, UNKNOWN_EVENT_WEIGHT)
            )
        return self.data.event_types.index(name)

    def _item_index(self, raw: Mapping[str, Any] | str) -> int:
        item_id = str(raw if isinstance(raw, str) else raw.get("item_id") or "")
        if not item_id:
            return -1
        found = int(self.items.index([item_id])[0])
        if found >= 0:
            return found
        if item_id in self._extra_items:
            return self._extra_items[item_id]
        if isinstance(raw, str):
            return -1
        price = raw.get("price")
        table, index = self.items.extended(
            item_id,
            category=raw.get("category") or None,
            brand=raw.get("brand") or None,
            price=float(price) if isinstance(price, int | float) else None,
        )
        data = self.data
        self._data = dataclasses.replace(data, items=table)
        self._extra_items[item_id] = index
        self._category_words = [set(_TOKEN.findall(c.lower())) for c in table.categories]
        self._brand_words = [set(_TOKEN.findall(b.lower())) for b in table.brands]
        self._grow_item_arrays(price, int(table.category[index]))
        return index

    def _grow_item_arrays(self, price: object, category: int) -> None:
        """Extend the per-item statistics by one item without interactions."""
        known = 0 <= category < self._category_rate.size - 1
        rate = float(self._category_rate[category] if known else self._base_rate)
        value = float(price) if isinstance(price, int | float) else math.nan
        self._conversion = np.append(self._conversion, rate)
        self._conversion_factor = np.append(
            self._conversion_factor, rate / self._base_rate if self._base_rate > 0 else 1.0
        )
        self._value = np.append(self._value, value)
        self._value_factor = np.append(
            self._value_factor,
            (max(value, 0.0) + 0.05 * self._value_middle) / self._value_middle
            if math.isfinite(value)
            else 1.0,
        )
        self._popularity = np.append(self._popularity, 0.0)
        self._trend = np.append(self._trend, 0.0)
        self._has_interactions = np.append(self._has_interactions, False)
        self._cold_base = np.append(self._cold_base, 0.0)
        self._group_items()

    def _lookup(self, item_ids: Sequence[str]) -> IntArray:
        found = self.items.index(list(item_ids))
        for i, item_id in enumerate(item_ids):
            if found[i] < 0 and item_id in self._extra_items:
                found[i] = self._extra_items[item_id]
        return found

    # Queries

    def _query(self, user_id: str | None, session_id: str | None) -> Query:
        if user_id is None and session_id is None:
            raise RankerError("give a user_id or a session_id")
        data = self.data
        live: _LiveSession | None = None
        session_rows = np.zeros(0, dtype=np.int64)
        visitor = user_id
        current_session: int = -1
        if session_id is not None:
            live = self._live.get(session_id)
            # A live session's stored copy (a model refitted while serving) is the same
            # session: never its own history.
            current_session = _find(data.session_keys, session_id)
            if live is None:
                if current_session >= 0:
                    session_rows = self._session_rows(current_session)
                    visitor = visitor or str(data.visitors[data.session_visitor[current_session]])
            elif visitor is None:
                visitor = live.visitor
        elif user_id is not None and user_id in self._visitor_live:
            live = self._live.get(self._visitor_live[user_id])
        history = np.zeros(0, dtype=np.int64)
        if visitor is not None:
            history = self._history_rows(visitor, exclude=current_session)
            if live is None and session_id is None and history.size:
                # A known user without a live session: the latest session is the current one.
                last_session = int(data.session[history[-1]])
                session_rows = history[data.session[history] == last_session]
                history = history[data.session[history] != last_session]
        if live is not None:
            items = np.array(live.items, dtype=np.int64)
            kinds = np.array(live.kinds, dtype=np.int64)
            ts = np.array(live.ts, dtype=np.float64)
            categories = tuple(live.categories)
            brands = tuple(live.brands)
            words = tuple(live.words)
        else:
            items = data.item[session_rows].astype(np.int64)
            kinds = data.kind[session_rows].astype(np.int64)
            ts = data.ts[session_rows]
            categories, brands, words = (), (), ()
        now = (
            float(ts[-1])
            if ts.size
            else (float(data.ts[history[-1]]) if history.size else self._now)
        )
        return Query(
            items=items,
            kinds=kinds,
            ts=ts,
            history_items=data.item[history].astype(np.int64),
            history_kinds=data.kind[history].astype(np.int64),
            history_ts=data.ts[history],
            now=now,
            categories=categories,
            brands=brands,
            words=words,
        )

    def _session_rows(self, session: int) -> IntArray:
        data = self.data
        # A needle of the array's own type: a Python int would copy the array to int64.
        needle = data.session.dtype.type(session)
        start = int(np.searchsorted(data.session, needle, side="left"))
        end = int(np.searchsorted(data.session, needle, side="right"))
        return np.arange(start, end, dtype=np.int64)

    def _history_rows(self, visitor: str, exclude: int = -1) -> IntArray:
        """Rows of the visitor's last ``history_sessions`` training sessions, oldest first."""
        data = self.data
        at = _find(data.visitors, visitor)
        if at < 0 or self.history_sessions <= 0:
            return np.zeros(0, dtype=np.int64)
        sessions = self._visitor_sessions[self._visitor_ptr[at] : self._visitor_ptr[at + 1]]
        sessions = sessions[sessions != exclude]
        if sessions.size == 0:
            return np.zeros(0, dtype=np.int64)
        ends = self._session_end[sessions]
        sessions = sessions[np.argsort(ends, kind="stable")][-self.history_sessions :]
        return np.concatenate([self._session_rows(int(s)) for s in sessions])

    # Answers

    def recommend(
        self,
        user_id: str | None = None,
        session_id: str | None = None,
        k: int = 20,
        *,
        exclude_seen: bool = False,
        filters: Mapping[str, Any] | None = None,
        objectives: Objectives | Mapping[str, float] | None = None,
    ) -> list[ScoredItem]:
        """The ``k`` best items for a user or a session.

        Args:
            user_id: a known user (their live session, else their latest session, plus
                their history).
            session_id: a session (live or from the training data).
            k: how many items.
            exclude_seen: leave out items the session or the user's history already holds.
            filters: ``category`` (name or list; a dotted prefix matches its subcategories),
                ``brand`` (name or list), ``min_price``, ``max_price``, ``available_only``
                (default true), ``item_ids`` (restrict to these), ``exclude`` (ids to leave out).
            objectives: weights of business objectives; default: those given at fit.

        Returns:
            Up to ``k`` items, best first (only items with some signal).

        Raises:
            RankerError: without user_id and session_id, or for unknown filters/objectives.
            ModelNotFittedError: before fit or load.
        """
        query = self._query(user_id, session_id)
        return self._answer(query, k, exclude_seen, filters, objectives)

    def recommend_batch(
        self,
        requests: Sequence[tuple[str | None, str | None]],
        k: int = 20,
        *,
        exclude_seen: bool = False,
        filters: Mapping[str, Any] | None = None,
        objectives: Objectives | Mapping[str, float] | None = None,
    ) -> list[list[ScoredItem]]:
        """:meth:`recommend` for many ``(user_id, session_id)`` pairs at once."""
        return [
            self._answer(self._query(user, session), k, exclude_seen, filters, objectives)
            for user, session in requests
        ]

    def _answer(
        self,
        query: Query,
        k: int,
        exclude_seen: bool,
        filters: Mapping[str, Any] | None,
        objectives: Objectives | Mapping[str, float] | None,
    ) -> list[ScoredItem]:
        goals = self.objectives if objectives is None else Objectives.parse(objectives)
        score, relevance = self._score(query, goals)
        mask: BoolArray | None = None
        if filters or exclude_seen or not self.items.available.all():
            mask = self._filter_mask(filters)
            if exclude_seen:
                mask[query.items] = False
                mask[query.history_items] = False
        chosen = top_k(score, k, mask)
        return [self._scored(int(i), score, relevance) for i in chosen]

    def _scored(self, item: int, score: FloatArray, relevance: FloatArray) -> ScoredItem:
        value = float(self._value[item])
        return ScoredItem(
            item_id=str(self.items.item_ids[item]),
            score=float(score[item]),
            relevance=float(relevance[item]),
            conversion=float(self._conversion[item]),
            value=value if math.isfinite(value) else None,
        )

    def rank(
        self,
        candidates: Sequence[str],
        user_id: str | None = None,
        session_id: str | None = None,
        *,
        objectives: Objectives | Mapping[str, float] | None = None,
    ) -> list[ScoredItem]:
        """Re-rank ``candidates`` (e.g. search results) for a user or a session.

        Every candidate comes back once, best first; ties (and unknown ids, scored 0) keep
        their given order.

        Raises:
            RankerError: without user_id and session_id.
            ModelNotFittedError: before fit or load.
        """
        query = self._query(user_id, session_id)
        goals = self.objectives if objectives is None else Objectives.parse(objectives)
        score, relevance = self._score(query, goals)
        found = self._lookup(list(candidates))
        values = np.where(found >= 0, score[np.maximum(found, 0)], 0.0)
        order = np.lexsort((np.arange(found.size), -values))
        ranked: list[ScoredItem] = []
        for i in order.tolist():
            if found[i] >= 0:
                ranked.append(self._scored(int(found[i]), score, relevance))
            else:
                ranked.append(ScoredItem(str(candidates[i]), 0.0, 0.0, 0.0, None))
        return ranked

    def _filter_mask(self, filters: Mapping[str, Any] | None) -> BoolArray:
        items = self.items
        options = dict(filters or {})
        mask = (
            items.available.copy()
            if options.pop("available_only", True)
            else np.ones(len(items), np.bool_)
        )
        category = options.pop("category", None)
        if category is not None:
            wanted = [category] if isinstance(category, str) else list(category)
            names = items.categories
            ok = np.array(
                [any(c == w or c.startswith(f"{w}.") for w in wanted) for c in names] + [False],
                dtype=np.bool_,
            )
            mask &= ok[np.where(items.category >= 0, items.category, len(names))]
        brand = options.pop("brand", None)
        if brand is not None:
            wanted_brands = {brand} if isinstance(brand, str) else set(brand)
            ok = np.array([b in wanted_brands for b in items.brands] + [False], dtype=np.bool_)
            mask &= ok[np.where(items.brand >= 0, items.brand, len(items.brands))]
        low, high = options.pop("min_price", None), options.pop("max_price", None)
        if low is not None:
            mask &= items.price >= float(low)
        if high is not None:
            mask &= items.price <= float(high)
        restrict = options.pop("item_ids", None)
        if restrict is not None:
            keep = np.zeros(len(items), dtype=np.bool_)
            found = self._lookup(list(restrict))
            keep[found[found >= 0]] = True
            mask &= keep
        exclude = options.pop("exclude", None)
        if exclude is not None:
            found = self._lookup(list(exclude))
            mask[found[found >= 0]] = False
        if options:
            raise RankerError(
                f"unknown filter {sorted(options)[0]!r}: use category, brand, min_price, "
                "max_price, available_only, item_ids or exclude"
            )
        return mask

    # Persistence

    def _arrays(self) -> dict[str, npt.NDArray[Any]]:
        """Arrays the subclass needs saved besides the interactions (default: none)."""
        return {}

    def _restore(self, arrays: Mapping[str, npt.NDArray[Any]]) -> bool:
        """Restore from saved arrays; return False to have :meth:`_fit` rebuild instead."""
        del arrays
        return False

    def to_payload(self) -> tuple[dict[str, Any], dict[str, npt.NDArray[Any]]]:
        """The model as a JSON-friendly description and named numpy arrays.

        Live sessions and items seen only live are left out.

        Raises:
            ModelNotFittedError: before fit or load.
        """
        data = self.data
        if self._extra_items:
            # Items seen live stay out of the saved (sorted) vocabulary.
            kept = data.items.head(len(data.items) - len(self._extra_items))
            data = dataclasses.replace(data, items=kept)
        arrays = {f"data__{k}": v for k, v in data.arrays().items()}
        arrays.update({f"model__{k}": v for k, v in self._arrays().items()})
        meta = {
            "format": MODEL_FORMAT,
            "ranker": self.name,
            "class": type(self).__name__,
            "params": self.get_params(),
            "event_weights": self.event_weights,
            "key_conversion": self.key_conversion,
            "objectives": self.objectives.as_dict(),
            "fitted_at": self.fitted_at,
            "loaded_until": self.loaded_until.isoformat() if self.loaded_until else None,
            "events": len(data),
            "sessions": data.n_sessions,
            "items": len(data.items),
        }
        return meta, arrays

    @classmethod
    def from_payload(cls, meta: Mapping[str, Any], arrays: Mapping[str, npt.NDArray[Any]]) -> Self:
        """The inverse of :meth:`to_payload`.

        Raises:
            ModelFormatError: for another format version or another kind of ranker.
        """
        if meta.get("format") != MODEL_FORMAT:
            raise ModelFormatError(f"unsupported model format {meta.get('format')!r}")
        kind = _registry().get(str(meta.get("class")))
        if kind is None or not issubclass(kind, cls):
            raise ModelFormatError(f"the model is a {meta.get('class')}, not a {cls.__name__}")
        try:
            ranker = kind(**meta.get("params", {}))
            ranker._set_weights(meta.get("event_weights"), meta.get("key_conversion"))
            ranker.objectives = Objectives.parse(meta.get("objectives"))
            loaded = meta.get("loaded_until")
            ranker.loaded_until = datetime.fromisoformat(loaded) if loaded else None
            data = Interactions.from_arrays(
                {k.removeprefix("data__"): v for k, v in arrays.items() if k.startswith("data__")}
            )
        except (KeyError, TypeError, ValueError) as error:
            raise ModelFormatError(f"the saved model is incomplete: {error}") from error
        ranker._data = data
        ranker._prepare()
        own = {k.removeprefix("model__"): v for k, v in arrays.items() if k.startswith("model__")}
        if not ranker._restore(own):
            ranker._fit(data)
        ranker.fitted_at = float(meta.get("fitted_at") or math.nan)
        return ranker

    def save(self, path: str | Path) -> Path:
        """Save to ``path`` (a ``.npz`` file) and a ``.json`` description beside it.

        Returns:
            The ``.npz`` path.

        Raises:
            ModelNotFittedError: before fit or load.
        """
        meta, arrays = self.to_payload()
        target = _npz_path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(target.name + ".tmp.npz")
        savez: Any = np.savez
        savez(temporary, **arrays)
        temporary.replace(target)
        target.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        return target

    @classmethod
    def load(cls, path: str | Path) -> Self:
        """Load a ranker saved by :meth:`save` (``allow_pickle`` stays off).

        Raises:
            ModelFormatError: if the files are missing, unreadable, or hold another ranker.
        """
        target = _npz_path(path)
        try:
            meta = json.loads(target.with_suffix(".json").read_text(encoding="utf-8"))
            with np.load(target, allow_pickle=False) as saved:
                arrays = {name: saved[name] for name in saved.files}
        except (OSError, ValueError) as error:
            raise ModelFormatError(f"cannot read the model at {target}: {error}") from error
        return cls.from_payload(meta, arrays)


def _npz_path(path: str | Path) -> Path:
    target = Path(path)
    return target if target.suffix == ".npz" else target.with_name(target.name + ".npz")


def _registry() -> dict[str, type[RankerBase]]:
    found: dict[str, type[RankerBase]] = {}
    pending: list[type[RankerBase]] = list(RankerBase.__subclasses__())
    found.update({kind.__name__: kind for kind in pending})
    while pending:
        kind = pending.pop()
        for sub in kind.__subclasses__():
            found[sub.__name__] = sub
            pending.append(sub)
    return found


def _find(sorted_keys: npt.NDArray[np.str_], key: str) -> int:
    # A key longer than the array's strings is not there; searching for it would copy the
    # whole array to a wider string type first.
    if sorted_keys.size == 0 or len(key) > sorted_keys.dtype.itemsize // 4:
        return -1
    at = int(np.searchsorted(sorted_keys, key))
    return at if at < sorted_keys.size and sorted_keys[at] == key else -1


def _max_loaded_at(store: EventStore) -> datetime | None:
    rows = store.query("SELECT max(loaded_at) FROM events")
    value = rows[0][0] if rows else None
    return value if isinstance(value, datetime) else None


def _merge_interactions(old: Interactions, new: Interactions) -> Interactions:
    """Old interactions with the sessions of ``new`` replaced or added.

    Both are re-indexed onto the union of their item vocabularies (``new``'s attributes win).
    """
    items = _union_items(old.items, new.items)
    old_rows = old.with_items(items)
    new_rows = new.with_items(items)
    replaced = np.isin(old_rows.session_keys, new_rows.session_keys)
    old_rows = old_rows.take(~replaced[old_rows.session])
    new_rows = new_rows.with_event_types(old_rows.event_types)
    old_rows = old_rows.with_event_types(new_rows.event_types)
    return old_rows.concat(dataclasses.replace(new_rows, items=old_rows.items))


def _union_items(old: ItemTable, new: ItemTable) -> ItemTable:
    ids = np.union1d(old.item_ids, new.item_ids)
    in_new = new.index(ids)
    in_old = old.index(ids)

    def pick_name(
        table_new: Iterable[str], codes_new: IntArray, names_old: Iterable[str], codes_old: IntArray
    ) -> list[str | None]:
        names_n, names_o = list(table_new), list(names_old)
        result: list[str | None] = []
        for n_at, o_at in zip(codes_new.tolist(), codes_old.tolist(), strict=True):
            if n_at >= 0:
                result.append(names_n[n_at])
            elif o_at >= 0:
                result.append(names_o[o_at])
            else:
                result.append(None)
        return result

    def codes(table: ItemTable, at: IntArray, attr: str) -> IntArray:
        values = getattr(table, attr)
        return (
            np.where(at >= 0, values[np.maximum(at, 0)], -1)
            if values.size
            else np.full(at.size, -1)
        )

    def floats(attr: str) -> list[float | None]:
        n_vals = getattr(new, attr)
        o_vals = getattr(old, attr)
        out: list[float | None] = []
        for n_at, o_at in zip(in_new.tolist(), in_old.tolist(), strict=True):
            value = n_vals[n_at] if n_at >= 0 else math.nan
            if math.isnan(value) and o_at >= 0:
                value = o_vals[o_at]
            out.append(None if math.isnan(value) else float(value))
        return out

    available = [
        bool(new.available[n]) if n >= 0 else bool(old.available[o])
        for n, o in zip(in_new.tolist(), in_old.tolist(), strict=True)
    ]
    return ItemTable.build(
        ids,
        category=pick_name(
            new.categories,
            codes(new, in_new, "category"),
            old.categories,
            codes(old, in_old, "category"),
        ),
        brand=pick_name(
            new.brands, codes(new, in_new, "brand"), old.brands, codes(old, in_old, "brand")
        ),
        price=floats("price"),
        margin=floats("margin"),
        order_value=floats("order_value"),
        available=available,
    )


@dataclass(frozen=True, eq=False)
class _Groups:
    """Items by group code (category or brand), as CSR arrays."""

    ptr: IntArray
    items: IntArray

    @classmethod
    def build(cls, codes: npt.NDArray[np.int32], size: int) -> _Groups:
        known = np.flatnonzero(codes >= 0)
        order = known[np.argsort(codes[known], kind="stable")]
        counts = np.bincount(codes[known], minlength=size) if size else np.zeros(0, np.int64)
        return cls(
            np.concatenate(([0], np.cumsum(counts))).astype(np.int64), order.astype(np.int64)
        )

    def members(self, groups: IntArray) -> IntArray:
        return self.items[concat_ranges(self.ptr[groups], self.ptr[groups + 1])]


def _best_per_group(
    codes: npt.NDArray[np.int32], size: int, scored: IntArray, relevance: FloatArray
) -> tuple[FloatArray, IntArray]:
    """The best relevance per group code, and the groups with a positive one.

    The array has one more slot, for the unknown group (code -1), kept at 0.
    """
    best = np.zeros(size + 1)
    group_codes = codes[scored]
    known = group_codes >= 0
    group_codes, values = group_codes[known], relevance[scored][known]
    if group_codes.size == 0:
        return best, np.zeros(0, dtype=np.int64)
    order = np.argsort(group_codes, kind="stable")
    group_codes, values = group_codes[order], values[order]
    starts = np.flatnonzero(np.concatenate(([True], group_codes[1:] != group_codes[:-1])))
    groups = group_codes[starts].astype(np.int64)
    best[groups] = np.maximum.reduceat(values, starts)
    return best, groups
