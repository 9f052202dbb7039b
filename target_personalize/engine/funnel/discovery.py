"""Funnel mining toward the key conversion: discovered funnels, explicit funnels, event weights.

Two entry points, both running their heavy work as SQL inside the :class:`EventStore` (DuckDB or
PostgreSQL, same results):

* :func:`discover_funnel` finds from the data which event types lead to the key conversion:
  the typical ordered steps of converting journeys with per-step reach, share of converters,
  conversion rate, lift, time to conversion and drop-off; the most frequent paths of converting
  and non-converting journeys; each event type's contribution (lift, and removal effect on a
  Markov chain over event types) normalised into :attr:`DiscoveredFunnel.event_weights`, which
  the ranker reads; and how implicit signals (engagement time, scroll depth, media progress)
  relate to converting.
* :func:`explicit_funnel` computes the funnel of steps the user names, with the semantics of
  product analytics tools: ordered steps (loose by default, strict optional), a conversion
  window measured from the first step, per session or per user, each unit counted once.

Definitions shared by both:

* A *unit* is a session (``session_key`` of ``sessionized_events_sql()``: the source's session
  id, else 30 minutes of inactivity) or a user (``visitor``: user id, else anonymous id, else
  session id). Only raw events (not aggregates) in ``[since, until)`` count.
* The key conversion, and every explicit step, matches an event whose canonical ``event_type``
  or raw ``event_name`` equals it.
* A unit converts when it holds at least one conversion; its *journey* is its events up to its
  first conversion (all its events if it never converts). Events at the same timestamp as the
  conversion count as before it.

Event weights (:attr:`DiscoveredFunnel.event_weights`): a dict from canonical event type to a
weight in [0, 1]. The types of the conversion events weigh 1.0. Every other type ``t`` seen in
a journey weighs the mean of two scores, each in [0, 1]:

* necessity: ``removal_effect(t) / max removal effect`` over all non-conversion types;
* signal: ``ln(lift*(t)) / ln(max lift*)`` clipped to [0, 1], where ``lift*`` is the lift with
  the conversion rate shrunk towards the base rate by :data:`LIFT_PRIOR_UNITS` pseudo-units
  (``(converters(t) + k * base) / (units(t) + k) / base``), so rare types cannot top the scale;
  0 when no type has a lift above 1.

So a type every converting journey needs (product views) and a type that strongly predicts
converting (add to cart) both weigh high, and a type that neither leads to nor predicts the
conversion weighs 0. Weights are rounded to 4 decimals.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields, is_dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, get_args

from target_personalize.engine.exceptions import FunnelError
from target_personalize.engine.funnel.markov import Transition, fit_markov_chain
from target_personalize.engine.funnel.sql import (
    SIGNALS,
    TIME_BINS,
    Chain,
    SignalSpec,
    chain_sql,
    contributions_sql,
    conversion_types_sql,
    event_types_sql,
    events_sql,
    funnel_events_sql,
    journeys_sql,
    ordered_funnel_events_sql,
    overlap_sql,
    paths_sql,
    signal_units_sql,
    signals_sql,
    time_to_convert_sql,
    transitions_sql,
    units_sql,
    walks_sql,
)

if TYPE_CHECKING:
    from target_personalize.engine.store.event_store import EventStore

__all__ = [
    "DEFAULT_WINDOW",
    "LIFT_PRIOR_UNITS",
    "Contribution",
    "DiscoveredFunnel",
    "DiscoveredStep",
    "Funnel",
    "FunnelError",
    "FunnelStep",
    "ImplicitSignal",
    "Order",
    "PathStat",
    "ProgressCallback",
    "SignalBucket",
    "TimeBin",
    "TimeToConvert",
    "Unit",
    "compute_event_weights",
    "discover_funnel",
    "explicit_funnel",
]

logger = logging.getLogger(__name__)

Unit = Literal["session", "user"]
Order = Literal["loose", "strict"]
#: Called with (stage description, stages done, total stages) as the work advances.
ProgressCallback = Callable[[str, int, int], None]

#: The conversion window of an explicit funnel unless told otherwise (Mixpanel's default).
DEFAULT_WINDOW = timedelta(days=7)
#: Pseudo-units that shrink an event type's conversion rate towards the base rate for weights.
LIFT_PRIOR_UNITS = 20.0

_ROUND = 6
_TABLES = itertools.count(1)


# Results


def _plain(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
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
        return dict(_plain(self))


@dataclass(frozen=True)
class FunnelStep:
    """One step of an explicit funnel.

    Attributes:
        name: the event type or raw event name the step matches.
        units: units that reached this step (in order, within the window).
        step_conversion: ``units`` / units of the previous step (1.0 for the first step; None
            when the previous step has no units).
        overall_conversion: ``units`` / units that entered step 1 (None if none did).
        drop_off: units of the previous step that did not reach this one (0 for step 1).
        drop_off_rate: ``1 - step_conversion``.
        median_seconds_from_start: median time from step 1 to this step; also the mean.
    """

    name: str
    units: int
    step_conversion: float | None
    overall_conversion: float | None
    drop_off: int
    drop_off_rate: float | None
    median_seconds_from_start: float | None
    mean_seconds_from_start: float | None


@dataclass(frozen=True)
class Funnel:
    """An explicit funnel: steps the user named, counted as product analytics tools do.

    Attributes:
        steps: the steps, in order.
        unit: ``"session"`` or ``"user"``.
        order: ``"loose"`` (other events may happen between steps) or ``"strict"``.
        window_seconds: the conversion window from step 1 (None: unbounded).
        since, until: the time range, ``[since, until)``, None for open.
        time_to_convert: from step 1 to the last step, for units that completed the funnel.
    """

    steps: tuple[FunnelStep, ...]
    unit: Unit
    order: Order
    window_seconds: float | None
    since: datetime | None
    until: datetime | None
    time_to_convert: TimeToConvert

    @property
    def entered(self) -> int:
        """Units that reached step 1."""
        return self.steps[0].units if self.steps else 0

    @property
    def completed(self) -> int:
        """Units that reached the last step."""
        return self.steps[-1].units if self.steps else 0

    @property
    def overall_conversion(self) -> float | None:
        """``completed / entered`` (None if nobody entered)."""
        return self.completed / self.entered if self.entered else None

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly form (documented in ``docs/funnel.md``)."""
        return {
            "kind": "explicit",
            **_plain(self),
            "entered": self.entered,
            "completed": self.completed,
            "overall_conversion": self.overall_conversion,
        }


