"""The canonical view over Snowplow atomic events (``tap-clickstream --emit-view snowplow``).

The same rules as the stream (:mod:`tap_clickstream.sources.snowplow.streams`), in SQL:
a duplicated ``event_id`` counts once; page pings fold into their page view (same
``web_page`` id, else same session and URL) as engaged time and scroll depth, and pings whose
page view is missing stay ``engagement`` events; legacy ``transaction_item`` rows of a
``transaction`` fold into it; ecommerce actions, structured events and the transaction entity
name the event and its order; items come from product entities and legacy transaction lines
(:mod:`tap_clickstream.sources.snowplow.view_items`, written per dialect). Unlike the stream,
which folds within one load window, the view folds over all events. Filters, ``properties``
and site-search terms are left out (NULL): see docs/warehouse-views.md.
"""

from __future__ import annotations

import typing as t

from tap_clickstream.events import snake_case
from tap_clickstream.sources.snowplow import settings
from tap_clickstream.sources.snowplow.view_items import (
    ITEMS_RELATION,
    NO_ITEMS,
    empty_items,
    items_relation,
)
from tap_clickstream.view_sql import event_type_sql, quote

if t.TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["DEFAULT_EVENTS", "default_layout", "item_placeholders", "view_select"]

DEFAULT_EVENTS = "atomic.events"
_CONTEXT = "contexts_"
_SDE = "unstruct_event_"
#: Entity fields the view reads: name -> (entity, field, is the entity a self-describing event).
_ENTITY_FIELDS = {
    "web_page_id": (settings.WEB_PAGE, "id", False),
    "action_type": (settings.ECOMMERCE_ACTION, "type", True),
    "transaction_id": (settings.ECOMMERCE_TRANSACTION, "transaction_id", False),
    "transaction_revenue": (settings.ECOMMERCE_TRANSACTION, "revenue", False),
    "transaction_currency": (settings.ECOMMERCE_TRANSACTION, "currency", False),
    "product_id": (settings.ECOMMERCE_PRODUCT, "id", False),
    "product_currency": (settings.ECOMMERCE_PRODUCT, "currency", False),
}
#: sqlglot's dialect names that SQLAlchemy spells otherwise.
_SQLALCHEMY_NAMES = {"postgres": "postgresql"}


def default_layout(dialect: str) -> str:
    """The layout the dialect's Snowplow loader writes (as ``snowplow.layout: auto`` reads it)."""
    return settings.DIALECT_LAYOUTS.get(_SQLALCHEMY_NAMES.get(dialect, dialect), "wide")


def _schema(table: str) -> str:
    """The schema of ``table`` with its dot, or ``""``."""
    return table.rsplit(".", 1)[0] + "." if "." in table else ""


def _cursor(layout: str) -> str:
    """The load-time column: the Postgres loader (shredded) writes no ``load_tstamp``."""
    return "load_tstamp" if layout == "wide" else "collector_tstamp"


def item_placeholders(dialect: str, table: str, layout: str) -> dict[str, str]:
    """What replaces the view's item placeholders once it is transpiled to ``dialect``.

    Raises:
        ValueError: for a dialect without items, or the wide layout on Redshift.
    """
    relation = items_relation(dialect, layout, _schema(table), _cursor(layout))
    return {ITEMS_RELATION: relation, NO_ITEMS: empty_items(dialect)}


def _text(expression: str) -> str:
    """Text with CHAR(n) padding and empty strings gone."""
    return f"nullif(trim(CAST({expression} AS VARCHAR)), '')"


