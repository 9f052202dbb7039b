"""Baseline rankers the evaluation compares against.

* :class:`MostPopular`: items by number of item events in training.
* :class:`ViewsItemKNN`: item-to-item cosine similarity from views only, scored from the last
  viewed items: what single-objective ("people who viewed this also viewed") personalization
  does.
* :class:`VSKNN`: vector-multiplication session-kNN as published by Ludewig and Jannach and
  implemented in session-rec (``algorithms/knn/vsknn.py``): neighbours among the most recent
  ``sample_size`` sessions sharing an item with the current session, similarity the sum of the
  position weights of the shared items divided by the number of distinct session items, the
  ``k`` most similar scored by similarity times a decay of how recently the current session
  touched them. Re-implemented from the description and the published parameters.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
import numpy.typing as npt

from target_personalize.engine.arrays import FloatArray, IntArray
from target_personalize.engine.exceptions import RankerError
from target_personalize.engine.ranking.contract import RankerBase
from target_personalize.engine.ranking.index import CoOccurrence, SessionIndex

if TYPE_CHECKING:
    from collections.abc import Mapping

    from target_personalize.engine.ranking.interactions import Interactions
    from target_personalize.engine.ranking.query import Query

__all__ = ["VIEW_TYPES", "VSKNN", "MostPopular", "ViewsItemKNN"]


#: Event types that count as views for :class:`ViewsItemKNN`.
VIEW_TYPES = frozenset({"product_view", "view", "click", "item_view", "page_view"})

Weighting = Literal["same", "div", "linear", "log", "quadratic"]


class MostPopular(RankerBase):
    """The items with most events in training, for everyone."""

    name: ClassVar[str] = "most popular"

    def _fit(self, data: Interactions) -> None:
        self._counts = np.bincount(data.item, minlength=len(data.items)).astype(np.float64)

    def _relevance(self, query: Query) -> FloatArray:
        del query
        return self._counts

    def _arrays(self) -> dict[str, npt.NDArray[Any]]:
        return {"counts": self._counts}

    def _restore(self, arrays: Mapping[str, npt.NDArray[Any]]) -> bool:
        self._counts = arrays["counts"].astype(np.float64)
        return True


class ViewsItemKNN(RankerBase):
    """Item-to-item cosine similarity over sessions, from view events only.

    Args:
        neighbors: similar items kept per item.
        last_views: how many of the session's latest distinct views are used (weights
            1, 1/2, 1/3, ... from the latest).
        max_session_items: distinct items per session used for co-occurrence (the latest).
        shrink: added to both supports in the cosine denominator (damps rare items).
        **kwargs: see :class:`RankerBase`.
    """

    name: ClassVar[str] = "views-only item-kNN"

    def __init__(
        self,
        *,
        neighbors: int = 100,
        last_views: int = 3,
        max_session_items: int = 50,
        shrink: float = 10.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.neighbors = neighbors
        self.last_views = last_views
        self.max_session_items = max_session_items
        self.shrink = shrink

    def get_params(self) -> dict[str, Any]:
        """Constructor arguments."""
        return {
            **super().get_params(),
            "neighbors": self.neighbors,
            "last_views": self.last_views,
            "max_session_items": self.max_session_items,
            "shrink": self.shrink,
        }

    def _view_kinds(self, event_types: tuple[str, ...]) -> npt.NDArray[np.bool_]:
        return np.array([t in VIEW_TYPES for t in event_types] or [False], dtype=np.bool_)

    def _fit(self, data: Interactions) -> None:
        n = len(data.items)
        index = SessionIndex.build(data, kinds=self._view_kinds(data.event_types))
        # Distinct items per session, latest first, capped.
        order = np.lexsort((-index.u_last, np.repeat(np.arange(index.n_sessions), index.u_len)))
        session = np.repeat(np.arange(index.n_sessions), index.u_len)[order]
        item = index.u_item[order]
        rank = np.arange(item.size) - index.u_ptr[session]
        kept = rank < self.max_session_items
        session, item = session[kept], item[kept]
        firsts: list[IntArray] = []
        seconds: list[IntArray] = []
        for gap in range(1, self.max_session_items):
            if gap >= item.size:
                break
            same = np.flatnonzero(session[:-gap] == session[gap:])
            if same.size == 0:
                break
            firsts.append(item[same])
            seconds.append(item[same + gap])
        a = np.concatenate(firsts) if firsts else np.zeros(0, np.int64)
        b = np.concatenate(seconds) if seconds else np.zeros(0, np.int64)
        rows, cols = np.concatenate([a, b]), np.concatenate([b, a])
        support = np.bincount(item, minlength=n).astype(np.float64)
        weights = 1.0 / np.sqrt((support[rows] + self.shrink) * (support[cols] + self.shrink))
        self._sim = CoOccurrence.build(n, rows, cols, weights, keep=self.neighbors)

    def _relevance(self, query: Query) -> FloatArray:
        n = len(self.items)
        views = self._view_kinds(self.data.event_types)
        items = query.items[views[query.kinds]] if query.items.size else query.items
        if items.size == 0:
            return np.zeros(n)
        latest: list[int] = []
        for item in items[::-1].tolist():
            if item not in latest:
                latest.append(item)
            if len(latest) == self.last_views:
                break
        chosen = np.array(latest, dtype=np.int64)
        weights = 1.0 / np.arange(1, chosen.size + 1)
        return self._sim.scores(chosen, weights, n)

    def _arrays(self) -> dict[str, npt.NDArray[Any]]:
        return self._sim.arrays("sim")

    def _restore(self, arrays: Mapping[str, npt.NDArray[Any]]) -> bool:
        self._sim = CoOccurrence(arrays["sim_ptr"], arrays["sim_col"], arrays["sim_val"])
        return True


def position_weight(kind: Weighting, position: IntArray, length: int) -> FloatArray:
    """session-rec's weight of the item at 1-based ``position`` of a session of ``length``."""
    i = position.astype(np.float64)
    if kind == "same":
        return np.ones_like(i)
    if kind == "div":
        return i / length
    if kind == "linear":
        return np.where(i <= 10, 1.0 - 0.1 * (length - i), 0.0)
    if kind == "log":
        return 1.0 / np.log10((length - i) + 1.7)
    if kind == "quadratic":
        return (i / length) ** 2
    raise RankerError(f"unknown weighting {kind!r}")


