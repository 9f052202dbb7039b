"""What explicit and discovered funnels share: units, the range, time to convert, the run.

Definitions shared by both:

* A *unit* is a session (``session_key`` of ``sessionized_events_sql()``: the source's session
  id, else 30 minutes of inactivity) or a user (``visitor``: user id, else anonymous id, else
  session id). Only raw events (not aggregates) in ``[since, until)`` count.
* The key conversion, and every explicit step, matches an event whose canonical ``event_type``
  or raw ``event_name`` equals it.
* A unit converts when it holds at least one conversion; its *journey* is its events up to its
  first conversion (all its events if it never converts). Events at the same timestamp as the
  conversion count as before it.

Both run their heavy work as SQL inside the store (:mod:`.sql`) in temporary tables of a
:class:`Run`, which also reports progress.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields, is_dataclass
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any, Literal, get_args

from target_personalize.engine.exceptions import FunnelError
from target_personalize.engine.funnel.sql import TIME_BINS, Chain, chain_sql

if TYPE_CHECKING:
    from target_personalize.engine.store.event_store import EventStore

__all__ = [
    "ProgressCallback",
    "Run",
    "TimeBin",
    "TimeToConvert",
    "Unit",
    "as_plain",
    "check_unit_and_range",
    "histogram",
    "num",
    "ratio",
    "temporary_run",
]

logger = logging.getLogger(__name__)

Unit = Literal["session", "user"]
#: Called with (stage description, stages done, total stages) as the work advances.
ProgressCallback = Callable[[str, int, int], None]

_ROUND = 6
_TABLES = itertools.count(1)


def as_plain(value: Any) -> Any:
    """``value`` with dataclasses, tuples and datetimes made JSON-friendly (NaN as None)."""
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: as_plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, tuple | list):
        return [as_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): as_plain(v) for k, v in value.items()}
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


@dataclass(frozen=True)
class TimeBin:
    """One bar of a time-to-convert histogram: ``[lower, upper)`` seconds (upper None: open)."""

    label: str
    lower_seconds: float
    upper_seconds: float | None
    units: int


@dataclass(frozen=True)
class TimeToConvert:
    """How long converting takes.

    Attributes:
        converters: units that converted.
        median_seconds: median time to convert (None without converters); also
            ``mean_seconds`` and ``p90_seconds`` (90th percentile, linear interpolation).
        histogram: converters per time bin.
    """

    converters: int
    median_seconds: float | None
    mean_seconds: float | None
    p90_seconds: float | None
    histogram: tuple[TimeBin, ...]

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly form."""
        return dict(as_plain(self))


# Helpers


def _as_datetime(value: datetime | date | None, name: str) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            return value.astimezone(UTC).replace(tzinfo=None)
        return value
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    raise FunnelError(f"{name} must be a date or datetime, not {type(value).__name__}")


def check_unit_and_range(
    unit: str, since: datetime | date | None, until: datetime | date | None
) -> tuple[datetime | None, datetime | None]:
    """The range as naive UTC datetimes, after checking it and the unit.

    Raises:
        FunnelError: for an unknown unit, a bound that is no date, or an empty range.
    """
    if unit not in get_args(Unit):
        raise FunnelError(f"unit must be 'session' or 'user', not {unit!r}")
    start, end = _as_datetime(since, "since"), _as_datetime(until, "until")
    if start is not None and end is not None and start >= end:
        raise FunnelError(f"since ({start}) must be before until ({end})")
    return start, end


def ratio(part: float, whole: float) -> float | None:
    """``part / whole``, None when ``whole`` is 0."""
    return part / whole if whole else None


def num(value: Any) -> float | None:
    """A database number as a rounded float (None for NULL, NaN or infinity)."""
    if value is None:
        return None
    number = float(value)
    return round(number, _ROUND) if math.isfinite(number) else None


def histogram(counts: Sequence[Any]) -> tuple[TimeBin, ...]:
    """The time-to-convert histogram from its counts per bin."""
    return tuple(
        TimeBin(label, lower, upper, int(count or 0))
        for (label, lower, upper), count in zip(TIME_BINS, counts, strict=True)
    )


class Run:
    """Temporary tables of one computation, dropped at the end, and progress reports."""

    def __init__(self, store: EventStore, total: int, progress: ProgressCallback | None) -> None:
        self.store = store
        self.total = total
        self.done = 0
        self.progress = progress
        self.tables: list[str] = []

    def table(self, name: str) -> str:
        """A new table name, unique to this process, dropped at the end."""
        table = f"_funnel_{os.getpid()}_{next(_TABLES)}_{name}"
        self.tables.append(table)
        return table

    def create(self, table: str, query: tuple[str, list[Any]]) -> None:
        """Run the CREATE of ``table`` (and ANALYZE it on PostgreSQL)."""
        self.store.query(*query)
        if self.store.dialect == "postgresql":
            self.store.query(f"ANALYZE {table}")

    def follow(self, chain: Chain) -> list[tuple[Any, ...]]:
        """The units reaching each step of ``chain`` (:func:`.sql.chain_sql`'s rows).

        On PostgreSQL with nested loops off for this statement: the planner has no statistics
        for the steps' CTEs, takes a step of thousands of units for one row and rescans the
        journeys once per unit (332 s instead of 3 s at 1M events, docs/scale.md).
        """
        query = chain_sql(chain)
        if self.store.dialect != "postgresql":
            return self.store.query(*query)
        self.store.query("SET enable_nestloop = off")
        try:
            return self.store.query(*query)
        finally:
            self.store.query("RESET enable_nestloop")

    def drop(self, table: str) -> None:
        """Drop ``table`` now, when the next stages do not need it."""
        self.store.query(f"DROP TABLE IF EXISTS {table}")
        self.tables.remove(table)

    def stage(self, description: str) -> None:
        """Report the start of the next stage."""
        logger.debug("Funnel stage %d/%d: %s", self.done + 1, self.total, description)
        if self.progress is not None:
            self.progress(description, self.done, self.total)
        self.done += 1

    def finish(self) -> None:
        """Report that every stage is done."""
        if self.progress is not None:
            self.progress("done", self.total, self.total)


@contextmanager
def temporary_run(
    store: EventStore, total: int, progress: ProgressCallback | None
) -> Iterator[Run]:
    """A :class:`Run` of ``total`` stages whose tables are dropped at the end, even on error."""
    run = Run(store, total, progress)
    try:
        yield run
        run.finish()
    finally:
        for table in run.tables:
            store.query(f"DROP TABLE IF EXISTS {table}")
