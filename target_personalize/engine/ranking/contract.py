"""The ranker contract: :class:`RankerBase`, what every ranker shares.

A ranker is fitted from the event store (or from :class:`Interactions`), then answers
``recommend`` (top items for a user or a session) and ``rank`` (re-rank given candidates, e.g.
search results). ``observe`` feeds it live events: the session state changes at once, with no
refit. Subclasses only say how relevant every item is to a query (:meth:`RankerBase._relevance`)
and what they build when fitted (:meth:`RankerBase._fit`); the base class adds the rest, the
same way for every ranker, from parts that each keep one concern:

* :mod:`.vocabulary`: item ids and event types to indexes, grown by live events;
* :mod:`.live`: the live sessions (``observe``, ``adopt_live``);
* :mod:`.query`: the current session and the visitor's history at a request;
* :mod:`.cold_start` (rankers with ``cold_start = True``): popular and trending items
  narrowed by the session's categories, brands and search words; items without
  interactions reached through their category and brand;
* :mod:`.objectives`: expected values, ``relevance * P**(w_c + w_m + w_r) * margin**w_m *
  price**w_r``, P from the items' rates or a :class:`~.objectives.ConversionModel`;
* :mod:`.filters`, then :mod:`.persistence` (``.npz`` arrays + a ``.json`` description, no
  pickle) and :mod:`.incremental` (``update``).

Errors are :class:`~target_personalize.engine.RankerError` and its subclasses
(:mod:`target_personalize.engine.exceptions`).
"""

from __future__ import annotations

import abc
import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Self

import numpy as np
import numpy.typing as npt

from target_personalize.engine.arrays import BoolArray, FloatArray, IntArray
from target_personalize.engine.exceptions import ModelNotFittedError, RankerError
from target_personalize.engine.ranking.cold_start import ColdStart
from target_personalize.engine.ranking.event_weights import (
    DEFAULT_EVENT_WEIGHTS,
    resolve_event_weights,
)
from target_personalize.engine.ranking.filters import filter_mask
from target_personalize.engine.ranking.incremental import max_loaded_at, merge_interactions
from target_personalize.engine.ranking.index import top_k
from target_personalize.engine.ranking.interactions import (
    Interactions,
    ItemTable,
    interactions_from_store,
    training_window_start,
)
from target_personalize.engine.ranking.live import LiveSessions
from target_personalize.engine.ranking.objectives import ConversionModel, ItemFactors, Objectives
from target_personalize.engine.ranking.persistence import (
    model_payload,
    ranker_from_payload,
    read_model,
    write_model,
)
from target_personalize.engine.ranking.query import Query, SessionHistory
from target_personalize.engine.ranking.shown_conversion import ShownConversion, shown_conversion
from target_personalize.engine.ranking.vocabulary import Vocabulary

if TYPE_CHECKING:
    from target_personalize.engine.store.event_store import EventStore

__all__ = ["RankerBase", "ScoredItem", "check_random_state"]

logger = logging.getLogger(__name__)


def check_random_state(random_state: int | np.random.Generator | None) -> np.random.Generator:
    """A numpy ``Generator`` from a seed, a generator, or ``None`` (fresh entropy)."""
    if isinstance(random_state, np.random.Generator):
        return random_state
    return np.random.default_rng(random_state)