def step_weight(kind: Weighting, step: IntArray) -> FloatArray:
    """session-rec's decay for a neighbour matched ``step`` events from the session's end."""
    i = step.astype(np.float64)
    if kind == "same":
        return np.ones_like(i)
    if kind == "div":
        return 1.0 / i
    if kind == "linear":
        return np.where(i <= 100, 1.0 - 0.1 * i, 0.0)
    if kind == "log":
        return 1.0 / np.log10(i + 1.7)
    if kind == "quadratic":
        return 1.0 / (i * i)
    raise RankerError(f"unknown weighting {kind!r}")


class VSKNN(RankerBase):
    """V-SKNN, faithful to session-rec's ``VMContextKNN`` with its default switches.

    Defaults are the published YooChoose configuration: ``k=100``, ``sample_size=1000``,
    recent sampling, quadratic position weighting and quadratic score decay, no IDF.

    Args:
        k: neighbour sessions scored.
        sample_size: candidate sessions (the most recent sharing an item); 0 for all.
        sampling: ``recent`` or ``random`` (uses ``random_state``).
        weighting: position weights of the current session's items.
        weighting_score: decay by how far back the current session met the neighbour.
        idf_weighting: 0 for none, else the IDF multiplier (session-rec's ``idf_weighting``).
        **kwargs: see :class:`RankerBase`.
    """

    name: ClassVar[str] = "V-SKNN"

    def __init__(
        self,
        *,
        k: int = 100,
        sample_size: int = 1000,
        sampling: Literal["recent", "random"] = "recent",
        weighting: Weighting = "quadratic",
        weighting_score: Weighting = "quadratic",
        idf_weighting: float = 0.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.k = k
        self.sample_size = sample_size
        self.sampling = sampling
        self.weighting: Weighting = weighting
        self.weighting_score: Weighting = weighting_score
        self.idf_weighting = idf_weighting
        position_weight(weighting, np.ones(1, np.int64), 1)
        step_weight(weighting_score, np.ones(1, np.int64))

    def get_params(self) -> dict[str, Any]:
        """Constructor arguments."""
        return {
            **super().get_params(),
            "k": self.k,
            "sample_size": self.sample_size,
            "sampling": self.sampling,
            "weighting": self.weighting,
            "weighting_score": self.weighting_score,
            "idf_weighting": self.idf_weighting,
        }

    def _fit(self, data: Interactions) -> None:
        self._index = SessionIndex.build(data)
        counts = np.bincount(data.item, minlength=len(data.items)).astype(np.float64)
        sessions = max(int(np.unique(data.session).size), 1)
        with np.errstate(divide="ignore"):
            self._idf = np.where(counts > 0, np.log(sessions / np.maximum(counts, 1.0)), 0.0)

    def _relevance(self, query: Query) -> FloatArray:
        index = self._index
        n = len(self.items)
        items = query.items
        length = int(items.size)
        if length == 0:
            return np.zeros(n)
        # pos_map: the weight of an item's last occurrence; step: its distance from the end.
        reversed_items = items[::-1]
        unique, first_in_reversed = np.unique(reversed_items, return_index=True)
        last_at = length - 1 - first_in_reversed
        weights = position_weight(self.weighting, np.arange(1, length + 1), length)[last_at]
        steps = (length - last_at).astype(np.int64)
        recent = self.sample_size if self.sampling == "recent" else 0
        sessions, owner, _ = index.postings(unique, latest=recent)
        if sessions.size == 0:
            return np.zeros(n)
        candidates = np.unique(sessions)
        if self.sample_size and candidates.size > self.sample_size:
            if self.sampling == "random":
                chosen = self._rng.choice(candidates, self.sample_size, replace=False)
                keep = np.isin(sessions, chosen)
            else:
                keep = sessions >= candidates[-self.sample_size]
            sessions, owner = sessions[keep], owner[keep]
        candidates, inverse = np.unique(sessions, return_inverse=True)
        similarity = np.bincount(inverse, weights=weights[owner]) / unique.size
        nearest = np.full(candidates.size, np.iinfo(np.int64).max)
        np.minimum.at(nearest, inverse, steps[owner])
        positive = np.flatnonzero(similarity > 0)
        order = positive[np.lexsort((-candidates[positive], -similarity[positive]))][: self.k]
        neighbours = candidates[order]
        contribution = similarity[order] * step_weight(self.weighting_score, nearest[order])
        entries, which = index.session_entries(neighbours)
        found = index.u_item[entries]
        value = contribution[which]
        if self.idf_weighting:
            value = value + value * self._idf[found] * self.idf_weighting
        return np.bincount(found, weights=value, minlength=n).astype(np.float64)

    def _arrays(self) -> dict[str, npt.NDArray[Any]]:
        return {}

    def _restore(self, arrays: Mapping[str, npt.NDArray[Any]]) -> bool:
        del arrays
        return False
