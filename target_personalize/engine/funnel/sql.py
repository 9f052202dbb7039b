"""SQL for funnel mining: the same statements run on DuckDB and on PostgreSQL.

Every builder returns ``(sql, params)`` with ``%s`` placeholders, as :meth:`EventStore.query`
takes them. The heavy work (ordering events, first occurrences, paths, transitions, the ordered
funnel) stays in the database; Python only receives aggregates whose size is bounded by the
number of event types, steps and requested paths, never by the number of events.

Units and event types get numeric ids early (``units_sql``, and label ids assigned in Python in
the byte order of the labels), so the one sort that orders every journey works on fixed-width
keys and ties between paths break the same way on both databases (PostgreSQL would otherwise
sort text by its collation). Every statement is the same on both dialects: window functions,
``percentile_cont ... WITHIN GROUP``, ``DISTINCT ON``, ``array_agg ... ORDER BY ... FILTER``
and ``MATERIALIZED`` CTEs are accepted by DuckDB and PostgreSQL alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from target_personalize.engine.store.views import sessionized_events_sql

__all__ = [
    "SIGNALS",
    "TIME_BINS",
    "Chain",
    "Query",
    "SignalSpec",
    "chain_sql",
    "contributions_sql",
    "conversion_types_sql",
    "event_types_sql",
    "events_sql",
    "funnel_events_sql",
    "journeys_sql",
    "ordered_funnel_events_sql",
    "overlap_sql",
    "paths_sql",
    "seconds",
    "signal_units_sql",
    "signals_sql",
    "time_to_convert_sql",
    "transitions_sql",
    "units_sql",
    "walks_sql",
]

Query = tuple[str, list[Any]]

#: The column that identifies a unit in ``sessionized_events_sql()``.
_UNIT_COLUMN = {"session": "session_key", "user": "visitor"}

#: Time-to-convert histogram: (label, lower seconds inclusive, upper seconds exclusive or None).
TIME_BINS: tuple[tuple[str, float, float | None], ...] = (
    ("< 1 min", 0.0, 60.0),
    ("1-5 min", 60.0, 300.0),
    ("5-15 min", 300.0, 900.0),
    ("15-30 min", 900.0, 1800.0),
    ("30-60 min", 1800.0, 3600.0),
    ("1-3 h", 3600.0, 10800.0),
    ("3-24 h", 10800.0, 86400.0),
    ("1-7 d", 86400.0, 604800.0),
    (">= 7 d", 604800.0, None),
)


@dataclass(frozen=True)
class SignalSpec:
    """An implicit signal: its column, how a journey aggregates it, and its buckets.

    ``scale`` divides the aggregated value before bucketing and reporting (milliseconds to
    seconds for engagement time).
    """

    name: str
    aggregate: Literal["sum", "max"]
    unit: str
    scale: float
    buckets: tuple[tuple[str, float, float | None], ...] = field(default=())


_QUARTERS: tuple[tuple[str, float, float | None], ...] = (
    ("0-25 %", 0.0, 25.0),
    ("25-50 %", 25.0, 50.0),
    ("50-75 %", 50.0, 75.0),
    (">= 75 %", 75.0, None),
)

SIGNALS: tuple[SignalSpec, ...] = (
    SignalSpec(
        "engagement_ms",
        "sum",
        "seconds",
        1000.0,
        (
            ("< 10 s", 0.0, 10.0),
            ("10-30 s", 10.0, 30.0),
            ("30-60 s", 30.0, 60.0),
            ("1-3 min", 60.0, 180.0),
            ("3-10 min", 180.0, 600.0),
            (">= 10 min", 600.0, None),
        ),
    ),
    SignalSpec(
        "scroll_depth_pct",
        "max",
        "percent",
        1.0,
        _QUARTERS,
    ),
    SignalSpec(
        "media_progress_pct",
        "max",
        "percent",
        1.0,
        _QUARTERS,
    ),
)


def seconds(later: str, earlier: str) -> str:
    """SQL for the seconds between two timestamps, as a double on both dialects."""
    return f"CAST(extract(epoch FROM ({later} - {earlier})) AS DOUBLE PRECISION)"


def _range(since: datetime | None, until: datetime | None) -> Query:
    conditions, params = [], []
    if since is not None:
        conditions.append("event_ts >= %s")
        params.append(since)
    if until is not None:
        conditions.append("event_ts < %s")
        params.append(until)
    return "".join(f" AND {c}" for c in conditions), params


def _matches(name: str) -> Query:
    return "(event_type = %s OR event_name = %s)", [name, name]


def event_types_sql(
    since: datetime | None, until: datetime | None, events: str = "events"
) -> Query:
    """SELECT the distinct event types of the raw events of ``events`` in range."""
    where, params = _range(since, until)
    return (
        f"SELECT DISTINCT coalesce(event_type, event_name) FROM {events} "
        f"WHERE NOT is_aggregate{where}",
        params,
    )


def events_sql(
    table: str,
    *,
    conversion: str,
    labels: Sequence[str],
    unit: str,
    since: datetime | None,
    until: datetime | None,
    events: str = "events",
) -> Query:
    """CREATE the events of ``events`` in range: ``unit, ts, lid, is_conv`` and the signals.

    The label of an event is ``conversion`` if it matches it (``is_conv = 1``), else its event
    type; ``lid`` is the label's 1-based index in ``labels``, which must hold every label.
    """
    column = _UNIT_COLUMN[unit]
    match, match_params = _matches(conversion)
    where, range_params = _range(since, until)
    index = {label: i for i, label in enumerate(labels, start=1)}
    cases = " ".join("WHEN %s THEN %s" for _ in labels)
    case_params: list[Any] = [value for label in labels for value in (label, index[label])]
    sql = f"""
