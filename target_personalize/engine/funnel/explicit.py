"""Explicit funnels: the steps the user names, counted as product analytics tools count them.

Ordered steps (loose by default, strict optional), a conversion window measured from the
first step, per session or per user, each unit counted once; the heavy work runs as SQL in the
store (see :mod:`.shared` for units and ranges).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, get_args

from target_personalize.engine.exceptions import FunnelError
from target_personalize.engine.funnel.shared import (
    ProgressCallback,
    Run,
    TimeToConvert,
    Unit,
    as_plain,
    check_unit_and_range,
    histogram,
    num,
    ratio,
    temporary_run,
)
from target_personalize.engine.funnel.sql import (
    Chain,
    funnel_events_sql,
    ordered_funnel_events_sql,
    overlap_sql,
)

if TYPE_CHECKING:
    from target_personalize.engine.store.event_store import EventStore

__all__ = ["DEFAULT_WINDOW", "Funnel", "FunnelStep", "Order", "explicit_funnel"]

Order = Literal["loose", "strict"]

#: The conversion window of an explicit funnel unless told otherwise (Mixpanel's default).
DEFAULT_WINDOW = timedelta(days=7)


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
            **as_plain(self),
            "entered": self.entered,
            "completed": self.completed,
            "overall_conversion": self.overall_conversion,
        }


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
    start, end = check_unit_and_range(unit, since, until)
    names = [str(step).strip() for step in steps]
    if not names or not all(names):
        raise FunnelError("an explicit funnel needs at least one step, and no step may be empty")
    if order not in get_args(Order):
        raise FunnelError(f"order must be 'loose' or 'strict', not {order!r}")
    if window is not None and window < timedelta(0):
        raise FunnelError(f"the conversion window must not be negative, got {window}")
    with temporary_run(store, 2, progress) as run:
        rows = _follow_units(
            run, names, unit=unit, strict=order == "strict", window=window, start=start, end=end
        )
    last = rows[-1]
    return Funnel(
        steps=_steps(names, rows),
        unit=unit,
        order=order,
        window_seconds=None if window is None else window.total_seconds(),
        since=start,
        until=end,
        time_to_convert=TimeToConvert(
            converters=int(last[1]),
            median_seconds=num(last[2]),
            mean_seconds=num(last[3]),
            p90_seconds=num(last[4]),
            histogram=histogram(last[5:]),
        ),
    )


def _follow_units(
    run: Run,
    names: list[str],
    *,
    unit: Unit,
    strict: bool,
    window: timedelta | None,
    start: datetime | None,
    end: datetime | None,
) -> list[tuple[Any, ...]]:
    """Per step: the units that reached it, their time from step 1, and its histogram."""
    store = run.store
    run.stage("Selecting the funnel's events")
    table = run.table("steps")
    run.create(
        table,
        funnel_events_sql(
            table,
            steps=names,
            unit=unit,
            keep_all=strict,
            since=start,
            until=end,
            events=store.events_table,
        ),
    )
    # Events that match two steps (a repeated step, or a type named by one step and a raw
    # name by another) must not serve both: then, and for strict order, number them.
    exclusive = int(store.query(*overlap_sql(table, len(names)))[0][0]) <= 1
    if strict or not exclusive:
        ordered = run.table("ordered")
        run.create(ordered, ordered_funnel_events_sql(ordered, table, len(names), strict=strict))
        table = ordered
    run.stage("Following units through the steps")
    chain = Chain(
        table,
        [(f"r.m{k} = 1", []) for k in range(1, len(names) + 1)],
        exclusive=exclusive,
        strict=strict,
        window=window,
    )
    return run.follow(chain)


def _steps(names: list[str], rows: list[tuple[Any, ...]]) -> tuple[FunnelStep, ...]:
    """The steps, with conversion and drop-off from each step to the next."""
    result: list[FunnelStep] = []
    entered = int(rows[0][1]) if rows else 0
    previous: int | None = None
    for (_, count, median, mean, _p90, *_bins), name in zip(rows, names, strict=True):
        units = int(count)
        step_conversion = 1.0 if previous is None and units else ratio(units, previous or 0)
        result.append(
            FunnelStep(
                name=name,
                units=units,
                step_conversion=step_conversion,
                overall_conversion=ratio(units, entered),
                drop_off=0 if previous is None else previous - units,
                drop_off_rate=None if step_conversion is None else 1.0 - step_conversion,
                median_seconds_from_start=num(median),
                mean_seconds_from_start=num(mean),
            )
        )
        previous = units
    return tuple(result)