@dataclass(frozen=True)
class DiscoveredStep:
    """One step of a discovered funnel (the last step is the conversion itself).

    Attributes:
        event_type: the step's event type (the conversion name for the last step).
        units: units whose journey holds this event type.
        converters: those of them that converted.
        converter_share: share of all converters whose journey passed through it.
        conversion_rate: ``converters / units``.
        lift: ``conversion_rate`` / the base conversion rate (None without converters).
        median_seconds_to_conversion: median time from the step's first occurrence to the
            conversion, over converters; also the 90th percentile.
        funnel_units: units that reached this step in funnel order (loose order, from their
            first occurrence of step 1).
        drop_off: share of ``funnel_units`` that did not reach the next step (None for the
            conversion, or when no unit reached this step).
    """

    event_type: str
    units: int
    converters: int
    converter_share: float | None
    conversion_rate: float | None
    lift: float | None
    median_seconds_to_conversion: float | None
    p90_seconds_to_conversion: float | None
    funnel_units: int
    drop_off: float | None


@dataclass(frozen=True)
class PathStat:
    """A journey path: event types in order, repeats collapsed, the conversion left out.

    Attributes:
        path: the event types (empty for units that converted at their first event).
        converting: True in the list of converting paths, False in the non-converting one.
        units: units of that group with exactly this path.
        support: ``units`` / all units of the group.
        conversion_rate: among all units with this path before converting (or in all), the
            share that converted.
    """

    path: tuple[str, ...]
    converting: bool
    units: int
    support: float
    conversion_rate: float


@dataclass(frozen=True)
class Contribution:
    """How much an event type says about the key conversion.

    Attributes:
        event_type: the canonical event type.
        units: units whose journey holds it; ``converters`` of them converted.
        converter_share: share of all converters whose journey holds it.
        conversion_rate: ``converters / units``.
        lift: ``conversion_rate`` / base rate (None without converters).
        removal_effect: relative drop of the Markov chain's conversion probability when
            the type is removed.
        weight: its weight for the ranker (see the module documentation).
    """

    event_type: str
    units: int
    converters: int
    converter_share: float | None
    conversion_rate: float
    lift: float | None
    removal_effect: float
    weight: float


