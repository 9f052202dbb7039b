"""Offline evaluation: time-ordered replay of held-out sessions, session-rec's protocol.

The protocol (Ludewig, Mauro, Latifi and Jannach, session-rec):

* items with fewer than ``min_item_support`` events and sessions shorter than
  ``min_session_length`` events are dropped, then sessions are split by time: those that end
  before the cut train, the others test; test events on items unknown to training are dropped,
  and test sessions left shorter than two events too;
* test events are sorted by session and time; for each session and each position ``i`` the
  ranker sees events ``1..i`` and ranks every training item for position ``i + 1``;
* HR@k: share of predictions whose target is in the top ``k``; MRR@k: mean of ``1 / rank``
  when the rank is at most ``k`` (else 0). Both are micro-averaged over all predictions. An
  item with no score at all is never "in the list" (no luck among ties at zero).

On top of that, per prediction, for multi-event data:

* conversion hit rate: among predictions whose session later adds to cart or converts on some
  item, the share whose top ``k`` holds at least one of those items;
* value captured: the value (margin, else price, else order value) of those items that the
  top ``k`` holds, as a share of the value of all of them; ``value_at_k`` is the same in money
  per such prediction;
* catalog coverage: distinct items recommended at least once over all training items.

The splits are in :mod:`.splits`, the reported figures in :mod:`.results`, and
:func:`~.metrics.precision_at_k` and :func:`~.metrics.ndcg_at_k` serve user-level
(non-session) evaluations.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import numpy as np

from target_personalize.engine.arrays import BoolArray, FloatArray, IntArray
from target_personalize.engine.evaluation.results import EvaluationReport, ModelResult, SplitInfo
from target_personalize.engine.evaluation.splits import prepare_split
from target_personalize.engine.ranking.baselines import VSKNN, MostPopular, ViewsItemKNN
from target_personalize.engine.ranking.contract import RankerBase
from target_personalize.engine.ranking.event_weights import CART_TYPES
from target_personalize.engine.ranking.index import top_k
from target_personalize.engine.ranking.interactions import (
    Interactions,
    interactions_from_store,
    to_epoch,
)
from target_personalize.engine.ranking.objectives import Objectives
from target_personalize.engine.ranking.query import Query
from target_personalize.engine.ranking.session_ranker import SessionRanker

if TYPE_CHECKING:
    from collections.abc import Mapping

    from target_personalize.engine.store.event_store import EventStore

__all__ = ["default_rankers", "evaluate", "evaluate_store"]

logger = logging.getLogger(__name__)

Progress = Callable[[int, int], None]


# Rankers


def default_rankers(
    *,
    objectives: Objectives | Mapping[str, float] | None = None,
    random_state: int | None = 0,
) -> list[tuple[str, RankerBase, Objectives]]:
    """The baselines and the engine's ranker, as the evaluation compares them.

    Returns:
        ``(label, ranker, objectives)`` triples: most popular, views-only item-kNN, V-SKNN,
        the session ranker on relevance alone, and (when ``objectives`` has a weight) the
        same ranker with those objectives.
    """
    ranker = SessionRanker(random_state=random_state)
    chosen = Objectives.parse(objectives)
    rows: list[tuple[str, RankerBase, Objectives]] = [
        ("most popular", MostPopular(random_state=random_state), Objectives()),
        ("views-only item-kNN", ViewsItemKNN(random_state=random_state), Objectives()),
        ("V-SKNN", VSKNN(random_state=random_state), Objectives()),
        ("session ranker", ranker, Objectives()),
    ]
    if not chosen.relevance_only:
        rows.append((f"session ranker {_label(chosen)}", ranker, chosen))
    return rows


def _label(objectives: Objectives) -> str:
    return f"({objectives.label()})"


# Evaluation


def evaluate(
    train: Interactions,
    test: Interactions,
    rankers: Sequence[tuple[str, RankerBase, Objectives]],
    *,
    k: int = 20,
    event_weights: Mapping[str, float] | None = None,
    key_conversion: str = "purchase",
    max_sessions: int | None = None,
    random_state: int = 0,
    source: str = "",
    cut: float | None = None,
    progress: Progress | None = None,
) -> EvaluationReport:
    """Fit every ranker on ``train`` and replay ``test`` (see the module docstring).

    Args:
        train: training interactions.
        test: test interactions on the same item vocabulary.
        rankers: ``(label, ranker, objectives)``; a ranker listed twice is fitted once.
        k: list length.
        event_weights: funnel event weights given to every ranker's fit.
        key_conversion: the conversion (conversion metrics also count add-to-cart).
        max_sessions: evaluate a random sample of this many test sessions (bounded runs).
        random_state: seed of that sample.
        source: description of the data, for the report.
        cut: the split time, for the report.
        progress: called with (done, total) predictions.

    Returns:
        The report.
    """
    sessions, starts = test.session_bounds()
    chosen = np.arange(sessions.size)
    if max_sessions is not None and sessions.size > max_sessions:
        rng = np.random.default_rng(random_state)
        chosen = np.sort(rng.choice(sessions.size, max_sessions, replace=False))
    per_model = int(sum(int(starts[s + 1] - starts[s]) - 1 for s in chosen))
    total = per_model * len(rankers)
    done = 0
    fitted: dict[int, float] = {}
    results: list[ModelResult] = []
    converting_types = {key_conversion, *CART_TYPES}
    for label, ranker, objectives in rankers:
        if id(ranker) not in fitted:
            started = time.perf_counter()
            ranker.fit(train, event_weights=event_weights, key_conversion=key_conversion)
            fitted[id(ranker)] = time.perf_counter() - started
        offset = done
        tally = replay(
            ranker,
            objectives,
            test,
            starts=starts,
            chosen=chosen,
            k=k,
            converting_types=converting_types,
            progress=_shifted(progress, offset, total),
        )
        result = tally.result(label, k, fitted[id(ranker)])
        done += per_model
        results.append(result)
        logger.info(
            "%s: HR@%d %.4f MRR@%d %.4f (%d predictions)",
            label,
            k,
            result.hit_rate,
            k,
            result.mrr,
            result.predictions,
        )
    split = _split_info(train, test, int(sessions.size), cut, source)
    return EvaluationReport(k=k, split=split, results=tuple(results), key_conversion=key_conversion)


def _split_info(
    train: Interactions, test: Interactions, test_sessions: int, cut: float | None, source: str
) -> SplitInfo:
    return SplitInfo(
        train_events=len(train),
        train_sessions=int(np.unique(train.session).size),
        test_events=len(test),
        test_sessions=test_sessions,
        items=int(np.count_nonzero(np.bincount(train.item, minlength=len(train.items)))),
        cut=datetime.fromtimestamp(cut, UTC).replace(tzinfo=None)
        if cut and math.isfinite(cut)
        else None,
        source=source,
        value_kind=train.items.value_kind(),
    )


def _shifted(progress: Progress | None, offset: int, total: int) -> Callable[[int], None] | None:
    if progress is None:
        return None

    def report(done: int) -> None:
        progress(offset + done, total)

    return report


def replay(
    ranker: RankerBase,
    objectives: Objectives,
    test: Interactions,
    *,
    starts: IntArray,
    chosen: IntArray,
    k: int,
    converting_types: set[str],
    progress: Callable[[int], None] | None = None,
) -> Tally:
    """Replay the ``chosen`` test sessions (bounds ``starts``) through a fitted ranker."""
    model_items = ranker.items
    n_train_items = len(model_items)
    # Test interactions share the training vocabulary; map event types onto the model's.
    kind_map = np.array([ranker._kind_index(t) for t in test.event_types] or [0], dtype=np.int64)
    converting = np.array([t in converting_types for t in test.event_types] or [False])
    value = model_items.value()
    known = np.bincount(ranker.data.item, minlength=n_train_items) > 0
    tally = Tally(
        value=np.where(np.isfinite(value) & (value > 0), value, 0.0),
        recommended=np.zeros(n_train_items, dtype=np.bool_),
        known=known,
    )
    visitors = test.visitors[test.session_visitor]
    for number, s in enumerate(chosen.tolist()):
        start, end = int(starts[s]), int(starts[s + 1])
        items = test.item[start:end].astype(np.int64)
        kinds = kind_map[test.kind[start:end]]
        ts = test.ts[start:end]
        converts = converting[test.kind[start:end]]
        history = ranker._history_rows(str(visitors[int(test.session[start])]))
        data = ranker.data
        for i in range(1, end - start):
            query = Query(
                items=items[:i],
                kinds=kinds[:i],
                ts=ts[:i],
                history_items=data.item[history].astype(np.int64),
                history_kinds=data.kind[history].astype(np.int64),
                history_ts=data.ts[history],
                now=float(ts[i - 1]),
            )
            began = time.perf_counter()
            score, _ = ranker._score(query, objectives)
            top = top_k(score[:n_train_items], k, known)
            seconds = time.perf_counter() - began
            probability = ranker._shown_probability(top, query)
            tally.add(top, int(items[i]), np.unique(items[i:][converts[i:]]), seconds, probability)
        tally.end_session()
        if progress is not None and number % 50 == 0:
            progress(tally.predictions)
    if progress is not None:
        progress(tally.predictions)
    return tally


#: Per-session sums a :class:`Tally` keeps, in the columns of ``Tally.sessions()``.
SESSION_COLUMNS = (
    "predictions",
    "hits",
    "reciprocal",
    "conversion_predictions",
    "conversion_hits",
    "value_total",
    "value_hit",
    "expected_value",
)


@dataclass
class Tally:
    """What the predictions of one ranker add up to, in total and per test session.

    Attributes:
        value: the value of each training item (0 when unknown).
        recommended: the items recommended at least once.
        known: the items with training interactions (the coverage universe).
    """

    value: FloatArray
    recommended: BoolArray
    known: BoolArray
    hits: int = 0
    reciprocal: float = 0.0
    predictions: int = 0
    conversion_predictions: int = 0
    conversion_hits: int = 0
    value_total: float = 0.0
    value_hit: float = 0.0
    expected_value: float = 0.0
    timings: list[float] = field(default_factory=list)
    per_session: list[tuple[float, ...]] = field(default_factory=list)
    _mark: tuple[float, ...] = (0.0,) * len(SESSION_COLUMNS)

    def _sums(self) -> tuple[float, ...]:
        return (
            self.predictions,
            self.hits,
            self.reciprocal,
            self.conversion_predictions,
            self.conversion_hits,
            self.value_total,
            self.value_hit,
            self.expected_value,
        )

    def add(
        self,
        top: IntArray,
        target: int,
        later: IntArray,
        seconds: float,
        probability: FloatArray | None = None,
    ) -> None:
        """One prediction: its top ``k``, the next item, the items the session converts on.

        ``probability`` is P(conversion) of the top items, for the list's expected value.
        """
        self.timings.append(seconds)
        if probability is not None:
            self.expected_value += float((probability * self.value[top]).sum())
        self.recommended[top] = True
        self.predictions += 1
        where = np.flatnonzero(top == target)
        if where.size:
            self.hits += 1
            self.reciprocal += 1.0 / (int(where[0]) + 1)
        if later.size:
            self.conversion_predictions += 1
            in_top = np.isin(later, top)
            self.conversion_hits += int(in_top.any())
            self.value_total += float(self.value[later].sum())
            self.value_hit += float(self.value[later[in_top]].sum())

    def end_session(self) -> None:
        """Close a test session: keep what its predictions added."""
        sums = self._sums()
        self.per_session.append(tuple(a - b for a, b in zip(sums, self._mark, strict=True)))
        self._mark = sums

    def sessions(self) -> FloatArray:
        """Per test session, the sums named by :data:`SESSION_COLUMNS` (one row each)."""
        return np.array(self.per_session, dtype=np.float64).reshape(-1, len(SESSION_COLUMNS))

    def result(self, label: str, k: int, fit_seconds: float) -> ModelResult:
        """The figures (coverage over the known items)."""
        known = self.known
        predictions, conversions = self.predictions, self.conversion_predictions
        has_value = bool(np.any(self.value > 0))
        times = np.array(self.timings) * 1000.0 if self.timings else np.zeros(1)
        return ModelResult(
            name=label,
            k=k,
            predictions=predictions,
            hit_rate=self.hits / predictions if predictions else 0.0,
            mrr=self.reciprocal / predictions if predictions else 0.0,
            conversion_predictions=conversions,
            conversion_hit_rate=self.conversion_hits / conversions if conversions else None,
            value_captured=self.value_hit / self.value_total
            if has_value and self.value_total > 0
            else None,
            value_at_k=self.value_hit / conversions if has_value and conversions else None,
            coverage=float(self.recommended[known].sum() / max(int(known.sum()), 1)),
            fit_seconds=fit_seconds,
            predict_ms=float(times.mean()),
            predict_p99_ms=float(np.percentile(times, 99)),
        )


def evaluate_store(
    store: EventStore,
    *,
    key_conversion: str = "purchase",
    k: int = 20,
    cut: datetime | None = None,
    test_days: float = 1.0,
    objectives: Objectives | Mapping[str, float] | None = None,
    event_weights: Mapping[str, float] | None = None,
    rankers: Sequence[tuple[str, RankerBase, Objectives]] | None = None,
    max_sessions: int | None = None,
    progress: Progress | None = None,
) -> EvaluationReport:
    """Evaluate the baselines and the engine's ranker on the store's events (time split).

    Args:
        store: the event store.
        key_conversion: the conversion to optimize.
        k: list length.
        cut: split time (naive UTC); default: see :func:`prepare_split`.
        test_days: length of the test period when ``cut`` is not given.
        objectives: objectives of the extra "session ranker (...)" row.
        event_weights: funnel event weights.
        rankers: rankers to compare instead of :func:`default_rankers`.
        max_sessions: evaluate a random sample of this many test sessions.
        progress: called with (done, total) predictions.

    Returns:
        The report.
    """
    data = interactions_from_store(store)
    train, test, at = prepare_split(
        data, cut=None if cut is None else to_epoch(cut), test_days=test_days
    )
    return evaluate(
        train,
        test,
        rankers or default_rankers(objectives=objectives),
        k=k,
        event_weights=event_weights,
        key_conversion=key_conversion,
        max_sessions=max_sessions,
        source=store.database_url,
        cut=at,
        progress=progress,
    )
