"""Discovered funnels: which event types lead to the key conversion, and the ranker's weights.

:func:`discover_funnel` finds from the data the typical ordered steps of converting journeys
with per-step reach, share of converters, conversion rate, lift, time to conversion and
drop-off; the most frequent paths of converting and non-converting journeys; each event type's
contribution (lift, and removal effect on a Markov chain over event types) normalised into
:attr:`DiscoveredFunnel.event_weights`, which the ranker reads; and how implicit signals
(engagement time, scroll depth, media progress) relate to converting. The heavy work runs as
SQL inside the store (units, journeys and ranges as defined in :mod:`.shared`).

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

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any, NamedTuple

from target_personalize.engine.exceptions import FunnelError
from target_personalize.engine.funnel.markov import MarkovChain, Transition, fit_markov_chain
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
    SIGNALS,
    Chain,
    SignalSpec,
    contributions_sql,
    conversion_types_sql,
    event_types_sql,
    events_sql,
    journeys_sql,
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
    "LIFT_PRIOR_UNITS",
    "Contribution",
    "DiscoveredFunnel",
    "DiscoveredStep",
    "ImplicitSignal",
    "PathStat",
    "SignalBucket",
    "compute_event_weights",
    "discover_funnel",
]

#: Pseudo-units that shrink an event type's conversion rate towards the base rate for weights.
LIFT_PRIOR_UNITS = 20.0


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
        return {"kind": "discovered", **as_plain(self)}


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
    start, end = check_unit_and_range(unit, since, until)
    conversion = str(conversion).strip()
    if not conversion:
        raise FunnelError("the key conversion must name an event type or raw event name")
    if not 0.0 < min_share <= 1.0:
        raise FunnelError(f"min_share must be in (0, 1], got {min_share}")
    if max_steps < 0 or top_paths < 0:
        raise FunnelError("max_steps and top_paths must not be negative")
    if window is not None and window < timedelta(0):
        raise FunnelError(f"the conversion window must not be negative, got {window}")
    with temporary_run(store, 6, progress) as run:
        journeys = _gather_journeys(run, conversion, unit, start, end)
        totals = _count_units(run, journeys, conversion, start, end)
        types, path_rows, chain = _collapse_journeys(run, journeys, top_paths)
        steps = _choose_steps(types, totals.converters, min_share, max_steps)
        funnel_counts = _follow_steps(run, journeys, steps, window)
        signals = _implicit_signals(run, journeys)
    contributions, weights = _contributions(types, chain, totals)
    converting, non_converting = _paths(path_rows, journeys.label_of, totals)
    return DiscoveredFunnel(
        conversion=conversion,
        unit=unit,
        since=start,
        until=end,
        units=totals.units,
        converters=totals.converters,
        base_rate=totals.base_rate,
        steps=_discovered_steps(steps, funnel_counts, totals, conversion),
        converting_paths=converting,
        non_converting_paths=non_converting,
        contributions=contributions,
        event_weights=weights,
        signals=signals,
        time_to_convert=totals.time_to_convert,
        conversion_probability=chain.conversion_probability,
    )


# The steps of discover_funnel


class _Journeys(NamedTuple):
    """The journeys table (one row per event up to the conversion) and its helper tables."""

    table: str
    units: str
    label_of: dict[int, str]


class _Totals(NamedTuple):
    """Units, converters and how long converting takes."""

    units: int
    converters: int
    base_rate: float | None
    time_to_convert: TimeToConvert
    conversion_types: list[str]


class _TypeStats(NamedTuple):
    """One event type in the journeys: units with it, converters, and timing over converters."""

    label: str
    units: int
    converters: int
    position: float | None
    median: float | None
    p90: float | None


def _gather_journeys(
    run: Run, conversion: str, unit: Unit, start: datetime | None, end: datetime | None
) -> _Journeys:
    """Stage 1: every unit's events up to its first conversion, event types as label ids."""
    run.stage("Gathering events into journeys")
    store = run.store
    # Label ids in the byte order of the labels: comparing id arrays compares label paths.
    labels = sorted(
        {str(r[0]) for r in store.query(*event_types_sql(start, end, store.events_table))}
        | {conversion},
        key=str.encode,
    )
    events, units, journeys = run.table("events"), run.table("units"), run.table("journeys")
    run.create(
        events,
        events_sql(
            events,
            conversion=conversion,
            labels=labels,
            unit=unit,
            since=start,
            until=end,
            events=store.events_table,
        ),
    )
    run.create(units, units_sql(units, events))
    run.create(journeys, journeys_sql(journeys, events, units))
    run.drop(events)
    return _Journeys(journeys, units, dict(enumerate(labels, start=1)))


