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

Also here: :func:`precision_at_k`, :func:`ndcg_at_k` and :func:`per_user_split` for
user-level (non-session) evaluations.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from target_personalize.engine.ranking.baselines import VSKNN, MostPopular, ViewsItemKNN
from target_personalize.engine.ranking.contract import RankerBase
from target_personalize.engine.ranking.event_weights import CART_TYPES
from target_personalize.engine.ranking.index import top_k
from target_personalize.engine.ranking.interactions import (
    Interactions,
    interactions_from_events,
    interactions_from_store,
    read_session_file,
)
from target_personalize.engine.ranking.objectives import Objectives
from target_personalize.engine.ranking.query import Query
from target_personalize.engine.ranking.session_ranker import SessionRanker

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from target_personalize.engine.store.event_store import EventStore

__all__ = [
    "EvaluationReport",
    "ModelResult",
    "SplitInfo",
    "default_rankers",
    "evaluate",
    "evaluate_store",
    "ndcg_at_k",
    "per_user_split",
    "precision_at_k",
    "prepare_fixed_split",
    "prepare_split",
    "read_split_file",
]

logger = logging.getLogger(__name__)

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
Progress = Callable[[int, int], None]
_DAY = 86_400.0


@dataclass(frozen=True)
class ModelResult:
    """One ranker's figures on the test sessions.

    Attributes:
        name: label of the ranker (with its objectives, if any).
        k: list length.
        predictions: next-item predictions made.
        hit_rate: HR@k.
        mrr: MRR@k.
        conversion_predictions: predictions whose session later carts or converts.
        conversion_hit_rate: share of those with a later-converted item in the top k
            (``None`` without such predictions).
        value_captured: share of the later-converted value that the top k holds (``None``
            without value data).
        value_at_k: that value in money, per conversion prediction.
        coverage: distinct recommended items over all training items.
        fit_seconds: time to fit.
        predict_ms: mean time per prediction (ms).
        predict_p99_ms: 99th percentile time per prediction (ms).
    """

    name: str
    k: int
    predictions: int
    hit_rate: float
    mrr: float
    conversion_predictions: int
    conversion_hit_rate: float | None
    value_captured: float | None
    value_at_k: float | None
    coverage: float
    fit_seconds: float
    predict_ms: float
    predict_p99_ms: float

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly form."""
        return {
            "name": self.name,
            "k": self.k,
            "predictions": self.predictions,
            f"hr@{self.k}": self.hit_rate,
            f"mrr@{self.k}": self.mrr,
            "conversion_predictions": self.conversion_predictions,
            f"conversion_hit_rate@{self.k}": self.conversion_hit_rate,
            f"value_captured@{self.k}": self.value_captured,
            f"value_at_{self.k}": self.value_at_k,
            f"coverage@{self.k}": self.coverage,
            "fit_seconds": self.fit_seconds,
            "predict_ms": self.predict_ms,
            "predict_p99_ms": self.predict_p99_ms,
        }


@dataclass(frozen=True)
class SplitInfo:
    """What the split holds.

    Attributes:
        train_events: item events used for training.
        train_sessions: training sessions.
        test_events: item events of the test sessions.
        test_sessions: test sessions.
        items: training items (the ranking universe).
        cut: the time split, if any (UTC).
        source: where the data came from.
        value_kind: which business value the items have (margin, price, order value, none).
    """

    train_events: int
    train_sessions: int
    test_events: int
    test_sessions: int
    items: int
    cut: datetime | None
    source: str
    value_kind: str

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly form."""
        return {
            "train_events": self.train_events,
            "train_sessions": self.train_sessions,
            "test_events": self.test_events,
            "test_sessions": self.test_sessions,
            "items": self.items,
            "cut": self.cut.isoformat() if self.cut else None,
            "source": self.source,
            "value_kind": self.value_kind,
        }