@dataclass(frozen=True)
class SignalBucket:
    """Units whose aggregated signal falls in ``[lower, upper)``, and how many converted."""

    label: str
    lower: float
    upper: float | None
    units: int
    converters: int
    conversion_rate: float | None


@dataclass(frozen=True)
class ImplicitSignal:
    """How one implicit signal, aggregated over each journey, relates to converting.

    Attributes:
        name: ``engagement_ms``, ``scroll_depth_pct`` or ``media_progress_pct``.
        aggregate: ``sum`` (engagement time) or ``max`` (scroll depth, media progress) over
            the journey before the conversion.
        unit: what the values below are in (``seconds`` or ``percent``).
        units: units with the signal; ``converters`` of them converted.
        mean_converters, mean_others, median_converters, median_others: the value for
            converters and for the others.
        correlation: Pearson correlation of the value with converting (0/1), None when
            undefined.
        buckets: conversion by value range.
    """

    name: str
    aggregate: str
    unit: str
    units: int
    converters: int
    mean_converters: float | None
    mean_others: float | None
    median_converters: float | None
    median_others: float | None
    correlation: float | None
    buckets: tuple[SignalBucket, ...]


@dataclass(frozen=True)
class DiscoveredFunnel:
    """What the data says about reaching the key conversion.

    Attributes:
        conversion: the key conversion (event type or raw event name).
        unit: ``"session"`` or ``"user"``.
        since, until: the time range, ``[since, until)``.
        units: units with at least one event in range; ``converters`` of them converted.
        base_rate: ``converters / units`` (None without units).
        steps: the typical ordered steps, ending with the conversion.
        converting_paths, non_converting_paths: the most frequent paths of each group.
        contributions: every event type seen in a journey, highest weight first.
        event_weights: event type -> weight in [0, 1] for the ranker.
        signals: implicit signals.
        time_to_convert: from a unit's first event to its first conversion.
        conversion_probability: P(conversion) of the Markov chain (equals the base rate).
    """

    conversion: str
    unit: Unit
    since: datetime | None
    until: datetime | None
    units: int
    converters: int
    base_rate: float | None
    steps: tuple[DiscoveredStep, ...]
    converting_paths: tuple[PathStat, ...]
    non_converting_paths: tuple[PathStat, ...]
    contributions: tuple[Contribution, ...]
    event_weights: dict[str, float]
    signals: tuple[ImplicitSignal, ...]
    time_to_convert: TimeToConvert
    conversion_probability: float

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly form (documented in ``docs/funnel.md``)."""
        return {"kind": "discovered", **_plain(self)}


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


def _check_common(
    unit: str, since: datetime | date | None, until: datetime | date | None
) -> tuple[datetime | None, datetime | None]:
    if unit not in get_args(Unit):
        raise FunnelError(f"unit must be 'session' or 'user', not {unit!r}")
    start, end = _as_datetime(since, "since"), _as_datetime(until, "until")
    if start is not None and end is not None and start >= end:
        raise FunnelError(f"since ({start}) must be before until ({end})")
    return start, end


def _ratio(part: float, whole: float) -> float | None:
    return part / whole if whole else None


def _num(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return round(number, _ROUND) if math.isfinite(number) else None


def _histogram(counts: Sequence[Any]) -> tuple[TimeBin, ...]:
    return tuple(
        TimeBin(label, lower, upper, int(count or 0))
        for (label, lower, upper), count in zip(TIME_BINS, counts, strict=True)
    )


class _TypeStats(NamedTuple):
    """One event type in the journeys: units with it, converters, and timing over converters."""

    label: str
    units: int
    converters: int
    position: float | None
    median: float | None
    p90: float | None


class _Run:
    """Temporary tables of one computation, dropped at the end, and progress reports."""

    def __init__(self, store: EventStore, total: int, progress: ProgressCallback | None) -> None:
        self.store = store
        self.total = total
        self.done = 0
        self.progress = progress
        self.tables: list[str] = []

    def table(self, name: str) -> str:
        table = f"_funnel_{os.getpid()}_{next(_TABLES)}_{name}"
        self.tables.append(table)
        return table

    def create(self, table: str, query: tuple[str, list[Any]]) -> None:
        self.store.query(*query)
        if self.store.dialect == "postgresql":
            self.store.query(f"ANALYZE {table}")

    def drop(self, table: str) -> None:
        self.store.query(f"DROP TABLE IF EXISTS {table}")
        self.tables.remove(table)

    def stage(self, description: str) -> None:
        logger.debug("Funnel stage %d/%d: %s", self.done + 1, self.total, description)
        if self.progress is not None:
            self.progress(description, self.done, self.total)
        self.done += 1

    def finish(self) -> None:
        if self.progress is not None:
            self.progress("done", self.total, self.total)


@contextmanager
def _run(store: EventStore, total: int, progress: ProgressCallback | None) -> Iterator[_Run]:
    run = _Run(store, total, progress)
    try:
        yield run
        run.finish()
    finally:
        for table in run.tables:
            store.query(f"DROP TABLE IF EXISTS {table}")


# Explicit funnels


def explicit_funnel(
    store: EventStore,
    steps: Sequence[str],
    *,
    unit: Unit = "session",
    order: Order = "loose",
    window: timedelta | None = DEFAULT_WINDOW,
    since: datetime | date | None = None,
    until: datetime | date | None = None,
    progress: ProgressCallback | None = None,
) -> Funnel:
    """Count an explicit funnel: the units that reach each named step, in order.

    Semantics (Mixpanel "uniques"): a unit enters at its first event in range matching step 1;
    the conversion window is measured from that event and is not reset by repeats of step 1.
    Step k is reached by the earliest later event matching it that no earlier step used, at
    most ``window`` after the entry. Events with the same timestamp may satisfy steps in either
    order. In ``"strict"`` order nothing else may happen at a time strictly between two
    consecutive steps; in ``"loose"`` order anything may. Each unit counts once.

    Args:
        store: the event store.
        steps: event types or raw event names, in funnel order (a name may repeat).
        unit: count ``"session"``s or ``"user"``s.
        order: ``"loose"`` (default) or ``"strict"``.
        window: the conversion window, measured from step 1 and inclusive; None for no limit.
        since: first moment of the range (inclusive); a date means its midnight UTC.
        until: end of the range (exclusive).
        progress: called as the work advances.

    Returns:
        The funnel.

    Raises:
        FunnelError: on no steps, an empty step name, an unknown unit or order, a negative
            window or an empty range.
    """
    start, end = _check_common(unit, since, until)
    names = [str(step).strip() for step in steps]
    if not names or not all(names):
        raise FunnelError("an explicit funnel needs at least one step, and no step may be empty")
    if order not in get_args(Order):
        raise FunnelError(f"order must be 'loose' or 'strict', not {order!r}")
    if window is not None and window < timedelta(0):
        raise FunnelError(f"the conversion window must not be negative, got {window}")
    strict = order == "strict"
    with _run(store, 2, progress) as run:
        run.stage("Selecting the funnel's events")
        table = run.table("steps")
        run.create(
            table,
            funnel_events_sql(
                table, steps=names, unit=unit, keep_all=strict, since=start, until=end
            ),
        )
        # Events that match two steps (a repeated step, or a type named by one step and a raw
        # name by another) must not serve both: then, and for strict order, number them.
        exclusive = int(store.query(*overlap_sql(table, len(names)))[0][0]) <= 1
        if strict or not exclusive:
            ordered = run.table("ordered")
            run.create(
                ordered, ordered_funnel_events_sql(ordered, table, len(names), strict=strict)
            )
            table = ordered
        run.stage("Following units through the steps")
        chain = Chain(
            table,
            [(f"r.m{k} = 1", []) for k in range(1, len(names) + 1)],
            exclusive=exclusive,
            strict=strict,
            window=window,
        )
        rows = store.query(*chain_sql(chain))
    result: list[FunnelStep] = []
    entered = int(rows[0][1]) if rows else 0
    previous: int | None = None
    for (_, count, median, mean, _p90, *_bins), name in zip(rows, names, strict=True):
        units = int(count)
        step_conversion = 1.0 if previous is None and units else _ratio(units, previous or 0)
        result.append(
            FunnelStep(
                name=name,
                units=units,
                step_conversion=step_conversion,
                overall_conversion=_ratio(units, entered),
                drop_off=0 if previous is None else previous - units,
                drop_off_rate=None if step_conversion is None else 1.0 - step_conversion,
                median_seconds_from_start=_num(median),
                mean_seconds_from_start=_num(mean),
            )
        )
        previous = units
    last = rows[-1]
    time_to_convert = TimeToConvert(
        converters=int(last[1]),
        median_seconds=_num(last[2]),
        mean_seconds=_num(last[3]),
        p90_seconds=_num(last[4]),
        histogram=_histogram(last[5:]),
    )
    return Funnel(
        steps=tuple(result),
        unit=unit,
        order=order,
        window_seconds=None if window is None else window.total_seconds(),
        since=start,
        until=end,
        time_to_convert=time_to_convert,
    )


# Discovered funnels


def compute_event_weights(
    contributions: Sequence[Contribution],
    *,
    base_rate: float | None,
    conversion_types: Sequence[str] = (),
) -> dict[str, float]:
    """Turn event-type contributions into ranker weights in [0, 1].

    See the module documentation for the definition. ``Contribution.weight`` is ignored: this
    is what computes it.

    Args:
        contributions: one per non-conversion event type (units, converters, removal effect).
        base_rate: the base conversion rate (None or 0: no converters, all weights 0).
        conversion_types: event types of the conversion events; they weigh 1.0.

    Returns:
        Event type -> weight, sorted by event type.
    """
    weights: dict[str, float] = {}
    max_effect = max((c.removal_effect for c in contributions), default=0.0)
    lifts: dict[str, float] = {}
    if base_rate:
        for c in contributions:
            shrunk = (c.converters + LIFT_PRIOR_UNITS * base_rate) / (c.units + LIFT_PRIOR_UNITS)
            lifts[c.event_type] = shrunk / base_rate
    max_lift = max(lifts.values(), default=0.0)
    for c in contributions:
        necessity = c.removal_effect / max_effect if max_effect > 0 else 0.0
        signal = 0.0
        lift = lifts.get(c.event_type, 0.0)
        if max_lift > 1.0 and lift > 1.0:
            signal = min(1.0, math.log(lift) / math.log(max_lift))
        weights[c.event_type] = round(0.5 * necessity + 0.5 * signal, 4)
    for event_type in conversion_types:
        weights[event_type] = 1.0
    return dict(sorted(weights.items()))


def discover_funnel(
    store: EventStore,
    conversion: str,
    *,
    unit: Unit = "session",
    since: datetime | date | None = None,
    until: datetime | date | None = None,
    min_share: float = 0.25,
    max_steps: int = 5,
    top_paths: int = 10,
    window: timedelta | None = None,
    random_state: int | None = None,
    progress: ProgressCallback | None = None,
) -> DiscoveredFunnel:
    """Find from the data the funnel that leads to the key conversion.

    Steps: the event types that at least ``min_share`` of converting journeys pass through
    (at most ``max_steps``, the most shared ones), ordered by the median position of their
    first occurrence in converting journeys, then the conversion. Their ``funnel_units`` and
    ``drop_off`` follow units through those steps in loose order, as :func:`explicit_funnel`
    does (with ``window``, unbounded by default).

    Paths, contributions and signals are described on :class:`PathStat`,
    :class:`Contribution` and :class:`ImplicitSignal`; event weights in the module
    documentation.

    Args:
        store: the event store.
        conversion: the key conversion: an event type or a raw event name.
        unit: ``"session"`` (default) or ``"user"``.
        since: first moment of the range (inclusive); a date means its midnight UTC.
        until: end of the range (exclusive).
        min_share: least share of converting journeys a step must appear in, in (0, 1].
        max_steps: most steps before the conversion.
        top_paths: how many paths to return per group.
        window: conversion window for the step-by-step funnel counts (None: unbounded).
        random_state: accepted for the engine's common contract; every computation here is
            exact and deterministic, so it has no effect.
        progress: called as the work advances.

    Returns:
        The discovered funnel.

    Raises:
        FunnelError: on an empty conversion, an unknown unit, an empty range or
            out-of-range parameters.
    """
    del random_state  # deterministic: nothing is sampled
    start, end = _check_common(unit, since, until)
    conversion = str(conversion).strip()
    if not conversion:
        raise FunnelError("the key conversion must name an event type or raw event name")
    if not 0.0 < min_share <= 1.0:
        raise FunnelError(f"min_share must be in (0, 1], got {min_share}")
    if max_steps < 0 or top_paths < 0:
        raise FunnelError("max_steps and top_paths must not be negative")
    if window is not None and window < timedelta(0):
        raise FunnelError(f"the conversion window must not be negative, got {window}")
    with _run(store, 6, progress) as run:
        run.stage("Gathering events into journeys")
        # Label ids in the byte order of the labels: comparing id arrays compares label paths.
        labels = sorted(
            {str(r[0]) for r in store.query(*event_types_sql(start, end))} | {conversion},
            key=str.encode,
        )
        label_of = dict(enumerate(labels, start=1))
        events, units_table = run.table("events"), run.table("units")
        journeys = run.table("journeys")
        run.create(
            events,
            events_sql(
                events, conversion=conversion, labels=labels, unit=unit, since=start, until=end
            ),
        )
        run.create(units_table, units_sql(units_table, events))
        run.create(journeys, journeys_sql(journeys, events, units_table))
        run.drop(events)

        run.stage("Counting units and time to convert")
        units_row = store.query(*time_to_convert_sql(units_table))[0]
        units, converters = int(units_row[0]), int(units_row[1])
        base_rate = _ratio(converters, units)
        time_to_convert = TimeToConvert(
            converters=converters,
            median_seconds=_num(units_row[2]),
            p90_seconds=_num(units_row[3]),
            mean_seconds=_num(units_row[4]),
            histogram=_histogram(units_row[5:]),
        )
        conversion_types = sorted(
            str(r[0]) for r in store.query(*conversion_types_sql(conversion, start, end))
        )

        run.stage("Collapsing journeys into paths")
        walks = run.table("walks")
        run.create(walks, walks_sql(walks, journeys))
        type_rows = store.query(*contributions_sql(walks, units_table))
        path_rows = store.query(*paths_sql(walks, top_paths))

        run.stage("Fitting the Markov chain over event types")
        chain = fit_markov_chain(
            _with_exits(
                [
                    (
                        None if a is None else label_of[int(a)],
                        None if b is None else label_of[int(b)],
                        int(n),
                    )
                    for a, b, n in store.query(*transitions_sql(walks))
                ]
            )
        )
        run.drop(walks)

        types = sorted(
            (
                _TypeStats(
                    label_of[int(lid)], int(n), int(c), _num(position), _num(median), _num(p90)
                )
                for lid, n, c, position, median, p90 in type_rows
            ),
            key=lambda t: t.label,
        )
        candidates = [t for t in types if converters and t.converters / converters >= min_share]
        chosen = sorted(candidates, key=lambda t: (-t.converters, t.label))[:max_steps]
        ordered = sorted(
            chosen,
            key=lambda t: (1.0 if t.position is None else t.position, -t.converters, t.label),
        )
        lid_of = {label: lid for lid, label in label_of.items()}

        run.stage("Following units through the discovered steps")
        # The steps are distinct event types and the conversion is none of them, so no event
        # can serve two steps: the funnel needs no event positions.
        steps_chain = Chain(
            journeys,
            [
                *(("r.is_conv = 0 AND r.lid = %s", [lid_of[t.label]]) for t in ordered),
                ("r.is_conv = 1", []),
            ],
            window=window,
        )
        funnel_counts = [int(r[1]) for r in store.query(*chain_sql(steps_chain))]

        run.stage("Relating implicit signals to converting")
        signal_table = run.table("signals")
        run.create(signal_table, signal_units_sql(signal_table, journeys))
        signals = tuple(
            _signal(spec, store.query(*signals_sql(signal_table, spec))[0]) for spec in SIGNALS
        )

    steps = []
    for k, (label, n, c, _position, median, p90) in enumerate(ordered):
        here, after = funnel_counts[k], funnel_counts[k + 1]
        rate = c / n
        steps.append(
            DiscoveredStep(
                event_type=label,
                units=n,
                converters=c,
                converter_share=_ratio(c, converters),
                conversion_rate=rate,
                lift=rate / base_rate if base_rate else None,
                median_seconds_to_conversion=median,
                p90_seconds_to_conversion=p90,
                funnel_units=here,
                drop_off=None if not here else 1.0 - after / here,
            )
        )
    steps.append(
        DiscoveredStep(
            event_type=conversion,
            units=converters,
            converters=converters,
            converter_share=1.0 if converters else None,
            conversion_rate=1.0 if converters else None,
            lift=1.0 / base_rate if base_rate else None,
            median_seconds_to_conversion=0.0 if converters else None,
            p90_seconds_to_conversion=0.0 if converters else None,
            funnel_units=funnel_counts[-1],
            drop_off=None,
        )
    )

    unweighted = [
        Contribution(
            event_type=label,
            units=n,
            converters=c,
            converter_share=_ratio(c, converters),
            conversion_rate=c / n,
            lift=c / n / base_rate if base_rate else None,
            removal_effect=chain.removal_effects.get(label, 0.0),
            weight=0.0,
        )
        for label, n, c, *_ in types
    ]
    weights = compute_event_weights(
        unweighted, base_rate=base_rate, conversion_types=conversion_types
    )
    contributions = tuple(
        sorted(
            (replace(c, weight=weights[c.event_type]) for c in unweighted),
            key=lambda c: (-c.weight, -c.units, c.event_type),
        )
    )

    converting, non_converting = [], []
    others_total = units - converters
    for group, path, conv_count, other_count in path_rows:
        conv, others = int(conv_count), int(other_count)
        sequence = tuple(label_of[int(lid)] for lid in path or ())
        rate = conv / (conv + others)
        if int(group) == 1:
            converting.append(PathStat(sequence, True, conv, conv / converters, rate))
        else:
            non_converting.append(PathStat(sequence, False, others, others / others_total, rate))

    return DiscoveredFunnel(
        conversion=conversion,
        unit=unit,
        since=start,
        until=end,
        units=units,
        converters=converters,
        base_rate=base_rate,
        steps=tuple(steps),
        converting_paths=tuple(sorted(converting, key=_path_order)),
        non_converting_paths=tuple(sorted(non_converting, key=_path_order)),
        contributions=contributions,
        event_weights=weights,
        signals=signals,
        time_to_convert=time_to_convert,
        conversion_probability=chain.conversion_probability,
    )


def _with_exits(steps: Sequence[tuple[str | None, str | None, int]]) -> list[Transition]:
    """Markov transitions from collapsed-journey steps, adding each label's exits.

    A step into ``None`` is the conversion. Every visit of a label ends in exactly one step
    out of it (to another label or the conversion) or in the exit, so the exits are the
    visits minus the steps out.
    """
    visits: dict[str, int] = {}
    out: dict[str, int] = {}
    transitions: list[Transition] = []
    for source, target, count in steps:
        if target is None:
            transitions.append((source, None, "conversion", count))
        else:
            transitions.append((source, target, "step", count))
            visits[target] = visits.get(target, 0) + count
        if source is not None:
            out[source] = out.get(source, 0) + count
    for label, n in sorted(visits.items()):
        exits = n - out.get(label, 0)
        if exits > 0:
            transitions.append((label, None, "exit", exits))
    return transitions


def _path_order(path: PathStat) -> tuple[int, tuple[bytes, ...]]:
    """Most units first, ties by the sequence of labels in byte order (as the SQL breaks them)."""
    return -path.units, tuple(label.encode() for label in path.path)


def _signal(spec: SignalSpec, row: Sequence[Any]) -> ImplicitSignal:
    units, converters = int(row[0] or 0), int(row[1] or 0)
    buckets = []
    for i, (label, lower, upper) in enumerate(spec.buckets):
        n, c = int(row[7 + 2 * i] or 0), int(row[8 + 2 * i] or 0)
        buckets.append(SignalBucket(label, lower, upper, n, c, _ratio(c, n)))
    return ImplicitSignal(
        name=spec.name,
        aggregate=spec.aggregate,
        unit=spec.unit,
        units=units,
        converters=converters,
        mean_converters=_num(row[2]),
        mean_others=_num(row[3]),
        median_converters=_num(row[4]),
        median_others=_num(row[5]),
        correlation=_num(row[6]),
        buckets=tuple(buckets),
    )