CREATE TEMP TABLE {table} AS
SELECT {column} AS unit, event_ts AS ts,
    CASE WHEN {match} THEN %s ELSE CASE coalesce(event_type, event_name) {cases} END END AS lid,
    CASE WHEN {match} THEN 1 ELSE 0 END AS is_conv,
    engagement_ms, scroll_depth_pct, media_progress_pct
FROM ({sessionized_events_sql(events=events)}) sessionized
WHERE {column} IS NOT NULL{where}"""
    params = [*match_params, index[conversion], *case_params, *match_params, *range_params]
    return sql, params


def units_sql(units: str, events: str) -> Query:
    """CREATE one row per unit: a numeric id, its first event and its first conversion.

    Columns: ``unit, uid, start_ts, conv_ts`` (``conv_ts`` NULL if it never converts). The id
    only keys the later, heavier statements; no result depends on its value.
    """
    return (
        f"""
CREATE TEMP TABLE {units} AS
SELECT unit, row_number() OVER () AS uid, start_ts, conv_ts
FROM (
    SELECT unit, min(ts) AS start_ts, min(CASE WHEN is_conv = 1 THEN ts END) AS conv_ts
    FROM {events} GROUP BY unit
) per_unit""",
        [],
    )


def journeys_sql(journeys: str, events: str, units: str) -> Query:
    """CREATE the events keyed by numeric unit ids, with where each stands in its journey.

    Columns: ``unit`` (the unit's id), ``ts, lid, is_conv, converted, in_journey`` and the
    implicit signals. ``converted`` is 1 for every event of a unit that converts;
    ``in_journey`` marks the unit's journey: events up to its first conversion (events at the
    same time as it included), or all its events.
    """
    return (
        f"""
CREATE TEMP TABLE {journeys} AS
SELECT u.uid AS unit, e.ts, e.lid, e.is_conv,
    CASE WHEN u.conv_ts IS NULL THEN 0 ELSE 1 END AS converted,
    CASE WHEN u.conv_ts IS NULL OR e.ts <= u.conv_ts THEN 1 ELSE 0 END AS in_journey,
    e.engagement_ms, e.scroll_depth_pct, e.media_progress_pct
