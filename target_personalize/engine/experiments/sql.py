"""The readout's input as SQL over the store: the same queries on DuckDB and PostgreSQL.

Definitions (docs/experiments.md): a visitor is ``user_id``, else ``anonymous_id``, and an
``anonymous_id`` that events show with exactly one ``user_id`` is that user (a browser visitor
exposed before signing in converts under the same visitor after it); exposures
are the ``exposures`` rows served by us plus ``experiment_exposure`` events (exposures other
tools logged); a visitor exposed to more than one variant is left out and counted; key
conversions count at or after the visitor's first exposure, and those in the ``pre_days``
before it are CUPED's covariates. Margin per unit is the catalog's ``margin``, else
``price - cost``.

Attribution, per variant: a key conversion carrying the ``rec_id`` of one of the experiment's
served lists is a click-through; one without, of an item a list showed the same visitor within
the attribution window before it, is a view-through.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import numpy as np

from target_personalize.engine.experiments.errors import ExperimentError
from target_personalize.engine.experiments.visitors import VisitorData
from target_personalize.engine.store.views import event_items_sql

if TYPE_CHECKING:
    from target_personalize.engine.store.event_store import EventStore

__all__ = [
    "DEFAULT_ATTRIBUTION_WINDOW",
    "DEFAULT_PRE_DAYS",
    "Attribution",
    "exposed_variants",
    "read_experiment",
]

#: How long after a list was shown a conversion of one of its items counts as view-through.
DEFAULT_ATTRIBUTION_WINDOW = timedelta(hours=24)
#: Days before a visitor's first exposure whose conversions feed CUPED (GrowthBook: 14).
DEFAULT_PRE_DAYS = 14

_PARAMS = """params AS (
    SELECT CAST(%s AS VARCHAR) AS experiment_id, CAST(%s AS VARCHAR) AS conversion,
           CAST(%s AS BIGINT) AS window_s, CAST(%s AS BIGINT) AS pre_s)"""

# The readout reads ``events`` twice, into temporary tables every later statement shares: once
# for the identity map, once for the events it needs (each column read once; a warehouse bills
# by the columns each scan reads, docs/scale.md).

# An anonymous id seen with one user id only is that user; one a shared device shows with
# several users stays a visitor of its own.
_IDENTITIES = """
CREATE TEMP TABLE {identities} AS
SELECT anonymous_id, min(user_id) AS user_id FROM events
WHERE anonymous_id IS NOT NULL AND user_id IS NOT NULL
GROUP BY anonymous_id HAVING min(user_id) = max(user_id)"""

# The events the readout reads, each with its visitor and flags for what it is (one or more):
# an exposure to the experiment, a key conversion, a click on one of the experiment's lists
# (an event carrying its rec_id, except exposures and the browser widget's record that the
# list was shown, personalize.js's ``recommendation_view``).
_PICKED = """
CREATE TEMP TABLE {picked} AS
WITH {params},
lists AS (
    SELECT DISTINCT i.rec_id FROM impressions i CROSS JOIN params p
    WHERE i.experiment_id = p.experiment_id)
SELECT f.source, f.event_id, f.event_ts, f.rec_id, f.variant_id, f.revenue, f.items,
       coalesce(f.user_id, idn.user_id, f.anonymous_id) AS visitor,
       f.exposure, f.key_conversion, f.click
FROM (
    SELECT e.source, e.event_id, e.event_ts, e.rec_id, e.variant_id, e.revenue, e.items,
           e.user_id, e.anonymous_id,
           CASE WHEN e.event_type = 'experiment_exposure'
                     AND e.experiment_id = p.experiment_id AND e.variant_id IS NOT NULL
                     AND coalesce(e.user_id, e.anonymous_id) IS NOT NULL
                THEN 1 ELSE 0 END AS exposure,
           CASE WHEN e.event_type = p.conversion AND NOT e.is_aggregate
                THEN 1 ELSE 0 END AS key_conversion,
           CASE WHEN l.rec_id IS NOT NULL
                     AND e.event_type NOT IN ('experiment_exposure', 'recommendation_view')
                THEN 1 ELSE 0 END AS click
    FROM events e CROSS JOIN params p
    LEFT JOIN lists l ON l.rec_id = e.rec_id
) f
LEFT JOIN {identities} idn ON idn.anonymous_id = f.anonymous_id
WHERE f.exposure + f.key_conversion + f.click > 0"""

#: The items of key conversions, unnested once.
_KEY_ITEMS = """
CREATE TEMP TABLE {key_items} AS
SELECT source, event_id, item_id, quantity FROM ({event_items}) ei"""

_PER_VISITOR = """
CREATE TEMP TABLE {per_visitor} AS
WITH {params},
exposed AS (
    SELECT coalesce(idn.user_id, x.visitor_id) AS visitor, x.variant_id, x.exposed_at AS ts
    FROM exposures x CROSS JOIN params p
    LEFT JOIN {identities} idn ON idn.anonymous_id = x.visitor_id
    WHERE x.experiment_id = p.experiment_id AND x.visitor_id IS NOT NULL
    UNION ALL
    SELECT visitor, variant_id, event_ts FROM {picked} WHERE exposure = 1)