def _count_units(
    run: Run, journeys: _Journeys, conversion: str, start: datetime | None, end: datetime | None
) -> _Totals:
    """Stage 2: units, converters, time to convert, and the event types of conversions."""
    run.stage("Counting units and time to convert")
    store = run.store
    row = store.query(*time_to_convert_sql(journeys.units))[0]
    units, converters = int(row[0]), int(row[1])
    conversion_types = sorted(
        str(r[0])
        for r in store.query(*conversion_types_sql(conversion, start, end, store.events_table))
    )
    return _Totals(
        units=units,
        converters=converters,
        base_rate=ratio(converters, units),
        time_to_convert=TimeToConvert(
            converters=converters,
            median_seconds=num(row[2]),
            p90_seconds=num(row[3]),
            mean_seconds=num(row[4]),
            histogram=histogram(row[5:]),
        ),
        conversion_types=conversion_types,
    )


def _collapse_journeys(
    run: Run, journeys: _Journeys, top_paths: int
) -> tuple[list[_TypeStats], list[tuple[Any, ...]], MarkovChain]:
    """Stages 3 and 4: journeys as paths of event types; per-type stats; the Markov chain."""
    run.stage("Collapsing journeys into paths")
    store = run.store
    label_of = journeys.label_of
    walks = run.table("walks")
    run.create(walks, walks_sql(walks, journeys.table))
    type_rows = store.query(*contributions_sql(walks, journeys.units))
    path_rows = store.query(*paths_sql(walks, top_paths))
    run.stage("Fitting the Markov chain over event types")
    steps = [
        (None if a is None else label_of[int(a)], None if b is None else label_of[int(b)], int(n))
        for a, b, n in store.query(*transitions_sql(walks))
    ]
    chain = fit_markov_chain(_with_exits(steps))
    run.drop(walks)
    types = sorted(
        (
            _TypeStats(label_of[int(lid)], int(n), int(c), num(position), num(median), num(p90))
            for lid, n, c, position, median, p90 in type_rows
        ),
        key=lambda t: t.label,
    )
    return types, path_rows, chain


def _choose_steps(
    types: list[_TypeStats], converters: int, min_share: float, max_steps: int
) -> list[_TypeStats]:
    """The steps: the types most shared by converters, by median first occurrence."""
    candidates = [t for t in types if converters and t.converters / converters >= min_share]
    chosen = sorted(candidates, key=lambda t: (-t.converters, t.label))[:max_steps]
    return sorted(
        chosen,
        key=lambda t: (1.0 if t.position is None else t.position, -t.converters, t.label),
    )


def _follow_steps(
    run: Run, journeys: _Journeys, steps: list[_TypeStats], window: timedelta | None
) -> list[int]:
    """Stage 5: the units that reach each step, then the conversion, in loose order."""
    run.stage("Following units through the discovered steps")
    lid_of = {label: lid for lid, label in journeys.label_of.items()}
    # The steps are distinct event types and the conversion is none of them, so no event
    # can serve two steps: the funnel needs no event positions.
    chain = Chain(
        journeys.table,
        [
            *(("r.is_conv = 0 AND r.lid = %s", [lid_of[t.label]]) for t in steps),
            ("r.is_conv = 1", []),
        ],
        window=window,
    )
    return [int(r[1]) for r in run.follow(chain)]