FROM {events} e JOIN {units} u ON e.unit = u.unit""",
        [],
    )


def walks_sql(walks: str, journeys: str) -> Query:
    """CREATE the journeys with repeated event types collapsed.

    Orders each journey by time, then the conversion last, then label; rows that tie on all
    three are interchangeable, so every result is deterministic. Keeps the rows where the
    label changes, with the previous label id (NULL on a journey's first row): enough for
    first occurrences, paths and Markov transitions. (Each visit of a label ends in the next
    label, the conversion or the exit, so the exits follow from the other transitions.)
    """
    window = "PARTITION BY unit ORDER BY ts, is_conv, lid"
    return (
        f"""
CREATE TEMP TABLE {walks} AS
SELECT unit, ts, lid, is_conv, converted, prev_lid
FROM (
    SELECT unit, ts, lid, is_conv, converted, lag(lid) OVER ({window}) AS prev_lid
    FROM {journeys}
    WHERE in_journey = 1
) steps
WHERE prev_lid IS NULL OR prev_lid <> lid""",
        [],
    )


def conversion_types_sql(
    conversion: str, since: datetime | None, until: datetime | None, events: str = "events"
) -> Query:
    """SELECT the distinct event types of the events of ``events`` that match the conversion."""
    match, params = _matches(conversion)
    where, range_params = _range(since, until)
    return (
        f"SELECT DISTINCT event_type FROM {events} WHERE NOT is_aggregate AND {match}{where}",
        [*params, *range_params],
    )


def _bin_columns(expression: str, bins: Sequence[tuple[str, float, float | None]]) -> str:
    columns = []
    for _, lower, upper in bins:
        test = f"{expression} >= {lower!r}"
        if upper is not None:
            test += f" AND {expression} < {upper!r}"
        columns.append(f"sum(CASE WHEN {test} THEN 1 ELSE 0 END)")
    return ", ".join(columns)


def time_to_convert_sql(units: str) -> Query:
    """SELECT units, converters, and the time from a unit's first event to its first conversion.

    Columns: units, converters, median, p90, mean seconds, then one count per
    :data:`TIME_BINS` bin.
    """
    delta = seconds("conv_ts", "start_ts")
    return (
        f"""
SELECT count(*), count(conv_ts),
    percentile_cont(0.5) WITHIN GROUP (ORDER BY {delta}),
    percentile_cont(0.9) WITHIN GROUP (ORDER BY {delta}),
    avg({delta}), {_bin_columns(delta, TIME_BINS)}
FROM {units}""",
        [],
    )


def contributions_sql(walks: str, units: str) -> Query:
    """SELECT, per event type, the units whose journey holds it and how they relate to converting.

    A converter's journey ends at its first conversion, so an event type seen only after
    converting does not count for that unit. Columns: label id, units, converters, the
    median position of the type's first occurrence in converting journeys (the share of the
    time from the journey's start to the conversion that had passed; 0 when both coincide),
    the median and p90 seconds from that first occurrence to the conversion.
    """
    position = (
        "CASE WHEN u.conv_ts > u.start_ts THEN "
        f"{seconds('f.first_ts', 'u.start_ts')} / {seconds('u.conv_ts', 'u.start_ts')} "
        "ELSE 0.0 END"
    )
    delta = seconds("u.conv_ts", "f.first_ts")
    return (
        f"""
WITH first_seen AS (
    SELECT unit, lid, min(ts) AS first_ts, max(converted) AS converted
    FROM {walks}
    WHERE is_conv = 0
    GROUP BY unit, lid
), counts AS (
    SELECT lid, count(*) AS units, sum(converted) AS converters FROM first_seen GROUP BY lid
), timing AS (
    SELECT f.lid,
        percentile_cont(0.5) WITHIN GROUP (ORDER BY {position}) AS position,
        percentile_cont(0.5) WITHIN GROUP (ORDER BY {delta}) AS median,
        percentile_cont(0.9) WITHIN GROUP (ORDER BY {delta}) AS p90
    FROM first_seen f JOIN {units} u ON u.uid = f.unit
    WHERE f.converted = 1
    GROUP BY f.lid
)
SELECT counts.lid, counts.units, counts.converters, timing.position, timing.median, timing.p90
FROM counts LEFT JOIN timing ON timing.lid = counts.lid""",
        [],
    )


def paths_sql(walks: str, top: int) -> Query:
    """SELECT the most frequent pre-conversion paths of converters and of non-converters.

    A unit's path is its collapsed label ids before the first conversion (all of them for a
    non-converter), as an array; NULL when a unit converts at its first event. Columns: group
    (1 converting, 0 not), path, converters and non-converters with that path. Up to ``top``
    rows per group, by count, ties by the path (ids follow the labels' byte order, so this
    is the order of the label sequences; NULL first).
    """
    return (
        f"""