SELECT visitor, min(variant_id) AS variant_id, max(variant_id) AS other_variant,
       min(ts) AS first_ts
FROM exposed GROUP BY visitor"""

_ASSIGNED = """assigned AS (
    SELECT visitor, variant_id, first_ts FROM {per_visitor} WHERE variant_id = other_variant)"""

_MARGINS = """unit_margin AS (
    SELECT item_id, coalesce(margin, price - cost) AS margin FROM items
    WHERE margin IS NOT NULL OR cost IS NOT NULL),
event_margin AS (
    SELECT ki.source, ki.event_id, sum(coalesce(ki.quantity, 1) * m.margin) AS margin
    FROM {key_items} ki JOIN unit_margin m ON m.item_id = ki.item_id
    GROUP BY ki.source, ki.event_id)"""

_CONVERSIONS = """conversions AS (
    SELECT a.visitor, k.source, k.event_id, k.event_ts >= a.first_ts AS post,
           coalesce(k.revenue, 0) AS revenue, coalesce(m.margin, 0) AS margin
    FROM {picked} k CROSS JOIN params p
    JOIN assigned a ON a.visitor = k.visitor
    LEFT JOIN event_margin m ON m.source = k.source AND m.event_id = k.event_id
    WHERE k.key_conversion = 1
      AND k.event_ts >= a.first_ts - INTERVAL '1 second' * p.pre_s),
visitor_conversions AS (
    SELECT visitor,
           sum(CASE WHEN post THEN 1 ELSE 0 END) AS conversion_events,
           sum(CASE WHEN post THEN revenue ELSE 0 END) AS revenue,
           sum(CASE WHEN post THEN margin ELSE 0 END) AS margin,
           sum(CASE WHEN post THEN 0 ELSE 1 END) AS pre_conversion_events,
           sum(CASE WHEN post THEN 0 ELSE revenue END) AS pre_revenue,
           sum(CASE WHEN post THEN 0 ELSE margin END) AS pre_margin
    FROM conversions GROUP BY visitor)"""

_SHOWN = """shown AS (
    SELECT i.rec_id, coalesce(idn.user_id, i.visitor_id) AS visitor, i.variant_id, i.served_at
    FROM impressions i CROSS JOIN params p
    LEFT JOIN {identities} idn ON idn.anonymous_id = i.visitor_id
    WHERE i.experiment_id = p.experiment_id)"""

_LISTS = """clicked AS (
    SELECT DISTINCT rec_id FROM {picked} WHERE click = 1),
visitor_lists AS (
    SELECT s.visitor, count(*) AS impressions, count(c.rec_id) AS clicks
    FROM shown s LEFT JOIN clicked c ON c.rec_id = s.rec_id GROUP BY s.visitor)"""

_VISITORS = """
SELECT {variant_index} AS variant_index,
       CAST(coalesce(v.conversion_events, 0) AS DOUBLE PRECISION) AS conversion_events,
       CAST(coalesce(v.revenue, 0) AS DOUBLE PRECISION) AS revenue,
       CAST(coalesce(v.margin, 0) AS DOUBLE PRECISION) AS margin,
       CAST(coalesce(l.clicks, 0) AS DOUBLE PRECISION) AS clicks,
       CAST(coalesce(l.impressions, 0) AS DOUBLE PRECISION) AS impressions,
       CAST(coalesce(v.pre_conversion_events, 0) AS DOUBLE PRECISION) AS pre_conversion_events,
       CAST(coalesce(v.pre_revenue, 0) AS DOUBLE PRECISION) AS pre_revenue,
       CAST(coalesce(v.pre_margin, 0) AS DOUBLE PRECISION) AS pre_margin