@dataclass(frozen=True)
class EvaluationReport:
    """The evaluation of several rankers on one split.

    Attributes:
        k: list length.
        split: the split.
        results: one result per ranker, in the order given.
        key_conversion: the conversion the objectives and conversion metrics use.
    """

    k: int
    split: SplitInfo
    results: tuple[ModelResult, ...]
    key_conversion: str = "purchase"
    protocol: str = field(
        default="session-rec next-item: every position, all training items, micro-averaged"
    )

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly form."""
        return {
            "k": self.k,
            "protocol": self.protocol,
            "key_conversion": self.key_conversion,
            "split": self.split.as_dict(),
            "results": [r.as_dict() for r in self.results],
        }

    def result(self, name: str) -> ModelResult:
        """The result of the ranker labelled ``name``.

        Raises:
            KeyError: if no ranker has that label.
        """
        for result in self.results:
            if result.name == name:
                return result
        raise KeyError(name)


# Splits


def prepare_split(
    data: Interactions,
    *,
    cut: float | None = None,
    test_days: float = 1.0,
    min_item_support: int = 5,
    min_session_length: int = 2,
) -> tuple[Interactions, Interactions, float]:
    """Filter and split by time, session-rec style.

    Args:
        data: all interactions.
        cut: split time (epoch seconds); default: ``test_days`` before the last event, or,
            when the data covers less than twice ``test_days``, the time by which 80% of the
            sessions have ended.
        test_days: length of the test period.
        min_item_support: items with fewer events are dropped first.
        min_session_length: shorter sessions are dropped.

    Returns:
        (train, test, cut).
    """
    filtered = data.filter_support(min_item_support, min_session_length)
    if len(filtered) == 0:
        return filtered, filtered, math.nan
    if cut is None:
        first, last = float(filtered.ts.min()), float(filtered.ts.max())
        if last - first >= 2 * test_days * _DAY:
            cut = last - test_days * _DAY
        else:
            ends = filtered.session_end_times()
            cut = float(np.quantile(ends[np.isfinite(ends)], 0.8))
    train, test = filtered.split_by_time(cut)
    return train, _clean_test(train, test, min_session_length), cut


def prepare_fixed_split(
    train: Interactions, test: Interactions, *, min_session_length: int = 2
) -> tuple[Interactions, Interactions]:
    """Use a given split: test events on items unknown to training and short sessions go.

    ``test`` is re-indexed onto the training items.
    """
    return train, _clean_test(train, test.with_items(train.items), min_session_length)


def _clean_test(train: Interactions, test: Interactions, min_length: int) -> Interactions:
    known = np.bincount(train.item, minlength=len(train.items)) > 0
    kept = test.restrict_items(known)
    return kept._drop_short(min_length)


def read_split_file(path: str | Path, *, items: Any = None) -> Interactions:
    """Read one side of a fixed split: session-rec TSV or canonical events (JSON lines).

    Files whose first line is a tab-separated header with ``SessionId`` are session-rec's
    format; anything else is read as canonical events, one JSON object per line.
    """
    target = Path(path)
    with target.open(encoding="utf-8") as handle:
        first = handle.readline()
    if "\t" in first and "SessionId" in first:
        return read_session_file(target, items=items)
    import json  # noqa: PLC0415

    def records() -> Iterable[dict[str, Any]]:
        with target.open(encoding="utf-8") as lines:
            for line in lines:
                if line.strip():
                    yield json.loads(line)

    return interactions_from_events(records())


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
    parts = [
        f"{name} {weight:g}"
        for name, weight in (("conversion", objectives.conversion), ("margin", objectives.margin))
        if weight
    ]
    return "(" + ", ".join(parts) + ")"


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
        result = _replay(
            ranker,
            objectives,
            test,
            starts=starts,
            chosen=chosen,
            k=k,
            converting_types=converting_types,
            label=label,
            fit_seconds=fitted[id(ranker)],
            progress=_shifted(progress, offset, total),
        )
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
    split = SplitInfo(
        train_events=len(train),
        train_sessions=int(np.unique(train.session).size),
        test_events=len(test),
        test_sessions=int(sessions.size),
        items=int(np.count_nonzero(np.bincount(train.item, minlength=len(train.items)))),
        cut=datetime.fromtimestamp(cut, UTC).replace(tzinfo=None)
        if cut and math.isfinite(cut)
        else None,
        source=source,
        value_kind=train.items.value_kind(),
    )
    return EvaluationReport(k=k, split=split, results=tuple(results), key_conversion=key_conversion)


def _shifted(progress: Progress | None, offset: int, total: int) -> Callable[[int], None] | None:
    if progress is None:
        return None

    def report(done: int) -> None:
        progress(offset + done, total)

    return report


def _replay(
    ranker: RankerBase,
    objectives: Objectives,
    test: Interactions,
    *,
    starts: IntArray,
    chosen: IntArray,
    k: int,
    converting_types: set[str],
    label: str,
    fit_seconds: float,
    progress: Callable[[int], None] | None,
) -> ModelResult:
    model_items = ranker.items
    n_train_items = len(model_items)
    # Test interactions share the training vocabulary; map event types onto the model's.
    kind_map = np.array([ranker._kind_index(t) for t in test.event_types] or [0], dtype=np.int64)
    converting = np.array([t in converting_types for t in test.event_types] or [False])
    value = model_items.value()
    value = np.where(np.isfinite(value) & (value > 0), value, 0.0)
    has_value = bool(np.any(value > 0))
    known = np.bincount(ranker.data.item, minlength=n_train_items) > 0
    recommended = np.zeros(n_train_items, dtype=np.bool_)
    hits = 0
    reciprocal = 0.0
    predictions = 0
    conversion_predictions = 0
    conversion_hits = 0
    value_total = 0.0
    value_hit = 0.0
    timings: list[float] = []
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
            score = score[:n_train_items]
            top = top_k(score, k, known)
            timings.append(time.perf_counter() - began)
            recommended[top] = True
            predictions += 1
            target = int(items[i])
            where = np.flatnonzero(top == target)
            if where.size:
                hits += 1
                reciprocal += 1.0 / (int(where[0]) + 1)
            later = np.unique(items[i:][converts[i:]])
            if later.size:
                conversion_predictions += 1
                in_top = np.isin(later, top)
                conversion_hits += int(in_top.any())
                value_total += float(value[later].sum())
                value_hit += float(value[later[in_top]].sum())
        if progress is not None and number % 50 == 0:
            progress(predictions)
    if progress is not None:
        progress(predictions)
    times = np.array(timings) * 1000.0 if timings else np.zeros(1)
    return ModelResult(
        name=label,
        k=k,
        predictions=predictions,
        hit_rate=hits / predictions if predictions else 0.0,
        mrr=reciprocal / predictions if predictions else 0.0,
        conversion_predictions=conversion_predictions,
        conversion_hit_rate=conversion_hits / conversion_predictions
        if conversion_predictions
        else None,
        value_captured=value_hit / value_total if has_value and value_total > 0 else None,
        value_at_k=value_hit / conversion_predictions
        if has_value and conversion_predictions
        else None,
        coverage=float(recommended[known].sum() / max(int(known.sum()), 1)),
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
    from target_personalize.engine.ranking.interactions import to_epoch  # noqa: PLC0415

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


# User-level metrics and split


def precision_at_k(recommended: Sequence[str], relevant: Iterable[str], k: int = 20) -> float:
    """Share of the first ``k`` recommendations that are relevant."""
    wanted = set(relevant)
    if k <= 0:
        return 0.0
    return sum(1 for item in list(recommended)[:k] if item in wanted) / k


def ndcg_at_k(recommended: Sequence[str], relevant: Iterable[str], k: int = 20) -> float:
    """Normalised discounted cumulative gain of the first ``k`` recommendations (binary)."""
    wanted = set(relevant)
    if not wanted or k <= 0:
        return 0.0
    gain = sum(
        1.0 / math.log2(rank + 2)
        for rank, item in enumerate(list(recommended)[:k])
        if item in wanted
    )
    ideal = sum(1.0 / math.log2(rank + 2) for rank in range(min(len(wanted), k)))
    return gain / ideal


def per_user_split(
    data: Interactions, *, test_share: float = 0.2
) -> tuple[Interactions, Interactions]:
    """Hold out each returning visitor's latest sessions; everything else trains.

    For every visitor with two or more sessions, the last ones by end time (about
    ``test_share`` of them, at least one) go to test.

    Returns:
        (train, test).
    """
    ends = data.session_end_times()
    present = np.unique(data.session)
    visitor = data.session_visitor[present]
    order = np.lexsort((ends[present], visitor))
    sorted_sessions, sorted_visitors = present[order], visitor[order]
    counts = np.bincount(sorted_visitors, minlength=data.visitors.size)
    first = np.concatenate(([0], np.cumsum(counts)[:-1]))
    rank_from_end = counts[sorted_visitors] - (
        np.arange(sorted_sessions.size) - first[sorted_visitors]
    )
    held = np.maximum(np.floor(counts * test_share), 1).astype(np.int64)
    in_test = (counts[sorted_visitors] >= 2) & (rank_from_end <= held[sorted_visitors])
    test_sessions = np.zeros(data.n_sessions, dtype=np.bool_)
    test_sessions[sorted_sessions[in_test]] = True
    rows = test_sessions[data.session]
    return data.take(~rows), data.take(rows)