WITH per_unit AS (
    SELECT unit, max(converted) AS converted,
        array_agg(lid ORDER BY ts, lid) FILTER (WHERE is_conv = 0) AS path
    FROM {walks}
    GROUP BY unit
), per_path AS (
    SELECT path, sum(converted) AS converters, count(*) - sum(converted) AS others
    FROM per_unit GROUP BY path
)
SELECT * FROM (
    SELECT 1 AS grp, path, converters, others FROM per_path WHERE converters > 0
    ORDER BY converters DESC, path NULLS FIRST LIMIT %s
) converting
UNION ALL
SELECT * FROM (
    SELECT 0 AS grp, path, converters, others FROM per_path WHERE others > 0
    ORDER BY others DESC, path NULLS FIRST LIMIT %s
) not_converting""",
        [int(top), int(top)],
    )


def transitions_sql(walks: str) -> Query:
    """SELECT the transitions of the collapsed journeys, for the Markov chain.

    Columns: source label id (NULL = the start), target label id (NULL for the conversion),
    count. Exits are not listed: they are each label's visits minus its other transitions.
    """
    target = "CASE WHEN is_conv = 1 THEN NULL ELSE lid END"
    return (
        f"SELECT prev_lid, {target}, count(*) FROM {walks} GROUP BY prev_lid, {target}",
        [],
    )


def signal_units_sql(signals_table: str, journeys: str) -> Query:
    """CREATE one row per unit with its implicit signals aggregated over its journey.

    Only the events before the conversion count; units without any have no row.
    """
    columns = ", ".join(f"{s.aggregate}({s.name}) / {s.scale!r} AS {s.name}" for s in SIGNALS)
    return (
        f"""
CREATE TEMP TABLE {signals_table} AS
SELECT unit, max(converted) AS converted, {columns}
FROM {journeys}
WHERE in_journey = 1 AND is_conv = 0
GROUP BY unit""",
        [],
    )


def signals_sql(signals_table: str, spec: SignalSpec) -> Query:
    """SELECT how one implicit signal relates to converting.

    Columns: units with the signal, converters among them, mean for converters and for the
    others, median for converters and for the others, the correlation of the value with
    converting (0/1), then per bucket its units and its converters.
    """
    v = spec.name
    conv = f"CASE WHEN converted = 1 THEN {v} END"
    other = f"CASE WHEN converted = 0 THEN {v} END"
    buckets = []
    for _, lower, upper in spec.buckets:
        test = f"{v} >= {lower!r}" + (f" AND {v} < {upper!r}" if upper is not None else "")
        buckets.append(
            f"sum(CASE WHEN {test} THEN 1 ELSE 0 END), "
            f"sum(CASE WHEN {test} THEN converted ELSE 0 END)"
        )
    return (
        f"""
SELECT count({v}), coalesce(sum(CASE WHEN {v} IS NOT NULL THEN converted END), 0),
    avg({conv}), avg({other}),
    percentile_cont(0.5) WITHIN GROUP (ORDER BY {conv}),
    percentile_cont(0.5) WITHIN GROUP (ORDER BY {other}),
    corr({v}, CAST(converted AS DOUBLE PRECISION)),
    {", ".join(buckets)}
FROM {signals_table}""",
        [],
    )


def funnel_events_sql(
    table: str,
    *,
    steps: Sequence[str],
    unit: str,
    keep_all: bool,
    since: datetime | None,
    until: datetime | None,
    events: str = "events",
) -> Query:
    """CREATE the events (of ``events``) of an explicit funnel: ``unit, ts, m1..mk``.

    ``m<k>`` is 1 where the event matches step k (event type or raw name). Only the events
    that match a step are kept, unless ``keep_all`` (strict order needs every event).
    """
    column = _UNIT_COLUMN[unit]
    flags, params = [], []
    for k, step in enumerate(steps, start=1):
        match, match_params = _matches(step)
        flags.append(f"CASE WHEN {match} THEN 1 ELSE 0 END AS m{k}")
        params.extend(match_params)
    where, range_params = _range(since, until)
    params.extend(range_params)
    any_step = " OR ".join(f"m{k} = 1" for k in range(1, len(steps) + 1))
    sql = f"""
CREATE TEMP TABLE {table} AS
SELECT * FROM (
    SELECT {column} AS unit, event_ts AS ts, {", ".join(flags)}
    FROM ({sessionized_events_sql(events=events)}) sessionized
    WHERE {column} IS NOT NULL{where}
) flagged"""
    if not keep_all:
        sql += f"\nWHERE {any_step}"
    return sql, params


def overlap_sql(table: str, steps: int) -> Query:
    """SELECT the most steps any one event of a funnel table matches."""
    total = " + ".join(f"m{k}" for k in range(1, steps + 1))
    return f"SELECT coalesce(max({total}), 0) FROM {table}", []


def ordered_funnel_events_sql(ordered: str, table: str, steps: int, *, strict: bool) -> Query:
    """CREATE a funnel table with event positions: ``pos`` per unit and, for strict order, ``tpos``.

    ``pos`` numbers a unit's events by time, then by their step flags (events that tie on
    both are interchangeable); ``tpos`` numbers its distinct timestamps.
    """
    flags = ", ".join(f"m{k} DESC" for k in range(1, steps + 1))
    tpos = ", dense_rank() OVER (PARTITION BY unit ORDER BY ts) AS tpos" if strict else ""
    return (
        f"""