FROM assigned a
LEFT JOIN visitor_conversions v ON v.visitor = a.visitor
LEFT JOIN visitor_lists l ON l.visitor = a.visitor
ORDER BY a.visitor"""

_UNKNOWN = """
SELECT DISTINCT a.variant_id FROM assigned a WHERE {variant_index} < 0 ORDER BY a.variant_id"""

_EXCLUDED = """
SELECT count(*) FROM {per_visitor} WHERE variant_id <> other_variant"""

_ATTRIBUTED = """key_conversions AS (
    SELECT k.source, k.event_id, k.event_ts, k.rec_id, k.visitor,
           coalesce(k.revenue, 0) AS revenue, coalesce(m.margin, 0) AS margin
    FROM {picked} k
    LEFT JOIN event_margin m ON m.source = k.source AND m.event_id = k.event_id
    WHERE k.key_conversion = 1),
click_through AS (
    SELECT DISTINCT s.variant_id, k.source, k.event_id, k.revenue, k.margin
    FROM key_conversions k JOIN shown s ON s.rec_id = k.rec_id),
view_through AS (
    SELECT DISTINCT s.variant_id, k.source, k.event_id, k.revenue, k.margin
    FROM key_conversions k
    JOIN {key_items} ki ON ki.source = k.source AND ki.event_id = k.event_id
    JOIN impression_items ii ON ii.item_id = ki.item_id
    JOIN shown s ON s.rec_id = ii.rec_id AND s.visitor = k.visitor
    CROSS JOIN params p
    WHERE s.served_at <= k.event_ts
      AND k.event_ts < s.served_at + INTERVAL '1 second' * p.window_s
      AND NOT EXISTS (SELECT 1 FROM shown s2 WHERE s2.rec_id = k.rec_id))
SELECT variant_id, 'click_through' AS how, count(*), sum(revenue), sum(margin)
FROM click_through GROUP BY variant_id
UNION ALL
SELECT variant_id, 'view_through', count(*), sum(revenue), sum(margin)
FROM view_through GROUP BY variant_id"""

#: The readout's temporary tables, created in this order.
_TEMPORARY = {
    "identities": _IDENTITIES,
    "picked": _PICKED,
    "key_items": _KEY_ITEMS,
    "per_visitor": _PER_VISITOR,
}
_TABLE_IDS = itertools.count(1)


@dataclass(frozen=True)
class Attribution:
    """Key conversions attributed to a variant's served lists.

    Attributes:
        click_through: conversions carrying the ``rec_id`` of one of the variant's lists.
        view_through: conversions of an item a list of the variant showed the visitor within
            the attribution window before (and carrying no such ``rec_id``).
        revenue: the revenue of both kinds.
        margin: their margin (``None`` without cost or margin in the catalog).
    """

    click_through: int = 0
    view_through: int = 0
    revenue: float = 0.0
    margin: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """The JSON shape, as ``attributed_*`` fields of a variant."""
        return {
            "attributed_click_through": self.click_through,
            "attributed_view_through": self.view_through,
            "attributed_conversions": self.click_through + self.view_through,
            "attributed_revenue": self.revenue,
            "attributed_margin": self.margin,
        }


@contextmanager
def _readout_tables(store: EventStore, params: list[Any]) -> Iterator[dict[str, str]]:
    """Create the readout's temporary tables; their names by role; dropped at the end."""
    names = {role: f"_readout_{os.getpid()}_{next(_TABLE_IDS)}_{role}" for role in _TEMPORARY}
    event_items = event_items_sql(store.dialect, "key_conversion = 1", events=names["picked"])
    created: list[str] = []
    try:
        for role, sql in _TEMPORARY.items():
            store.query(
                sql.format(params=_PARAMS, event_items=event_items, **names),
                params if "{params}" in sql else [],
            )
            created.append(names[role])
            if store.dialect == "postgresql":
                store.query(f"ANALYZE {names[role]}")
        yield names
    finally:
        for table in created:
            store.query(f"DROP TABLE IF EXISTS {table}")


