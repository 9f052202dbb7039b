"""Canonical SQL views over warehouse events, for analytics in place (``--emit-view``).

Each view is written once, in DuckDB's SQL, and transpiled by sqlglot to the warehouse's
dialect. Its columns are the canonical event's plus ``loaded_at``, so ``personalize funnel
--events-table SCHEMA.VIEW`` mines it as it mines the store's ``events`` table.
"""

from __future__ import annotations

import typing as t

import sqlglot
from sqlglot import exp

from tap_clickstream.sources.ga4 import view as ga4_view
from tap_clickstream.sources.snowplow import view as snowplow_view

if t.TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["DIALECTS", "VIEW_SOURCES", "emit_view"]

#: Our dialect names -> sqlglot's.
DIALECTS = {
    "snowflake": "snowflake",
    "bigquery": "bigquery",
    "redshift": "redshift",
    "postgres": "postgres",
    "duckdb": "duckdb",
}
VIEW_SOURCES = ("snowplow", "ga4")
#: The dialects that hold a GA4 export (BigQuery; DuckDB for copies and tests).
GA4_DIALECTS = ("bigquery", "duckdb")
#: The dialect every view is written in.
SOURCE_DIALECT = "duckdb"
#: What each view cannot compute as the tap does, printed as comments above its statement.
_LIMITS = {
    "snowplow": (
        "Left NULL: filters, properties, user_properties, media_progress_pct, "
        "site-search terms (the site_search event), experiment_id, variant_id, rec_id (the tap "
        "reads these from entities and self-describing events whose columns or tables a "
        "warehouse may not have).",
        "Event ids are Snowplow's event_id, as in the store.",
    ),
    "ga4": (
        "Left NULL: filters, properties, user_properties.",
        "event_id is an MD5 of the event's identifying fields: the tap's ids are BLAKE2b "
        "(no SQL dialect here has it), so feed a store from the tap or from this view, "
        "never from both (docs/warehouse-views.md#event-ids).",
    ),
}
_COMMON_LIMITS = (
    "Event types: the event_map by raw name and by snake_case key, then the built-in "
    "crosswalk; SQL's snake_case only lower-cases and turns spaces and dashes into _ "
    "(camelCase is not split as the tap splits it).",
)
_DIALECT_LIMITS = {
    ("snowplow", "bigquery"): (
        "BigQuery Loader 2 writes entities as ARRAY<STRUCT>, not JSON: there, replace each "
        "JSON_EXTRACT_SCALAR(col, '$[0].field') with col[SAFE_OFFSET(0)].field, and the "
        "items' UNNEST(JSON_EXTRACT_ARRAY(col)) AS p with UNNEST(col) AS p reading p.id, "
        "p.price, ... as JSON_EXTRACT_SCALAR(p, '$.id') reads them.",
    ),
}


def emit_view(
    source: str,
    dialect: str,
    *,
    events: str | None = None,
    view: str | None = None,
    layout: str | None = None,
    event_map: Mapping[str, str] | None = None,
) -> str:
    """The ``CREATE OR REPLACE VIEW`` statement of a source's canonical view in a dialect.

    Args:
        source: one of :data:`VIEW_SOURCES`.
        dialect: one of :data:`DIALECTS`.
        events: the events table (Snowplow: default ``atomic.events``; GA4: the export's
            wildcard table, default ``analytics.events_*``, or a view over its day tables).
        view: the view's name (default ``<source>_canonical_events`` in the events' schema).
        layout: Snowplow only: ``wide`` or ``shredded`` (default: what the dialect's loader
            writes: shredded on Postgres and Redshift, wide elsewhere).
        event_map: the tap's ``event_map`` setting (raw event name -> canonical type).

    Raises:
        ValueError: for an unknown source, dialect or layout.
    """
    if dialect not in DIALECTS:
        raise ValueError(f"unknown dialect {dialect!r}: use one of {', '.join(DIALECTS)}")
    placeholders: dict[str, str] = {}
    if source == "snowplow":
        table = events or snowplow_view.DEFAULT_EVENTS
        layout = layout or snowplow_view.default_layout(dialect)
        select = snowplow_view.view_select(table, layout, event_map)
        placeholders = snowplow_view.item_placeholders(dialect, table, layout)
    elif source == "ga4":
        if dialect not in GA4_DIALECTS:
            raise ValueError(
                f"the GA4 export lives in BigQuery: --dialect {dialect} has no GA4 view "
                f"(use one of {', '.join(GA4_DIALECTS)})"
            )
        table = events or ga4_view.DEFAULT_EVENTS
        select = ga4_view.view_select(event_map)
    else:
        raise ValueError(f"unknown source {source!r}: use one of {', '.join(VIEW_SOURCES)}")
    schema = table.rsplit(".", 1)[0] + "." if "." in table else ""
    name = view or f"{schema}{source}_canonical_events"
    statement = f"CREATE OR REPLACE VIEW {name} AS {select}"
    tree = sqlglot.parse_one(statement, read=SOURCE_DIALECT)
    if dialect == "bigquery":
        tree = tree.transform(_unix_micros)
    text = tree.sql(dialect=DIALECTS[dialect], pretty=True)
    if source == "ga4":
        # After transpiling: BigQuery's wildcard table is no DuckDB SQL.
        quoted = f"`{table}`" if dialect == "bigquery" else table
        text = text.replace(ga4_view.EVENTS_PLACEHOLDER, quoted)
    # After transpiling too: the Snowplow items are written in each dialect's own SQL.
    for placeholder, replacement in placeholders.items():
        text = text.replace(placeholder, replacement)
    notes = (*_LIMITS[source], *_COMMON_LIMITS, *_DIALECT_LIMITS.get((source, dialect), ()))
    header = "".join(f"-- {note}\n" for note in notes)
    return f"-- tap-clickstream canonical {source} view ({dialect}).\n{header}{text};\n"


def _unix_micros(node: exp.Expression) -> exp.Expression:
    """``epoch(ts)`` as ``UNIX_MICROS(ts) / 1e6`` (sqlglot writes TIME_TO_UNIX: no GoogleSQL)."""
    if isinstance(node, exp.TimeToUnix):
        micros = exp.Anonymous(this="UNIX_MICROS", expressions=[node.this.copy()])
        return exp.Paren(this=exp.Div(this=micros, expression=exp.Literal.number("1e6")))
    return node
