"""Cold start: popular and trending items narrowed by the session's context; new items reached.

For rankers with ``cold_start = True``, every item gets a small share of its popularity and
trend, raised for the categories, brands and search words of the session, so that these order
the items the ranker's own relevance does not tell apart (a new visitor, a narrow filter); and
items without interactions are reached through the category and brand of relevant items.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from target_personalize.engine.arrays import FloatArray, IntArray
from target_personalize.engine.ranking.index import concat_ranges
from target_personalize.engine.ranking.words import words_of

if TYPE_CHECKING:
    from target_personalize.engine.ranking.interactions import Interactions, ItemTable
    from target_personalize.engine.ranking.query import Query

__all__ = ["ColdStart"]


class ColdStart:
    """Popularity, trend and the category and brand groups of a ranker's items.

    Args:
        data: the training interactions.
    """

    def __init__(self, data: Interactions) -> None:
        n = len(data.items)
        # Popularity (rows) and trend (rows weighted by recency, half-life a tenth of the span).
        self.popularity = np.bincount(data.item, minlength=n).astype(np.float64)
        if len(data):
            end, start = float(data.ts.max()), float(data.ts.min())
            half_life = max((end - start) / 10.0, 3600.0)
            recency = np.exp2(-(end - data.ts) / half_life)
            self.trend = np.bincount(data.item, weights=recency, minlength=n).astype(np.float64)
        else:
            self.trend = np.zeros(n)
        self.has_interactions = self.popularity > 0
        self.base = self._popular_and_trending()
        self.base_max = float(self.base.max(initial=0.0))
        self._group(data.items)
        self.category_words = words_of(data.items.categories)
        self.brand_words = words_of(data.items.brands)

    def _popular_and_trending(self) -> FloatArray:
        """Half popularity, half trend, each scaled to a maximum of 1, then to a max of 1."""
        base = np.zeros(self.popularity.size)
        for counts in (self.popularity, self.trend):
            top = float(counts.max(initial=0.0))
            if top > 0:
                base += 0.5 * counts / top
        top = float(base.max(initial=0.0))
        return base / top if top > 0 else base

    def _group(self, items: ItemTable) -> None:
        self.by_category = _Groups.build(items.category, len(items.categories))
        self.by_brand = _Groups.build(items.brand, len(items.brands))
        cold = ~self.has_interactions
        self.cold_by_category = _Groups.build(
            np.where(cold, items.category, -1).astype(np.int32), len(items.categories)
        )
        self.cold_by_brand = _Groups.build(
            np.where(cold, items.brand, -1).astype(np.int32), len(items.brands)
        )
        self.cold_count = int(np.count_nonzero(cold))

    def add_item(self, items: ItemTable) -> None:
        """Take in the last item of ``items``, one without interactions, seen live."""
        self.popularity = np.append(self.popularity, 0.0)
        self.trend = np.append(self.trend, 0.0)
        self.has_interactions = np.append(self.has_interactions, False)
        self.base = np.append(self.base, 0.0)
        self._group(items)
        self.category_words = words_of(items.categories)
        self.brand_words = words_of(items.brands)

    def context(self, query: Query, items: ItemTable) -> tuple[IntArray, IntArray]:
        """Category and brand codes the session showed, searched or filtered for."""
        seen = np.concatenate([query.items, query.history_items[-10:]])
        categories = {int(c) for c in items.category[seen] if c >= 0} | set(query.categories)
        brands = {int(b) for b in items.brand[seen] if b >= 0} | set(query.brands)
        words = set(query.words)
        if words:
            categories |= {i for i, w in enumerate(self.category_words) if w & words}
            brands |= {i for i, w in enumerate(self.brand_words) if w & words}
        return np.array(sorted(categories), dtype=np.int64), np.array(
            sorted(brands), dtype=np.int64
        )

    def apply(self, relevance: FloatArray, query: Query, items: ItemTable) -> FloatArray:
        """Reach items without interactions through category and brand; fill with trends.

        An item without interactions scores a quarter of the sum of the best relevance in its
        category and in its brand. Every item then gets a small share (1e-3 of the best) of
        its popularity and trend, raised tenfold for the categories (and, half as much, the
        brands) the session showed or searched for, so that these order the items nothing
        else tells apart. Work is proportional to the items touched, not to the catalog.
        """
        base = self.base
        categories, brands = self.context(query, items)
        touched = np.zeros(0, dtype=np.int64)
        boosted = np.zeros(0)
        if categories.size or brands.size:
            in_category = self.by_category.members(categories)
            in_brand = self.by_brand.members(brands)
            weight = np.concatenate([np.ones(in_category.size), np.full(in_brand.size, 0.5)])
            touched, at = np.unique(np.concatenate([in_category, in_brand]), return_inverse=True)
            match = np.bincount(at, weights=weight)
            boosted = base[touched] * (1.0 + 9.0 * match) + 0.05 * match
            share = 1e-3 / max(self.base_max, float(boosted.max(initial=0.0)), 1e-12)
        else:
            share = 1e-3 / max(self.base_max, 1e-12)
        scored = np.flatnonzero(relevance > 0)
        # A floor (1e-9) so that every item can fill a list, e.g. under a narrow filter.
        out = base * share
        out += relevance
        out += 1e-9
        if touched.size:
            out[touched] += share * (boosted - base[touched])
        if scored.size and self.cold_count:
            self._reach_cold_items(out, relevance, scored, items)
        return out

    def _reach_cold_items(
        self, out: FloatArray, relevance: FloatArray, scored: IntArray, items: ItemTable
    ) -> None:
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
                self.cold_by_category.members(reached_categories),
                self.cold_by_brand.members(reached_brands),
            ]
        )
        if reached.size:
            out[reached] += 0.25 * (
                best_category[items.category[reached]] + best_brand[items.brand[reached]]
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
