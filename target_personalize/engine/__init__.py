"""The personalization engine: event store, funnel mining and ranking. Never imports singer_sdk."""

from __future__ import annotations

from target_personalize.engine._columns import EVENT_COLUMNS, ITEM_COLUMNS
from target_personalize.engine._exceptions import (
    EngineError,
    InvalidEventError,
    StoreError,
    UnsupportedDatabaseError,
)
from target_personalize.engine._funnels import (
    DEFAULT_WINDOW,
    LIFT_PRIOR_UNITS,
    Contribution,
    DiscoveredFunnel,
    DiscoveredStep,
    Funnel,
    FunnelError,
    FunnelStep,
    ImplicitSignal,
    PathStat,
    SignalBucket,
    TimeBin,
    TimeToConvert,
    compute_event_weights,
    discover_funnel,
    explicit_funnel,
)
from target_personalize.engine._records import coerce_event, coerce_item
from target_personalize.engine._report import render_report, write_report
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
    "DEFAULT_WINDOW",
    "EVENT_COLUMNS",
    "ITEM_COLUMNS",
    "LIFT_PRIOR_UNITS",
    "Contribution",
    "DiscoveredFunnel",
    "DiscoveredStep",
    "EngineError",
    "EventStore",
    "Funnel",
    "FunnelError",
    "FunnelStep",
    "ImplicitSignal",
    "InvalidEventError",
    "LoadResult",
    "PathStat",
    "Reject",
    "SignalBucket",
    "StoreError",
    "StoreSummary",
    "TimeBin",
    "TimeToConvert",
    "UnsupportedDatabaseError",
    "coerce_event",
    "coerce_item",
    "compute_event_weights",
    "discover_funnel",
    "explicit_funnel",
    "read_batch_files",
    "render_report",
    "write_report",
]