def _with(tables: dict[str, str], *parts: str) -> str:
    """``WITH`` and the parts, which name the temporary tables by their role."""
    return "WITH " + ",\n".join(part.format(**tables) for part in parts)


def exposed_variants(store: EventStore, experiment_id: str) -> tuple[str, ...]:
    """The variants the experiment's exposures name, in alphabetical order."""
    rows = store.query(
        "SELECT variant_id FROM exposures WHERE experiment_id = %s AND variant_id IS NOT NULL "
        "UNION SELECT variant_id FROM events WHERE event_type = 'experiment_exposure' "
        "AND experiment_id = %s AND variant_id IS NOT NULL",
        [experiment_id, experiment_id],
    )
    return tuple(sorted(str(row[0]) for row in rows))


def read_experiment(
    store: EventStore,
    experiment_id: str,
    variant_ids: tuple[str, ...],
    *,
    conversion: str = "purchase",
    attribution_window: timedelta = DEFAULT_ATTRIBUTION_WINDOW,
    pre_days: int = DEFAULT_PRE_DAYS,
) -> tuple[VisitorData, dict[str, Attribution]]:
    """One experiment's visitors (the readout's input) and each variant's attribution.

    Args:
        store: the event store.
        experiment_id: the experiment, as exposures and served lists name it.
        variant_ids: its variants in order; an exposure naming another one is an error.
        conversion: the key conversion's event type.
        attribution_window: view-through window after a list was shown.
        pre_days: days before the first exposure whose conversions feed CUPED (0: no CUPED).

    Raises:
        ExperimentError: for an exposure naming a variant not in ``variant_ids``.
    """
    params = [experiment_id, conversion, int(attribution_window.total_seconds()), pre_days * 86400]
    # Each visitor's variant as its index in variant_ids (-1: not one of them), by SQL.
    cases = " ".join("WHEN %s THEN " + str(i) for i in range(len(variant_ids)))
    variant_index = {"variant_index": f"CASE a.variant_id {cases} ELSE -1 END"}
    indexed = [*params, *variant_ids]  # the CASE comes after every other placeholder
    with _readout_tables(store, params) as tables:
        arrays = store.query_arrays(
            _with(tables, _PARAMS, _ASSIGNED, _MARGINS, _CONVERSIONS, _SHOWN, _LISTS)
            + _VISITORS.format(**variant_index),
            indexed,
        )
        excluded = int(store.query(_EXCLUDED.format(**tables))[0][0])
        variant = np.asarray(arrays[0], dtype=np.intp)
        if variant.size and variant.min() < 0:
            unknown = store.query(
                _with(tables, _ASSIGNED) + _UNKNOWN.format(**variant_index), list(variant_ids)
            )
            raise ExperimentError(
                f"exposures name variant(s) {', '.join(repr(str(r[0])) for r in unknown)} "
                f"that are not among the experiment's variants ({', '.join(variant_ids)})"
            )
        attributed = store.query(_with(tables, _PARAMS, _MARGINS, _SHOWN, _ATTRIBUTED), params)
    has_margin = bool(
        store.query("SELECT 1 FROM items WHERE margin IS NOT NULL OR cost IS NOT NULL LIMIT 1")
    )
    names = (
        "conversion_events", "revenue", "margin", "clicks", "impressions",
        "pre_conversion_events", "pre_revenue", "pre_margin",
    )  # fmt: skip
    columns = {
        name: np.asarray(values, dtype=np.float64)
        for name, values in zip(names, arrays[1:], strict=True)
    }
    if not has_margin:
        del columns["margin"], columns["pre_margin"]
    if not columns["impressions"].any():
        del columns["clicks"], columns["impressions"]
    if pre_days <= 0 or not columns["pre_conversion_events"].any():
        for name in ("pre_conversion_events", "pre_revenue", "pre_margin"):
            columns.pop(name, None)
    visitors = VisitorData(variant_ids, variant, multiple_variants=excluded, **columns)
    attribution: dict[str, Attribution] = {}
    for variant_id, how, count, revenue, margin in attributed:
        found = attribution.get(str(variant_id), Attribution())
        attribution[str(variant_id)] = Attribution(
            found.click_through + (int(count) if how == "click_through" else 0),
            found.view_through + (int(count) if how == "view_through" else 0),
            found.revenue + float(revenue or 0),
            (found.margin or 0) + float(margin or 0) if has_margin else None,
        )
    return visitors, attribution
