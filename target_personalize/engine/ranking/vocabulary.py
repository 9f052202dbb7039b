"""The item index of a fitted ranker: ids and event types to indexes, grown by live events."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from target_personalize.engine.arrays import IntArray
from target_personalize.engine.ranking.event_weights import UNKNOWN_EVENT_WEIGHT, kind_weights
from target_personalize.engine.ranking.interactions import Interactions, ItemTable

__all__ = ["Vocabulary"]

#: Category and brand names whose codes are remembered (any name a client sends is looked up).
_NAMES_KEPT = 10_000
#: Item ids whose index in the training items is remembered (live events name the same items
#: again and again; a binary search in the item table costs a few numpy calls).
_IDS_KEPT = 100_000


class Vocabulary:
    """Item ids and event types of a ranker, with those first seen live appended.

    Args:
        data: the training interactions.
        event_weights: the ranker's weight per event type name.

    Attributes:
        data: the training interactions with the items and event types seen live appended
            (their arrays are the training ones).
        kind_weight: the weight of each event type index.
    """

    def __init__(self, data: Interactions, event_weights: Mapping[str, float]) -> None:
        self.data = data
        self._event_weights = event_weights
        self.kind_weight = kind_weights(data.event_types, event_weights)
        self._extra: dict[str, int] = {}
        self._found: dict[str, int] = {}
        self._category_codes: dict[str, tuple[int, ...]] = {}
        self._brand_codes: dict[str, tuple[int, ...]] = {}

    @property
    def items(self) -> ItemTable:
        """Every item: training and catalog items, then those seen live."""
        return self.data.items

    @property
    def without_live_items(self) -> Interactions:
        """The interactions without the items seen live (what a saved model holds)."""
        if not self._extra:
            return self.data
        kept = self.items.head(len(self.items) - len(self._extra))
        return dataclasses.replace(self.data, items=kept)

    def kind(self, name: str) -> int:
        """The index of event type ``name``, appended when new."""
        data = self.data
        if name not in data.event_types:
            self.data = dataclasses.replace(data, event_types=(*data.event_types, name))
            self.kind_weight = np.append(
                self.kind_weight, self._event_weights.get(name, UNKNOWN_EVENT_WEIGHT)
            )
        return self.data.event_types.index(name)

    def category_codes(self, names: Iterable[str]) -> tuple[int, ...]:
        """The codes of the categories ``names`` name, with their subcategories.

        A name matches a category of that name and, as a dotted prefix, its subcategories
        (``home`` matches ``home.kitchen``), as the ``category`` filter does.
        """
        return _codes(names, self.items.categories, self._category_codes, dotted=True)

    def brand_codes(self, names: Iterable[str]) -> tuple[int, ...]:
        """The codes of the brands ``names`` name."""
        return _codes(names, self.items.brands, self._brand_codes, dotted=False)

    def lookup(self, item_ids: Sequence[str]) -> IntArray:
        """The indexes of ``item_ids``, -1 for unknown ones."""
        found = self.items.index(list(item_ids))
        for i, item_id in enumerate(item_ids):
            if found[i] < 0 and item_id in self._extra:
                found[i] = self._extra[item_id]
        return found

    def item(self, raw: Mapping[str, Any] | str) -> tuple[int, bool]:
        """The index of an event's item, and whether it was appended now.

        An item given as a mapping (``item_id``, ``category``, ``brand``, ``price``) that is
        not known yet is appended; a bare id that is not known, or no id, gives -1.
        """
        item_id = str(raw if isinstance(raw, str) else raw.get("item_id") or "")
        if not item_id:
            return -1, False
        found = self._found.get(item_id)
        if found is None:
            # The training rows never move (live items are appended after them, and index()
            # does not find those), so a remembered answer stays true.
            found = int(self.items.index([item_id])[0])
            if len(self._found) >= _IDS_KEPT:
                self._found.clear()
            self._found[item_id] = found
        if found >= 0:
            return found, False
        if item_id in self._extra:
            return self._extra[item_id], False
        if isinstance(raw, str):
            return -1, False
        price = raw.get("price")
        table, index = self.items.extended(
            item_id,
            category=raw.get("category") or None,
            brand=raw.get("brand") or None,
            price=float(price) if isinstance(price, int | float) else None,
        )
        if table.categories != self.items.categories:
            self._category_codes.clear()
        if table.brands != self.items.brands:
            self._brand_codes.clear()
        self.data = dataclasses.replace(self.data, items=table)
        self._extra[item_id] = index
        return index, True


def _codes(
    names: Iterable[str], known: Sequence[str], cache: dict[str, tuple[int, ...]], *, dotted: bool
) -> tuple[int, ...]:
    """The codes of ``known`` names that ``names`` match (``dotted``: subcategories too)."""
    codes: set[int] = set()
    for name in names:
        found = cache.get(name)
        if found is None:
            prefix = f"{name}." if dotted else None
            found = tuple(
                i
                for i, candidate in enumerate(known)
                if candidate == name or (prefix is not None and candidate.startswith(prefix))
            )
            if len(cache) >= _NAMES_KEPT:
                cache.clear()
            cache[name] = found
        codes.update(found)
    return tuple(sorted(codes))