def _entities(table: str, layout: str) -> tuple[str, str]:
    """The entity columns of each event, and the joins they need (shredded layout)."""
    schema = _schema(table)
    columns, joins = [], []
    if layout == "wide":
        for name, (entity, field, sde) in _ENTITY_FIELDS.items():
            column, path = (
                (_SDE + entity, f"$.{field}") if sde else (_CONTEXT + entity, f"$[0].{field}")
            )
            columns.append(f"json_extract_string({column}, {quote(path)}) AS {name}")
        return ", ".join(columns), ""
    if layout != "shredded":
        raise ValueError(f"unknown Snowplow layout {layout!r}: use wide or shredded")
    by_entity: dict[str, list[tuple[str, str]]] = {}
    for name, (entity, field, _sde) in _ENTITY_FIELDS.items():
        by_entity.setdefault(entity, []).append((name, field))
    for n, (entity, fields) in enumerate(by_entity.items()):
        alias = f"x{n}"
        picked = ", ".join(f"min(CAST({field} AS VARCHAR)) AS {name}" for name, field in fields)
        joins.append(
            f"LEFT JOIN (SELECT root_id, root_tstamp, {picked} FROM {schema}{entity} "
            f"GROUP BY root_id, root_tstamp) {alias} "
            f"ON {alias}.root_id = e.event_id AND {alias}.root_tstamp = e.collector_tstamp"
        )
        columns += [f"{alias}.{name} AS {name}" for name, _ in fields]
    return ", ".join(columns), " ".join(joins)


def _ecommerce_type() -> str:
    """Ecommerce action types the crosswalk leaves as they are -> their canonical types."""
    cases = "".join(
        f" WHEN {quote(name)} THEN {quote(kind)}"
        for name, kind in sorted(settings.ECOMMERCE_TYPES.items())
    )
    return f"CASE action_type{cases} END"