CREATE TEMP TABLE {ordered} AS
SELECT {table}.*, row_number() OVER (PARTITION BY unit ORDER BY ts, {flags}) AS pos{tpos}
FROM {table}""",
        [],
    )


@dataclass(frozen=True)
class Chain:
    """An ordered funnel over a table with columns ``unit, ts`` (and ``pos``, ``tpos``).

    Attributes:
        table: the table.
        conditions: one SQL condition per step, with its parameters; it names the table's
            columns through the alias ``r`` (``r.m1 = 1``).
        exclusive: no event matches two steps; then steps are matched by time alone, with
            plain aggregates. Otherwise the table needs ``pos`` so that no event serves two
            steps.
        strict: strict order (the table needs ``pos`` and ``tpos``).
        window: the conversion window from step 1 (inclusive), None for unbounded.
    """

    table: str
    conditions: Sequence[Query]
    exclusive: bool = True
    strict: bool = False
    window: timedelta | None = None


def _chain_step(chain: Chain, k: int) -> Query:
    condition, condition_params = chain.conditions[k - 1]
    params = list(condition_params)
    if chain.exclusive and not chain.strict:
        if k == 1:
            sql = f"SELECT r.unit, min(r.ts) AS t1 FROM {chain.table} r WHERE {condition} GROUP BY r.unit"
            return sql, params
        earlier = ", ".join(f"min(p.t{j}) AS t{j}" for j in range(1, k))
        tests = [f"r.ts >= p.t{k - 1}"]
        if chain.window is not None:
            tests.append("r.ts <= p.t1 + %s")
            params.append(chain.window)
        sql = (
            f"SELECT p.unit, {earlier}, min(r.ts) AS t{k} "
            f"FROM {chain.table} r JOIN s{k - 1} p ON r.unit = p.unit "
            f"WHERE ({condition}) AND {' AND '.join(tests)} GROUP BY p.unit"
        )
        return sql, params
    keep = f"r.ts AS t{k}, r.pos AS p{k}" + (f", r.tpos AS q{k}" if chain.strict else "")
    if k == 1:
        sql = (
            f"SELECT DISTINCT ON (r.unit) r.unit, {keep} "
            f"FROM {chain.table} r WHERE {condition} ORDER BY r.unit, r.pos"
        )
        return sql, params
    tests = [f"r.ts >= p.t{k - 1}", *(f"r.pos <> p.p{j}" for j in range(1, k))]
    if chain.window is not None:
        tests.append("r.ts <= p.t1 + %s")
        params.append(chain.window)
    if chain.strict:
        tests.append(f"r.tpos <= p.q{k - 1} + 1")
    sql = (
        f"SELECT DISTINCT ON (r.unit) p.*, {keep} "
        f"FROM {chain.table} r JOIN s{k - 1} p ON r.unit = p.unit "
        f"WHERE ({condition}) AND {' AND '.join(tests)} ORDER BY r.unit, r.pos"
    )
    return sql, params


def chain_sql(chain: Chain) -> Query:
    """SELECT, per step, the units reaching it and the time from the first step.

    A unit enters at its first event matching step 1 (the window is measured from there and
    is not reset by repeats); step k is then the earliest event matching it, no earlier than
    step k - 1, that no earlier step used. Events with the same timestamp may satisfy steps
    in either order. With ``strict``, nothing else may happen at a time strictly between two
    consecutive steps. Columns: step number, units, median, mean and p90 seconds from step
    1, then one count per :data:`TIME_BINS` bin.
    """
    ctes, params = [], []
    for k in range(1, len(chain.conditions) + 1):
        sql, step_params = _chain_step(chain, k)
        ctes.append(f"s{k} AS MATERIALIZED ({sql})")
        params.extend(step_params)
    selects = []
    for k in range(1, len(chain.conditions) + 1):
        delta = seconds(f"t{k}", "t1")
        selects.append(
            f"SELECT {k} AS step, count(*), "
            f"percentile_cont(0.5) WITHIN GROUP (ORDER BY {delta}), avg({delta}), "
            f"percentile_cont(0.9) WITHIN GROUP (ORDER BY {delta}), "
            f"{_bin_columns(delta, TIME_BINS)} FROM s{k}"
        )
    sql = "WITH " + ",\n".join(ctes) + "\n" + "\nUNION ALL\n".join(selects) + "\nORDER BY step"
    return sql, params
