"""The personalization engine: event store, funnel mining and ranking. Never imports singer_sdk."""

from __future__ import annotations

from target_personalize.engine._columns import EVENT_COLUMNS, ITEM_COLUMNS
from target_personalize.engine._exceptions import (
    EngineError,
    InvalidEventError,
    StoreError,
    UnsupportedDatabaseError,
)
from target_personalize.engine._records import coerce_event, coerce_item
from target_personalize.engine._store import (
    DEFAULT_DATABASE_URL,
    EventStore,
    LoadResult,
    Reject,
    StoreSummary,
    read_batch_files,
)

__all__ = [
    "DEFAULT_DATABASE_URL",
    "EVENT_COLUMNS",
    "ITEM_COLUMNS",
    "EngineError",
    "EventStore",
    "InvalidEventError",
    "LoadResult",
    "Reject",
    "StoreError",
    "StoreSummary",
    "UnsupportedDatabaseError",
    "coerce_event",
    "coerce_item",
    "read_batch_files",
]
