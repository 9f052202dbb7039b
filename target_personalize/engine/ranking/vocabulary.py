"""The item index of a fitted ranker: ids and event types to indexes, grown by live events."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from target_personalize.engine.ranking.event_weights import UNKNOWN_EVENT_WEIGHT, kind_weights
from target_personalize.engine.ranking.interactions import Interactions, ItemTable

__all__ = ["Vocabulary"]

IntArray = npt.NDArray[np.int64]


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
        found = int(self.items.index([item_id])[0])
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
        self.data = dataclasses.replace(self.data, items=table)
        self._extra[item_id] = index
        return index, True
