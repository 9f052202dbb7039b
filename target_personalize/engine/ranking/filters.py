"""Request filters: which items an answer may hold."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from target_personalize.engine.arrays import BoolArray, IntArray
from target_personalize.engine.exceptions import RankerError

if TYPE_CHECKING:
    from target_personalize.engine.ranking.interactions import ItemTable

__all__ = ["filter_mask"]


def filter_mask(
    items: ItemTable,
    filters: Mapping[str, Any] | None,
    lookup: Callable[[Sequence[str]], IntArray],
) -> BoolArray:
    """The items ``filters`` let through.

    Args:
        items: every item of the ranker.
        filters: ``category`` (name or list; a dotted prefix matches its subcategories),
            ``brand`` (name or list), ``min_price``, ``max_price``, ``available_only``
            (default true), ``item_ids`` (restrict to these), ``exclude`` (ids to leave out).
        lookup: item ids to indexes (-1 for unknown ids).

    Raises:
        RankerError: for an unknown filter.
    """
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
        found = lookup(list(restrict))
        keep[found[found >= 0]] = True
        mask &= keep
    exclude = options.pop("exclude", None)
    if exclude is not None:
        found = lookup(list(exclude))
        mask[found[found >= 0]] = False
    if options:
        raise RankerError(
            f"unknown filter {sorted(options)[0]!r}: use category, brand, min_price, "
            "max_price, available_only, item_ids or exclude"
        )
    return mask