@dataclass(frozen=True)
class ScoredItem:
    """One ranked item.

    Attributes:
        item_id: the item.
        score: the final score (relevance times the objective factors).
        relevance: the relevance part, scaled so the best item of the answer is 1.
        conversion: P(key conversion) of the item: its smoothed rate, or the conversion model's.
        value: the item's business value (margin, else price, else order value), or ``None``.
        engagement: the item's mean engagement (``ItemTable.engagement_kind``), or ``None``
            when unknown (always without an engagement signal in the store).
    """

    item_id: str
    score: float
    relevance: float
    conversion: float
    value: float | None
    engagement: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly form."""
        return {
            "item_id": self.item_id,
            "score": self.score,
            "relevance": self.relevance,
            "conversion": self.conversion,
            "value": self.value,
            "engagement": self.engagement,
        }


class RankerBase(abc.ABC):
    """The contract every ranker follows.

    Subclasses implement :meth:`_fit` and :meth:`_relevance`, and may save what they build
    (:meth:`_arrays`, :meth:`_restore`); they read :attr:`data`, :attr:`items` and
    ``_kind_weight`` (the funnel weight of each event type index).

    Args:
        random_state: seed or generator for anything random (sampling, tie noise).
        history_sessions: how many earlier sessions of a known visitor count as history.
        max_live_sessions: live sessions kept in memory (least recently used are dropped).

    Attributes:
        conversion_model: supplies P(key conversion | session) for the items a query reaches
            (``None``: the items' smoothed conversion rates). Not saved with the model.
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
        self.event_weights: dict[str, float] = dict(DEFAULT_EVENT_WEIGHTS)
        self.key_conversion = "purchase"
        self.objectives = Objectives()
        self.conversion_model: ConversionModel | None = None
        self.fitted_at: float = math.nan
        self.loaded_until: datetime | None = None
        #: Fitted on the events of this many days back from the store's latest (None: all).
        self.train_window_days: float | None = None
        self._vocabulary: Vocabulary | None = None
        self._live = LiveSessions(max_live_sessions, self.max_session_events)

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
        """The training interactions (with the items and event types seen live).

        Raises:
            ModelNotFittedError: before fit or load.
        """
        return self._fitted.data

    @property
    def items(self) -> ItemTable:
        """The item vocabulary (training items, catalog items and items seen live)."""
        return self._fitted.items

    @property
    def _fitted(self) -> Vocabulary:
        if self._vocabulary is None:
            raise ModelNotFittedError(f"{self.name}: call fit() or load() first")
        return self._vocabulary

    @property
    def _kind_weight(self) -> FloatArray:
        """The funnel weight of each event type index."""
        return self._fitted.kind_weight

    def fit(
        self,
        data: EventStore | Interactions,
        *,
        event_weights: Mapping[str, float] | None = None,
        key_conversion: str | None = None,
        objectives: Objectives | Mapping[str, float] | None = None,
        train_window_days: float | None = None,
    ) -> Self:
        """Fit from the store (or from interactions already read).

        Args:
            data: an :class:`~target_personalize.engine.EventStore` or :class:`Interactions`.
            event_weights: weight in [0, 1] per event type, as funnel mining produces them
                (the key conversion has 1.0). Types it lacks keep :data:`DEFAULT_EVENT_WEIGHTS`.
            key_conversion: the conversion to optimize; by default the type weighted 1.0 in
                ``event_weights``, else ``purchase``.
            objectives: default objective weights for requests that give none.
            train_window_days: read only the events of this many days back from the store's
                latest event (:func:`training_window_start`); ``None``: every event. Kept with
                the model: :meth:`update` reads the moved window again.

        Returns:
            The fitted ranker.

        Raises:
            RankerError: if an event weight is outside [0, 1], or the window is not a
                positive number of days.
        """
        started = time.perf_counter()
        self._set_weights(event_weights, key_conversion)
        self.objectives = Objectives.parse(objectives)
        if isinstance(data, Interactions):
            if train_window_days is not None:
                raise RankerError(
                    "a training window applies to a store's events: pass the store, or "
                    "interactions already limited to the window"
                )
            interactions = data
        else:
            self.loaded_until = max_loaded_at(data)
            since = None
            if train_window_days is not None:
                since = training_window_start(data, train_window_days)
            interactions = interactions_from_store(data, since=since)
        self.train_window_days = train_window_days
        self._fit_all(interactions)
        if not isinstance(data, Interactions):
            self._learn_shown(data)
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
        else comes from the model. Falls back to a full fit when the model has no load time,
        and fits again on its window when it has one (:attr:`train_window_days`): the window
        moves with the latest event, and sessions that left it must leave the model.

        Returns:
            The refreshed ranker.
        """
        since = self.loaded_until
        latest = max_loaded_at(store)
        if (
            self._vocabulary is not None
            and since is not None
            and (latest is None or latest <= since)
        ):
            return self  # nothing loaded since
        if self._vocabulary is None or since is None or self.train_window_days is not None:
            return self.fit(
                store,
                event_weights=self.event_weights,
                key_conversion=self.key_conversion,
                objectives=self.objectives,
                train_window_days=self.train_window_days,
            )
        fresh = interactions_from_store(store, min_loaded_at=since)
        merged = merge_interactions(self._vocabulary.data, fresh)
        self.loaded_until = latest
        self._fit_all(merged)
        self._learn_shown(store)
        logger.info(
            "Updated %s with %d item events of %d sessions", self.name, len(fresh), fresh.n_sessions
        )
        return self

    def _set_weights(
        self, event_weights: Mapping[str, float] | None, key_conversion: str | None
    ) -> None:
        self.event_weights, self.key_conversion = resolve_event_weights(
            event_weights, key_conversion
        )

    @property
    def conversion_source(self) -> dict[str, Any]:
        """Where the dials' P(conversion) comes from (``source``), for fit output and model info.

        ``impressions`` (P(buy | shown), with what it was learnt from), ``item rates`` (each
        item's smoothed conversion rate), or the name of another conversion model.
        """
        model = self.conversion_model
        if isinstance(model, ShownConversion):
            return {"source": "impressions", **model.summary}
        if model is not None:
            return {"source": type(model).__name__}
        return {"source": "item rates"}

    def _learn_shown(self, store: EventStore) -> None:
        """P(buy | shown) from the store's impressions supplies the dials, given enough of it."""
        learnt = shown_conversion(self, store)
        if learnt is not None:
            self.conversion_model = learnt
        elif isinstance(self.conversion_model, ShownConversion):
            self.conversion_model = None

    def _fit_all(self, data: Interactions) -> None:
        previous = self._vocabulary
        self._prepare(data)
        self._fit(data)
        self.fitted_at = time.time()
        if previous is not None and len(self._live):
            self._remap_live(previous.items, previous.data.event_types)

    def _prepare(self, data: Interactions) -> None:
        """What every ranker keeps besides its own structures, for ``data``."""
        self._vocabulary = Vocabulary(data, self.event_weights)
        self._factors = ItemFactors.build(data, self.key_conversion)
        self._cold = ColdStart(data)
        self._now = float(data.ts.max()) if len(data) else time.time()
        self._history = SessionHistory(data, self.history_sessions, self._now)

    @abc.abstractmethod
    def _fit(self, data: Interactions) -> None:
        """Build the ranker's own structures from the training interactions."""

    @abc.abstractmethod
    def _relevance(self, query: Query) -> FloatArray:
        """A non-negative relevance score per item of the vocabulary (0 = no signal)."""

    # Live events

    def observe(self, event: Mapping[str, Any]) -> None:
        """Add one canonical event to its live session; the next answer reflects it.

        The session is the event's ``session_id``, else its visitor's live session. Item
        ids the model has never seen join the vocabulary (with their category and brand).

        Raises:
            ModelNotFittedError: before fit or load.
        """
        self._fitted  # noqa: B018 - raises when not fitted
        self._live.observe(event, kind_of=self._kind_index, item_of=self._item_index, now=self._now)

    def adopt_live(self, previous: RankerBase) -> None:
        """Take over the live sessions of ``previous``, the model this one replaces.

        For a model refreshed while serving: the sessions observed so far (including while
        this one was fitted) keep answering, their items pointed at this model's vocabularies.

        Raises:
            ModelNotFittedError: before fit or load.
        """
        self._fitted  # noqa: B018 - raises when not fitted
        self._live.take_over(previous._live)
        if len(self._live):
            self._remap_live(previous.items, previous.data.event_types)

    def sync_live(
        self,
        session_key: str,
        events: Sequence[Mapping[str, Any]],
        *,
        replace: bool,
        visitor: str | None = None,
    ) -> None:
        """Bring the live session ``session_key`` in step with state shared by several servers.

        Args:
            session_key: the session (its ``session_id``, else ``<visitor>#live``).
            events: its events not observed here yet, oldest first (all of them with ``replace``).
            replace: forget what this ranker holds of the session before observing ``events``.
            visitor: a user whose latest session this is (their requests without a session
                id are answered from it).

        Raises:
            ModelNotFittedError: before fit or load.
        """
        if replace:
            self._live.forget(session_key)
        for event in events:
            self.observe(event)
        if visitor is not None:
            self._live.point(visitor, session_key)

    def holds_live(self, session_key: str) -> bool:
        """Whether the live session ``session_key`` is held in memory."""
        return session_key in self._live

    def forget_live(self, session_key: str | None, visitor: str | None = None) -> None:
        """Drop a live session and the visitor's pointer to it (answers fall back to the model)."""
        self._live.forget(session_key, visitor)

    def _remap_live(self, previous: ItemTable, event_types: tuple[str, ...]) -> None:
        """Point live sessions at the new vocabularies (items seen only live are re-added)."""
        self._live.remap(previous, event_types, kind_of=self._kind_index, item_of=self._item_index)

    def _kind_index(self, name: str) -> int:
        return self._fitted.kind(name)

    def _item_index(self, raw: Mapping[str, Any] | str) -> int:
        vocabulary = self._fitted
        index, added = vocabulary.item(raw)
        if added:
            items = vocabulary.items
            self._factors.add_item(int(items.category[index]), float(items.price[index]))
            self._cold.add_item(items)
        return index

    def _lookup(self, item_ids: Sequence[str]) -> IntArray:
        return self._fitted.lookup(item_ids)

    # Queries and scores

    def _query(self, user_id: str | None, session_id: str | None) -> Query:
        if user_id is None and session_id is None:
            raise RankerError("give a user_id or a session_id")
        self._fitted  # noqa: B018 - raises when not fitted
        live = self._live.of_request(user_id, session_id)
        if live is None or not (live.categories or live.brands):
            return self._history.query(user_id, session_id, live)
        vocabulary = self._fitted
        return self._history.query(
            user_id,
            session_id,
            live,
            categories=vocabulary.category_codes(live.categories),
            brands=vocabulary.brand_codes(live.brands),
        )

    def knows(self, user_id: str | None = None, session_id: str | None = None) -> bool:
        """Whether the ranker has items of this user or session (else it answers cold start).

        Raises:
            RankerError: without user_id and session_id.
            ModelNotFittedError: before fit or load.
        """
        return not self._query(user_id, session_id).empty

    def _history_rows(self, visitor: str) -> IntArray:
        """Rows of the visitor's last ``history_sessions`` training sessions, oldest first."""
        self._fitted  # noqa: B018 - raises when not fitted
        return self._history.history_rows(visitor)

    def _score(self, query: Query, objectives: Objectives) -> tuple[FloatArray, FloatArray]:
        """(final scores, relevance scaled to a maximum of 1) for every item."""
        return self._finish(self._relevance(query), query, objectives)

    def _finish(
        self, relevance: FloatArray, query: Query, objectives: Objectives
    ) -> tuple[FloatArray, FloatArray]:
        """:meth:`_score` from the raw relevance: padded, scaled, cold start, objectives."""
        n = len(self.items)
        if relevance.size < n:
            relevance = np.concatenate([relevance, np.zeros(n - relevance.size)])
        top = float(relevance.max()) if relevance.size else 0.0
        if top > 0:
            relevance = relevance / top
        if self.cold_start:
            relevance = self._cold.apply(relevance, query, self.items)
        ratio = None
        if objectives.probability_power and self.conversion_model is not None:
            ratio = self._factors.conversion_ratio(self._probability(query, relevance))
        return objectives.score(relevance, self._factors, ratio), relevance

    def _probability(self, query: Query, relevance: FloatArray) -> FloatArray:
        """P(conversion) of every item: the conversion model's for the items reached."""
        probability = self._factors.conversion.copy()
        if self.conversion_model is not None:
            reached = np.flatnonzero(relevance > 0)
            if reached.size:
                probability[reached] = self.conversion_model.probability(reached, query)
        return probability

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
            mask = filter_mask(self.items, filters, self._lookup)
            if exclude_seen:
                mask[query.items] = False
                mask[query.history_items] = False
        chosen = top_k(score, k, mask)
        probability = self._shown_probability(chosen, query)
        return [
            self._scored(int(i), score, relevance, float(p))
            for i, p in zip(chosen, probability, strict=True)
        ]

    def _shown_probability(self, items: IntArray, query: Query) -> FloatArray:
        """P(conversion) of the items shown (the conversion model's when one is set)."""
        if self.conversion_model is None or not items.size:
            return self._factors.conversion[items]
        return self.conversion_model.probability(items, query)

    def _scored(
        self, item: int, score: FloatArray, relevance: FloatArray, probability: float
    ) -> ScoredItem:
        value = float(self._factors.value[item])
        engagement = float(self._factors.engagement[item])
        return ScoredItem(
            item_id=str(self.items.item_ids[item]),
            score=float(score[item]),
            relevance=float(relevance[item]),
            conversion=probability,
            value=value if math.isfinite(value) else None,
            engagement=engagement if math.isfinite(engagement) else None,
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
        known = found[found >= 0]
        probability = dict(
            zip(known.tolist(), self._shown_probability(known, query).tolist(), strict=True)
        )
        ranked: list[ScoredItem] = []
        for i in order.tolist():
            if found[i] >= 0:
                item = int(found[i])
                ranked.append(self._scored(item, score, relevance, probability[item]))
            else:
                ranked.append(ScoredItem(str(candidates[i]), 0.0, 0.0, 0.0, None))
        return ranked

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
        return model_payload(self, self._fitted.without_live_items, self._arrays())

    @classmethod
    def from_payload(cls, meta: Mapping[str, Any], arrays: Mapping[str, npt.NDArray[Any]]) -> Self:
        """The inverse of :meth:`to_payload`.

        Raises:
            ModelFormatError: for another format version or another kind of ranker.
        """
        return ranker_from_payload(cls, meta, arrays)

    def save(self, path: str | Path) -> Path:
        """Save to ``path`` (a ``.npz`` file) and a ``.json`` description beside it.

        Returns:
            The ``.npz`` path.

        Raises:
            ModelNotFittedError: before fit or load.
        """
        meta, arrays = self.to_payload()
        return write_model(path, meta, arrays)

    @classmethod
    def load(cls, path: str | Path) -> Self:
        """Load a ranker saved by :meth:`save` (``allow_pickle`` stays off).

        Raises:
            ModelFormatError: if the files are missing, unreadable, or hold another ranker.
        """
        meta, arrays = read_model(path)
        return cls.from_payload(meta, arrays)
