"""Features of a session's candidate items, for the second stage (:mod:`.rerank`).

Every feature is computed for all candidates of one request at once (numpy, no Python loop
over candidates). They come from what the first stage and the funnel already know:

* the first stage: final score and rank, and its three parts (neighbour sessions, sequential
  rules from the latest item, reminders of the session's own items), the cold-start share,
  rules from the second-latest item (co-occurrence with the items just before);
* the session: how often and how recently it touched the candidate, the strongest funnel
  weight of the event types it gave it (implicit signals: a cart says more than a view), its
  length, whether the candidate shares the latest item's category, the share of the session
  in the candidate's category, the candidate's price relative to the session's mean price;
* the item: popularity overall and on the last training day, days since it was last seen,
  IDF, its conversion rate shrunk towards its category's (:class:`~.objectives.ItemFactors`),
  its log price;
* co-occurrence: the cosine over training sessions between the candidate and the latest item,
  and its maximum and mean over the session's latest 10 distinct items.

Unknown values (no price, no category) are NaN, which LightGBM handles as missing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from scipy import sparse

from target_personalize.engine.arrays import BoolArray, FloatArray, IntArray
from target_personalize.engine.ranking.index import top_k
from target_personalize.engine.ranking.objectives import Objectives

if TYPE_CHECKING:
    from target_personalize.engine.ranking.interactions import Interactions
    from target_personalize.engine.ranking.query import Query
    from target_personalize.engine.ranking.session_ranker import SessionRanker

__all__ = ["FEATURE_NAMES", "Candidates", "ItemStats", "candidate_features", "first_stage"]

_DAY = 86_400.0

#: Column names of :func:`candidate_features`, in order.
FEATURE_NAMES: tuple[str, ...] = (
    "score",
    "rank",
    "neighbours",
    "rules_latest",
    "remind",
    "cold_start",
    "rules_previous",
    "session_count",
    "steps_since_seen",
    "session_kind_weight",
    "log_popularity",
    "log_recent_popularity",
    "days_since_seen",
    "idf",
    "conversion_rate",
    "log_price",
    "price_vs_session",
    "same_category_as_latest",
    "session_category_share",
    "session_length",
    "session_distinct",
    "history_length",
    "candidates_scored",
    "log_transitions_latest",
    "transition_share_latest",
    "transition_share_previous",
    "transition_share_back",
    "cooccurrence_latest",
    "cooccurrence_max",
    "cooccurrence_mean",
)

#: Latest distinct session items the co-occurrence features compare a candidate with.
_COOCCURRENCE_ITEMS = 10


@dataclass(frozen=True)
class ItemStats:
    """Per-item figures of the training data the features read.

    Attributes:
        log_popularity: ``log1p`` of the item's events.
        log_recent: ``log1p`` of its events on the last day of the data.
        last_seen: time of its latest event (NaN without any).
        transitions: counts of item ``a`` directly followed by item ``b`` in a session.
        backward: the same, transposed (``b`` directly preceded by ``a``).
        out_degree: transitions leaving each item.
        cooccurrence: cosine of items over sessions (sessions holding both over the root of
            the product of the sessions holding each), no diagonal.
    """

    log_popularity: FloatArray
    log_recent: FloatArray
    last_seen: FloatArray
    transitions: sparse.csr_matrix
    backward: sparse.csr_matrix
    out_degree: FloatArray
    cooccurrence: sparse.csr_matrix

    @classmethod
    def build(cls, data: Interactions) -> ItemStats:
        """The figures of every item of ``data``'s vocabulary."""
        n = len(data.items)
        counts = np.bincount(data.item, minlength=n).astype(np.float64)
        if len(data):
            recent_rows = data.ts >= float(data.ts.max()) - _DAY
            recent = np.bincount(data.item[recent_rows], minlength=n).astype(np.float64)
        else:
            recent = np.zeros(n)
        last_seen = np.full(n, -np.inf)
        np.maximum.at(last_seen, data.item, data.ts)
        last_seen[~np.isfinite(last_seen)] = np.nan
        same = data.session[1:] == data.session[:-1]
        moved = same & (data.item[1:] != data.item[:-1])
        transitions = sparse.csr_matrix(
            (np.ones(int(moved.sum())), (data.item[:-1][moved], data.item[1:][moved])),
            shape=(n, n),
        )
        transitions.sum_duplicates()
        transitions.sort_indices()
        backward = transitions.T.tocsr()
        backward.sort_indices()
        out_degree = np.asarray(transitions.sum(axis=1)).ravel().astype(np.float64)
        return cls(
            np.log1p(counts),
            np.log1p(recent),
            last_seen,
            transitions,
            backward,
            out_degree,
            _cosine(data, n),
        )

    def successors(self, item: int, candidates: IntArray) -> FloatArray:
        """Transitions from ``item`` to each candidate (0 for an item it does not know)."""
        return _row_lookup(self.transitions, item, candidates)

    def predecessors(self, item: int, candidates: IntArray) -> FloatArray:
        """Transitions from each candidate to ``item``."""
        return _row_lookup(self.backward, item, candidates)


