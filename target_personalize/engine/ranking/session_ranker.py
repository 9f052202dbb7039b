"""The engine's ranker: a multi-objective session-kNN weighted by the funnel.

:class:`SessionRanker` scores items for the current session (and the visitor's history) in
three parts, all computed from numpy CSR arrays in a few milliseconds:

1. **Neighbour sessions** (STAN/V-STAN style): training sessions that share items with the
   query, among the ``sample_size`` most recent, weighted by cosine similarity. The query's
   items weigh by position (``exp((pos - len) / lambda_spw)``), by the funnel's weight of the
   event type that touched them (a purchase says more than a view), and history items by
   ``history_weight`` and age. Neighbours decay with age (``lambda_snh`` days; by default
   the span of the training data). Each neighbour's items score by similarity, by their
   distance in the neighbour from the last item it shares with the query (``lambda_inh``),
   by how recently the query met that neighbour (``lambda_ipw``), by IDF (``lambda_idf``) and
   by the event type the neighbour gave them (``neighbor_kind_power``: items that neighbours
   bought count more). The session's own items get a direct boost (``remind_weight``): a
   quarter of next clicks return to an item already seen.
2. **Sequential rules**: item-to-item transitions within sessions (``1/gap`` for gaps up to
   ``sr_steps``) from the latest items of the query, added with weight ``sr_weight``.
3. **Cold start** (from :class:`RankerBase`): popular and trending items narrowed by the
   session's categories, brands and search words; items without interactions reached through
   their category and brand.

The objectives of :class:`RankerBase` (conversion, margin) then multiply the relevance.

Default parameters were chosen on a validation split carved from the YooChoose-100k training
data (its last day), never on a test split; see ``docs/ranking.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import numpy.typing as npt

from target_personalize.engine.arrays import FloatArray, IntArray
from target_personalize.engine.ranking.contract import RankerBase
from target_personalize.engine.ranking.index import CoOccurrence, SessionIndex, sequence_rules

if TYPE_CHECKING:
    from collections.abc import Mapping

    from target_personalize.engine.ranking.interactions import Interactions
    from target_personalize.engine.ranking.query import Query

__all__ = ["SessionRanker"]


_DAY = 86_400.0


class SessionRanker(RankerBase):
    """Multi-objective session-kNN with funnel event weights, sequential rules and cold start.

    Args:
        k: neighbour sessions scored.
        sample_size: candidate sessions (the most recent sharing an item with the query).
        lambda_spw: position decay of the query's items (in events).
        lambda_snh: age decay of neighbour sessions, in days (0 = off); by default the time
            span of the training data, so the oldest sessions count about a third.
        lambda_inh: decay of a neighbour's items by distance from its last shared item.
        lambda_ipw: decay of a neighbour by how far back the query shared an item with it.
        lambda_idf: IDF boost of rare items (0 = off).
        kind_power: exponent on the funnel weight of the query's event types.
        neighbor_kind_power: exponent on the funnel weight of the neighbours' event types.
        sr_weight: weight of the sequential-rules part (0 = off).
        sr_steps: largest gap between two events that forms a rule.
        sr_last: latest query items the rules start from (weights 1, 1/2, ...).
        sr_keep: rules kept per item.
        remind_weight: weight of a direct boost of the session's own items (0 = off).
        remind_decay: decay (in events) of that boost from the latest item.
        history_weight: weight of the visitor's earlier sessions next to the current one.
        history_half_life: age (days) at which a history event counts half.
        **kwargs: see :class:`RankerBase`.
    """

    name: ClassVar[str] = "session ranker"
    cold_start: ClassVar[bool] = True

    def __init__(
        self,
        *,
        k: int = 500,
        sample_size: int = 1000,
        lambda_spw: float = 2.0,
        lambda_snh: float | None = None,
        lambda_inh: float = 4.0,
        lambda_ipw: float = 1.0,
        lambda_idf: float = 1.0,
        kind_power: float = 1.0,
        neighbor_kind_power: float = 0.5,
        sr_weight: float = 0.15,
        sr_steps: int = 10,
        sr_last: int = 1,
        sr_keep: int = 100,
        remind_weight: float = 1.0,
        remind_decay: float = 1.0,
        history_weight: float = 0.3,
        history_half_life: float = 30.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.k = k
        self.sample_size = sample_size
        self.lambda_spw = lambda_spw
        self.lambda_snh = lambda_snh
        self.lambda_inh = lambda_inh
        self.lambda_ipw = lambda_ipw
        self.lambda_idf = lambda_idf
        self.kind_power = kind_power
        self.neighbor_kind_power = neighbor_kind_power
        self.sr_weight = sr_weight
        self.sr_steps = sr_steps
        self.sr_last = sr_last
        self.sr_keep = sr_keep
        self.remind_weight = remind_weight
        self.remind_decay = remind_decay
        self.history_weight = history_weight
        self.history_half_life = history_half_life

    def get_params(self) -> dict[str, Any]:
        """Constructor arguments."""
        return {
            **super().get_params(),
            "k": self.k,
            "sample_size": self.sample_size,
            "lambda_spw": self.lambda_spw,
            "lambda_snh": self.lambda_snh,
            "lambda_inh": self.lambda_inh,
            "lambda_ipw": self.lambda_ipw,
            "lambda_idf": self.lambda_idf,
            "kind_power": self.kind_power,
            "neighbor_kind_power": self.neighbor_kind_power,
            "sr_weight": self.sr_weight,
            "sr_steps": self.sr_steps,
            "sr_last": self.sr_last,
            "sr_keep": self.sr_keep,
            "remind_weight": self.remind_weight,
            "remind_decay": self.remind_decay,
            "history_weight": self.history_weight,
            "history_half_life": self.history_half_life,
        }

    # Fitting

    def _fit(self, data: Interactions) -> None:
        self._index = SessionIndex.build(data, kind_rank=self._kind_weight)
        self._derive()
        if self.sr_weight > 0:
            self._rules = sequence_rules(
                self._index.seq_ptr,
                self._index.seq_item,
                self.sr_steps,
                n_items=len(data.items),
                keep=self.sr_keep,
            )
        else:
            self._rules = CoOccurrence.build(
                len(data.items), np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
            )

    def _derive(self) -> None:
        index = self._index
        n = len(self.data.items)
        counts = np.bincount(index.seq_item, minlength=n).astype(np.float64)
        sessions = max(index.n_sessions, 1)
        self._idf = np.where(counts > 0, np.log(sessions / np.maximum(counts, 1.0)), 0.0)
        self._sqrt_len = np.sqrt(np.maximum(index.u_len, 1)).astype(np.float64)
        if self.lambda_snh is not None:
            self._snh_days = float(self.lambda_snh)
        elif index.seq_ts.size:
            span = float(index.seq_ts.max() - index.seq_ts.min()) / _DAY
            self._snh_days = max(span, 1.0)
        else:
            self._snh_days = 1.0

    def _arrays(self) -> dict[str, npt.NDArray[Any]]:
        index = self._index
        arrays: dict[str, npt.NDArray[Any]] = {
            f"index_{name}": getattr(index, name)
            for name in (
                "session_of",
                "end",
                "visitor",
                "seq_ptr",
                "seq_item",
                "seq_kind",
                "seq_ts",
                "u_ptr",
                "u_item",
                "u_last",
                "u_kind",
                "i_ptr",
                "i_sess",
                "i_u",
            )
        }
        arrays.update(self._rules.arrays("rules"))
        return arrays

    def _restore(self, arrays: Mapping[str, npt.NDArray[Any]]) -> bool:
        try:
            fields = {
                name.removeprefix("index_"): value
                for name, value in arrays.items()
                if name.startswith("index_")
            }
            self._index = SessionIndex(n_items=len(self.data.items), **fields)
            self._rules = CoOccurrence(
                arrays["rules_ptr"], arrays["rules_col"], arrays["rules_val"]
            )
        except (KeyError, TypeError):
            return False
        self._derive()
        return True

    # Scoring

    def _relevance(self, query: Query) -> FloatArray:
        knn, rules, remind = self.relevance_parts(query)
        return knn + rules + remind

    def relevance_parts(self, query: Query) -> tuple[FloatArray, FloatArray, FloatArray]:
        """The three parts of the relevance per item: neighbours, sequential rules, reminders.

        Their sum is the relevance; a second stage (:mod:`.rerank`) weighs them itself.
        """
        n = len(self.items)
        knn, rules, remind = np.zeros(n), np.zeros(n), np.zeros(n)
        if query.empty:
            return knn, rules, remind
        knn = self._neighbour_scores(query, n)
        top = knn.max(initial=0.0)
        if top > 0:
            knn /= top
        if self.sr_weight > 0 and query.items.size:
            latest = _latest_distinct(query.items, self.sr_last)
            targets, weights = self._rules.sparse_scores(
                latest, 1.0 / np.arange(1, latest.size + 1)
            )
            best = weights.max(initial=0.0)
            if best > 0:
                np.add.at(rules, targets, (self.sr_weight / best) * weights)
        if self.remind_weight > 0 and query.items.size:
            steps = np.arange(query.items.size, 0, -1, dtype=np.float64)
            boost = np.exp(-(steps - 1.0) / self.remind_decay)
            # Per distinct item, the boost of its latest occurrence (the largest).
            order = np.lexsort((-boost, query.items))
            first = np.ones(order.size, dtype=np.bool_)
            first[1:] = query.items[order][1:] != query.items[order][:-1]
            remind[query.items[order][first]] = self.remind_weight * boost[order][first]
        return knn, rules, remind

    def _query_entries(self, query: Query) -> tuple[IntArray, FloatArray, FloatArray, IntArray]:
        """Distinct query items with their weight, their step from the end, their position."""
        kind_weight = self._kind_weight
        length = query.items.size
        items = np.concatenate([query.history_items, query.items])
        kinds = np.concatenate([query.history_kinds, query.kinds])
        if length:
            position = np.arange(1, length + 1, dtype=np.float64)
            session_weight = np.exp((position - length) / self.lambda_spw)
        else:
            session_weight = np.zeros(0)
        if query.history_items.size:
            age = np.maximum(query.now - query.history_ts, 0.0) / _DAY
            history_weight = self.history_weight * np.exp2(-age / self.history_half_life)
        else:
            history_weight = np.zeros(0)
        weight = np.concatenate([history_weight, session_weight])
        weight = weight * np.power(np.maximum(kind_weight[kinds], 1e-3), self.kind_power)
        steps = (items.size - np.arange(items.size)).astype(np.float64)
        # Per distinct item: the largest weight, the smallest step.
        order = np.lexsort((-weight, items))
        items_sorted = items[order]
        first = np.ones(items_sorted.size, dtype=np.bool_)
        first[1:] = items_sorted[1:] != items_sorted[:-1]
        unique = items_sorted[first]
        best_weight = weight[order][first]
        group = np.cumsum(first) - 1
        nearest = np.full(unique.size, np.inf)
        np.minimum.at(nearest, group, steps[order])
        return unique.astype(np.int64), best_weight, nearest, group

    def _neighbour_scores(self, query: Query, n: int) -> FloatArray:
        index = self._index
        items, weight, steps, _ = self._query_entries(query)
        known = (items >= 0) & (items < index.n_items)
        items, weight, steps = items[known], weight[known], steps[known]
        sessions, owner, entry = index.postings(items, latest=self.sample_size)
        if sessions.size == 0:
            return np.zeros(n)
        candidates = np.unique(sessions)
        if self.sample_size and candidates.size > self.sample_size:
            keep = sessions >= candidates[-self.sample_size]
            sessions, owner, entry = sessions[keep], owner[keep], entry[keep]
        candidates, inverse = np.unique(sessions, return_inverse=True)
        norm = float(np.sqrt(np.sum(weight * weight)))
        similarity = np.bincount(inverse, weights=weight[owner]) / (
            norm * self._sqrt_len[candidates]
        )
        if self._snh_days > 0:
            age = np.maximum(query.now - index.end[candidates], 0.0)
            similarity *= np.exp(-age / (self._snh_days * _DAY))
        nearest = np.full(candidates.size, np.inf)
        np.minimum.at(nearest, inverse, steps[owner])
        anchor = np.zeros(candidates.size, dtype=np.int64)
        np.maximum.at(anchor, inverse, index.u_last[entry])
        positive = np.flatnonzero(similarity > 0)
        chosen = positive[np.lexsort((-candidates[positive], -similarity[positive]))][: self.k]
        neighbours = candidates[chosen]
        strength = similarity[chosen] * np.exp(-(nearest[chosen] - 1.0) / self.lambda_ipw)
        entries, which = index.session_entries(neighbours)
        found = index.u_item[entries]
        value = strength[which] * np.exp(
            -np.abs(index.u_last[entries] - anchor[chosen][which]) / self.lambda_inh
        )
        if self.lambda_idf:
            value = value * (1.0 + self.lambda_idf * self._idf[found])
        if self.neighbor_kind_power:
            kind_weight = np.maximum(self._kind_weight[index.u_kind[entries]], 1e-3)
            value = value * np.power(kind_weight, self.neighbor_kind_power)
        return np.bincount(found, weights=value, minlength=n).astype(np.float64)


def _latest_distinct(items: IntArray, count: int) -> IntArray:
    latest: list[int] = []
    for item in items[::-1].tolist():
        if item not in latest:
            latest.append(item)
            if len(latest) == count:
                break
    return np.array(latest, dtype=np.int64)
