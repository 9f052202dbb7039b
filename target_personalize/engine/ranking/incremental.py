"""Incremental refits: the sessions loaded since the last fit replace their old versions."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from target_personalize.engine.arrays import IntArray
from target_personalize.engine.ranking.interactions import Interactions, ItemTable

if TYPE_CHECKING:
    from target_personalize.engine.store.event_store import EventStore

__all__ = ["max_loaded_at", "merge_interactions"]


def max_loaded_at(store: EventStore) -> datetime | None:
    """When the store's latest load happened (``None`` for an empty store)."""
    rows = store.query("SELECT max(loaded_at) FROM events")
    value = rows[0][0] if rows else None
    return value if isinstance(value, datetime) else None


def merge_interactions(old: Interactions, new: Interactions) -> Interactions:
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
        **_union_engagement(old, new, in_old, in_new),
    )


#: Engagement signals, preferred first (as ``interactions._read_engagement`` chooses).
_ENGAGEMENT_KINDS = ("engagement_ms", "media_progress_pct", "none")


def _union_engagement(
    old: ItemTable, new: ItemTable, in_old: IntArray, in_new: IntArray
) -> dict[str, Any]:
    """The engagement of the union: the preferred signal's values only, never two units mixed.

    Fresh sessions' means win for the items they hold (as prices do); when the two tables
    hold different signals, only the preferred one's values are kept.
    """
    kind = min(old.engagement_kind, new.engagement_kind, key=_ENGAGEMENT_KINDS.index)
    values = np.full(in_new.size, np.nan)
    for table, at in ((old, in_old), (new, in_new)):  # new written last: it wins
        if table.engagement_kind == kind and kind != "none" and table.engagement.size:
            found = np.where(at >= 0, table.engagement[np.maximum(at, 0)], np.nan)
            values = np.where(np.isnan(found), values, found)
    return {"engagement": values, "engagement_kind": kind}