@dataclass(frozen=True)
class Candidates:
    """The first stage's answer to one request.

    Attributes:
        items: the candidates, best first.
        score: the first stage's final score of every item.
        parts: its neighbour, rules and reminder parts of every item (see
            :meth:`SessionRanker.relevance_parts`).
        relevance: the relevance scaled to a maximum of 1, every item.
    """

    items: IntArray
    score: FloatArray
    parts: tuple[FloatArray, FloatArray, FloatArray]
    relevance: FloatArray


def first_stage(
    ranker: SessionRanker,
    query: Query,
    n: int,
    known: BoolArray | None,
    objectives: Objectives,
) -> Candidates:
    """The ``n`` best items of ``ranker`` for ``query`` (among the ``known`` ones, a mask)."""
    parts = ranker.relevance_parts(query)
    raw = parts[0] + parts[1] + parts[2]
    score, relevance = ranker._finish(raw, query, objectives)
    mask = None if known is None else _pad_mask(known, score.size)
    return Candidates(top_k(score, n, mask), score, parts, relevance)


def candidate_features(
    ranker: SessionRanker, stats: ItemStats, query: Query, found: Candidates
) -> FloatArray:
    """One row of :data:`FEATURE_NAMES` per candidate of ``found``."""
    c = found.items
    n_items = found.score.size
    knn, rules, remind = (_pad(p, n_items, 0.0)[c] for p in found.parts)
    raw_top = float((found.parts[0] + found.parts[1] + found.parts[2]).max(initial=0.0))
    cold = found.relevance[c] - (knn + rules + remind) / (raw_top if raw_top > 0 else 1.0)
    session = query.items
    length = session.size
    # Rules from the second-latest distinct item.
    previous = np.zeros(c.size)
    distinct_latest = _latest_distinct(session, 2)
    if distinct_latest.size == 2:
        targets, weights = ranker._rules.sparse_scores(distinct_latest[1:], np.ones(1))
        if targets.size:
            where = np.minimum(np.searchsorted(targets, c), targets.size - 1)
            previous = np.where(targets[where] == c, weights[where], 0.0)
            top = float(weights.max(initial=0.0))
            if top > 0:
                previous = previous / top
    # Session counts, steps since last seen, strongest funnel weight of the candidate.
    count = np.zeros(c.size)
    steps = np.full(c.size, np.nan)
    kind_weight = np.zeros(c.size)
    if length:
        order = np.argsort(c, kind="stable")
        sorted_c = c[order]
        at = np.searchsorted(sorted_c, session)
        at = np.minimum(at, c.size - 1)
        hit = sorted_c[at] == session
        slots = order[at[hit]]
        count = np.bincount(slots, minlength=c.size).astype(np.float64)
        step_of_event = (length - np.arange(length))[hit].astype(np.float64)
        best = np.full(c.size, np.inf)
        np.minimum.at(best, slots, step_of_event)
        steps = np.where(np.isfinite(best), best, np.nan)
        weights_of_event = ranker._kind_weight[query.kinds][hit]
        np.maximum.at(kind_weight, slots, weights_of_event)
    items = ranker.items
    category = _pad(items.category.astype(np.float64), n_items, -1.0)[c]
    price = _pad(items.price.astype(np.float64), n_items, np.nan)[c]
    session_prices = _pad(items.price.astype(np.float64), n_items, np.nan)[session]
    session_prices = session_prices[np.isfinite(session_prices) & (session_prices > 0)]
    mean_price = float(session_prices.mean()) if session_prices.size else np.nan
    session_categories = _pad(items.category.astype(np.float64), n_items, -1.0)[session]
    latest_category = float(session_categories[-1]) if length else -1.0
    if latest_category >= 0:
        same = (category == latest_category).astype(np.float64)
        same[category < 0] = np.nan
    else:
        same = np.full(c.size, np.nan)
    known_categories = session_categories[session_categories >= 0]
    if known_categories.size:
        share = (category[:, None] == known_categories[None, :]).mean(axis=1)
        share[category < 0] = np.nan
    else:
        share = np.full(c.size, np.nan)
    last_seen = _pad(stats.last_seen, n_items, np.nan)[c]
    now = query.now if np.isfinite(query.now) else np.nanmax(stats.last_seen, initial=0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_price = np.where(price > 0, np.log(price), np.nan)
        relative_price = price / mean_price if np.isfinite(mean_price) else np.full(c.size, np.nan)
    columns = [
        found.score[c],
        np.arange(c.size, dtype=np.float64),
        knn,
        rules,
        remind,
        cold,
        previous,
        count,
        steps,
        kind_weight,
        _pad(stats.log_popularity, n_items, 0.0)[c],
        _pad(stats.log_recent, n_items, 0.0)[c],
        (now - last_seen) / _DAY,
        _pad(ranker._idf, n_items, 0.0)[c],
        _pad(ranker._factors.conversion, n_items, np.nan)[c],
        log_price,
        relative_price,
        same,
        share,
        np.full(c.size, float(length)),
        np.full(c.size, float(np.unique(session).size)),
        np.full(c.size, float(query.history_items.size)),
        np.full(c.size, float(np.count_nonzero(found.score[c] > 0))),
    ]
    latest = int(session[-1]) if length else -1
    before = int(session[-2]) if length > 1 else -1
    out = _pad(stats.out_degree, n_items, 0.0)
    forward = stats.successors(latest, c)
    columns += [
        np.log1p(forward),
        forward / out[latest] if latest >= 0 and out[latest] > 0 else np.zeros(c.size),
        stats.successors(before, c) / out[before]
        if before >= 0 and out[before] > 0
        else np.zeros(c.size),
        stats.predecessors(latest, c) / np.maximum(out[c], 1.0),
    ]
    recent = _latest_distinct(session, _COOCCURRENCE_ITEMS)
    if recent.size:
        cosine = np.vstack([_row_lookup(stats.cooccurrence, int(i), c) for i in recent])
        columns += [cosine[0], cosine.max(axis=0), cosine.mean(axis=0)]
    else:
        columns += [np.zeros(c.size)] * 3
    return np.column_stack(columns).astype(np.float64)


def _cosine(data: Interactions, n: int) -> sparse.csr_matrix:
    """Item-to-item cosine over sessions (binary session x item), without the diagonal."""
    pairs = np.unique(data.session.astype(np.int64) * max(n, 1) + data.item)
    rows, cols = pairs // max(n, 1), pairs % max(n, 1)
    holding = sparse.csr_matrix(
        (np.ones(pairs.size), (rows, cols)), shape=(int(rows.max(initial=-1)) + 1, n)
    )
    both = (holding.T @ holding).tocsr()
    sessions = both.diagonal().astype(np.float64)
    both.setdiag(0.0)
    both.eliminate_zeros()
    norm = np.sqrt(np.maximum(sessions, 1.0))
    both = sparse.diags(1.0 / norm) @ both @ sparse.diags(1.0 / norm)
    cosine = sparse.csr_matrix(both)
    cosine.sort_indices()
    return cosine


def _latest_distinct(items: IntArray, count: int) -> IntArray:
    latest: list[int] = []
    for item in items[::-1].tolist():
        if item not in latest:
            latest.append(item)
            if len(latest) == count:
                break
    return np.array(latest, dtype=np.int64)


def _row_lookup(matrix: sparse.csr_matrix, row: int, columns: IntArray) -> FloatArray:
    """``matrix[row, columns]`` as a dense vector (0 outside the matrix)."""
    if not 0 <= row < matrix.shape[0]:
        return np.zeros(columns.size)
    start, end = matrix.indptr[row], matrix.indptr[row + 1]
    known, values = matrix.indices[start:end], matrix.data[start:end]
    if known.size == 0:
        return np.zeros(columns.size)
    where = np.minimum(np.searchsorted(known, columns), known.size - 1)
    return np.where(known[where] == columns, values[where], 0.0).astype(np.float64)


def _pad(values: FloatArray, n: int, fill: float) -> FloatArray:
    """``values`` extended to ``n`` entries with ``fill`` (items seen only live)."""
    if values.size >= n:
        return values
    return np.concatenate([values, np.full(n - values.size, fill)])


def _pad_mask(mask: BoolArray, n: int) -> BoolArray:
    if mask.size >= n:
        return mask[:n]
    return np.concatenate([mask, np.zeros(n - mask.size, dtype=np.bool_)])