def _implicit_signals(run: Run, journeys: _Journeys) -> tuple[ImplicitSignal, ...]:
    """Stage 6: each implicit signal over the journeys, against converting."""
    run.stage("Relating implicit signals to converting")
    table = run.table("signals")
    run.create(table, signal_units_sql(table, journeys.table))
    return tuple(_signal(spec, run.store.query(*signals_sql(table, spec))[0]) for spec in SIGNALS)


def _discovered_steps(
    steps: list[_TypeStats], funnel_counts: list[int], totals: _Totals, conversion: str
) -> tuple[DiscoveredStep, ...]:
    """The steps with their reach, share, rate, lift and drop-off, then the conversion."""
    converters, base_rate = totals.converters, totals.base_rate
    found = []
    for k, (label, n, c, _position, median, p90) in enumerate(steps):
        here, after = funnel_counts[k], funnel_counts[k + 1]
        rate = c / n
        found.append(
            DiscoveredStep(
                event_type=label,
                units=n,
                converters=c,
                converter_share=ratio(c, converters),
                conversion_rate=rate,
                lift=rate / base_rate if base_rate else None,
                median_seconds_to_conversion=median,
                p90_seconds_to_conversion=p90,
                funnel_units=here,
                drop_off=None if not here else 1.0 - after / here,
            )
        )
    found.append(
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
    return tuple(found)


def _contributions(
    types: list[_TypeStats], chain: MarkovChain, totals: _Totals
) -> tuple[tuple[Contribution, ...], dict[str, float]]:
    """Every event type's contribution, highest weight first, and the event weights."""
    converters, base_rate = totals.converters, totals.base_rate
    unweighted = [
        Contribution(
            event_type=label,
            units=n,
            converters=c,
            converter_share=ratio(c, converters),
            conversion_rate=c / n,
            lift=c / n / base_rate if base_rate else None,
            removal_effect=chain.removal_effects.get(label, 0.0),
            weight=0.0,
        )
        for label, n, c, *_ in types
    ]
    weights = compute_event_weights(
        unweighted, base_rate=base_rate, conversion_types=totals.conversion_types
    )
    contributions = tuple(
        sorted(
            (replace(c, weight=weights[c.event_type]) for c in unweighted),
            key=lambda c: (-c.weight, -c.units, c.event_type),
        )
    )
    return contributions, weights


def _paths(
    path_rows: list[tuple[Any, ...]], label_of: dict[int, str], totals: _Totals
) -> tuple[tuple[PathStat, ...], tuple[PathStat, ...]]:
    """The most frequent converting and non-converting paths."""
    converters = totals.converters
    converting, non_converting = [], []
    others_total = totals.units - converters
    for group, path, conv_count, other_count in path_rows:
        conv, others = int(conv_count), int(other_count)
        sequence = tuple(label_of[int(lid)] for lid in path or ())
        rate = conv / (conv + others)
        if int(group) == 1:
            converting.append(PathStat(sequence, True, conv, conv / converters, rate))
        else:
            non_converting.append(PathStat(sequence, False, others, others / others_total, rate))
    return (
        tuple(sorted(converting, key=_path_order)),
        tuple(sorted(non_converting, key=_path_order)),
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
        buckets.append(SignalBucket(label, lower, upper, n, c, ratio(c, n)))
    return ImplicitSignal(
        name=spec.name,
        aggregate=spec.aggregate,
        unit=spec.unit,
        units=units,
        converters=converters,
        mean_converters=num(row[2]),
        mean_others=num(row[3]),
        median_converters=num(row[4]),
        median_others=num(row[5]),
        correlation=num(row[6]),
        buckets=tuple(buckets),
    )