def view_select(table: str, layout: str, event_map: Mapping[str, str] | None = None) -> str:
    """The view's SELECT over the events table ``table`` laid out as ``layout``.

    ``event_map`` is the tap's setting (raw event name -> canonical type), applied first.
    """
    entity_columns, joins = _entities(table, layout)
    cursor = _cursor(layout)
    raw_name = (
        "CASE WHEN event = 'struct' THEN coalesce(" + _text("se_action") + ", 'struct') "
        "WHEN event IN ('page_view', 'page_ping', 'transaction', 'transaction_item') THEN event "
        f"ELSE coalesce({_text('event_name')}, event) END"
    )
    # The crosswalk first; an ecommerce action the crosswalk leaves as it is takes its own type.
    crosswalked = event_type_sql("name", event_map)
    identity = " OR ".join(
        f"(name = {quote(n)} AND {crosswalked} = {quote(snake_case(n))})"
        for n in sorted(settings.ECOMMERCE_TYPES)
    )
    event_type = (
        f"CASE WHEN action_type IS NOT NULL AND ({identity}) THEN {_ecommerce_type()} "
        f"ELSE {crosswalked} END"
    )
    slot = (
        f"floor(epoch(coalesce(dvce_created_tstamp, derived_tstamp, collector_tstamp)) "
        f"/ {settings.HEARTBEAT_SECONDS})"
    )
    return f"""
WITH deduplicated AS (
    SELECT * FROM (
        SELECT e.*, row_number() OVER (PARTITION BY event_id ORDER BY {cursor}) AS copy_no
        FROM {table} e
    ) numbered WHERE copy_no = 1
), atomic AS (
    SELECT e.*, {_text("e.event_id")} AS canonical_id, {_text("e.domain_sessionid")} AS session_id,
        {_text("e.page_url")} AS page_url_text, {entity_columns}
    FROM deduplicated e {joins}
), named AS (
    SELECT a.*, coalesce(action_type, {raw_name}) AS name,
        coalesce('id:' || web_page_id, 'url:' || coalesce(session_id, '') || '|'
            || coalesce(page_url_text, '')) AS ping_key
    FROM atomic a
), pings AS (
    SELECT ping_key, count(DISTINCT {slot}) AS slots, max(nullif(doc_height, 0)) AS doc_height,
        greatest(coalesce(max(pp_yoffset_max), 0), 0) AS y_max,
        coalesce(max(br_viewheight), 0) AS view_height
    FROM named WHERE event = 'page_ping' GROUP BY ping_key
), page_views AS (
    SELECT DISTINCT ping_key FROM named WHERE event = 'page_view'
), orders AS (
    SELECT DISTINCT {_text("tr_orderid")} AS order_id FROM named WHERE event = 'transaction'
), kept AS (
    SELECT n.*, CASE WHEN n.event = 'page_view' THEN p.slots
            WHEN n.event = 'page_ping' THEN 1 END AS slots,
        CASE WHEN n.event = 'page_view' THEN p.doc_height
            WHEN n.event = 'page_ping' THEN nullif(n.doc_height, 0) END AS page_height,
        CASE WHEN n.event = 'page_view' THEN p.y_max
            WHEN n.event = 'page_ping' THEN greatest(coalesce(n.pp_yoffset_max, 0), 0) END AS y_max,
        CASE WHEN n.event = 'page_view' THEN p.view_height
            WHEN n.event = 'page_ping' THEN coalesce(n.br_viewheight, 0) END AS view_height
    FROM named n LEFT JOIN pings p ON n.event = 'page_view' AND p.ping_key = n.ping_key
    WHERE NOT (n.event = 'page_ping' AND n.ping_key IN (SELECT ping_key FROM page_views))
      AND NOT (n.event = 'transaction_item' AND EXISTS (
          SELECT 1 FROM orders o WHERE o.order_id = {_text("n.ti_orderid")}))
), typed AS (
    SELECT k.*, {event_type} AS event_type FROM kept k
)
SELECT 'snowplow' AS source, canonical_id AS event_id, name AS event_name, event_type,
    coalesce(derived_tstamp, collector_tstamp) AS event_ts,
    {cursor} AS ingested_at,
    {_text("user_id")} AS user_id,
    coalesce({_text("domain_userid")}, {_text("network_userid")}) AS anonymous_id,
    session_id, page_url_text AS page_url, {_text("page_urlpath")} AS page_path,
    {_text("page_title")} AS page_title, {_text("page_referrer")} AS referrer,
    {_text("mkt_source")} AS utm_source, {_text("mkt_medium")} AS utm_medium,
    {_text("mkt_campaign")} AS utm_campaign, {_text("mkt_term")} AS utm_term,
    {_text("mkt_content")} AS utm_content,
    CASE WHEN event = 'struct' AND event_type = 'search' THEN {_text("se_label")} END
        AS search_query,
    CAST(NULL AS JSON) AS filters, coalesce(vi.item_list, {NO_ITEMS}) AS items,
    CASE WHEN event = 'transaction' THEN {_text("tr_orderid")}
        WHEN event = 'transaction_item' THEN {_text("ti_orderid")}
        ELSE transaction_id END AS order_id,
    CASE WHEN event = 'transaction' THEN CAST(tr_total AS DOUBLE)
        WHEN event = 'transaction_item' THEN CAST(NULL AS DOUBLE)
        ELSE CAST(transaction_revenue AS DOUBLE) END AS revenue,
    CASE WHEN event = 'transaction' THEN {_text("tr_currency")}
        WHEN event = 'transaction_item' THEN {_text("ti_currency")}
        ELSE coalesce(transaction_currency, CASE WHEN action_type IS NOT NULL
            AND product_id IS NOT NULL THEN product_currency END) END AS currency,
    CAST(({settings.HEARTBEAT_SECONDS} * (slots - 1) + {settings.MIN_VISIT_SECONDS}) * 1000
        AS DOUBLE) AS engagement_ms,
    CASE WHEN page_height > 0 THEN round(CAST(least(100.0, 100.0
        * (least(y_max, page_height) + view_height) / page_height) AS DOUBLE), 2) END
        AS scroll_depth_pct,
    CAST(NULL AS DOUBLE) AS media_progress_pct, 1 AS event_count, FALSE AS is_aggregate,
    {_text("dvce_type")} AS device_category, {_text("os_family")} AS os,
    {_text("br_family")} AS browser, {_text("geo_country")} AS country,
    {_text("geo_region")} AS region, {_text("geo_city")} AS city,
    CAST(NULL AS JSON) AS properties, CAST(NULL AS JSON) AS user_properties,
    CAST(NULL AS VARCHAR) AS experiment_id, CAST(NULL AS VARCHAR) AS variant_id,
    CAST(NULL AS VARCHAR) AS rec_id,
    {cursor} AS loaded_at
FROM typed LEFT JOIN {ITEMS_RELATION} vi ON vi.item_event_id = typed.event_id"""
