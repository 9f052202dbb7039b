"""The canonical view over the GA4 BigQuery export (``tap-clickstream --emit-view ga4``).

The same fields as :func:`tap_clickstream.sources.ga4.export.normalise_export_row`, in SQL:
typed parameter values, ``(not set)`` placeholders as NULL, the campaign from the first of
the event's parameters, ``collected_traffic_source`` and the user's first-touch
``traffic_source`` that has any value. Event ids are an MD5 of the identifying fields (the tap
hashes them with BLAKE2b, which SQL lacks): stable, but not the tap's ids. Items, the
experiment fields (the exposure crosswalk of :func:`tap_clickstream.normalize.experiment_fields`)
and the ``event_map`` are the tap's.
"""

from __future__ import annotations

import typing as t

from tap_clickstream.normalize import (
    EXPERIMENT_KEYS,
    EXPOSURE_EXPERIMENT_KEYS,
    EXPOSURE_VARIANT_KEYS,
    REC_ID_KEYS,
    VARIANT_KEYS,
)
from tap_clickstream.view_sql import event_type_sql, quote

if t.TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["DEFAULT_EVENTS", "EVENTS_PLACEHOLDER", "view_select"]

#: BigQuery's wildcard over the export's daily tables (``analytics_<property id>``).
DEFAULT_EVENTS = "analytics.events_*"
#: Where the events table goes: put in after transpiling, since a wildcard is not DuckDB SQL.
EVENTS_PLACEHOLDER = "ga4_export_events"
_NOT_SET = ("(not set)", "(none)", "(direct)", "(not provided)")


def _param(key: str, kind: str = "text") -> str:
    """A parameter's value: text from whichever typed field is set, or a number."""
    if kind == "number":
        value = (
            "coalesce(CAST(p.value.int_value AS DOUBLE), p.value.float_value, "
            "p.value.double_value, TRY_CAST(p.value.string_value AS DOUBLE))"
        )
    else:
        value = (
            "coalesce(p.value.string_value, CAST(p.value.int_value AS VARCHAR), "
            "CAST(p.value.double_value AS VARCHAR), CAST(p.value.float_value AS VARCHAR))"
        )
    return (
        f"(SELECT {value} FROM unnest(e.event_params) AS t(p) WHERE p.key = {quote(key)} LIMIT 1)"
    )


def _set(expression: str) -> str:
    """The value, NULL when empty or one of GA4's placeholders."""
    placeholders = ", ".join(quote(v) for v in _NOT_SET)
    return f"CASE WHEN {expression} IN ('', {placeholders}) THEN NULL ELSE {expression} END"


_UTM = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")
#: Where each source of the campaign keeps the five UTM fields, in order of precedence.
_PARAM_KEYS = ("source", "medium", "campaign", "term", "content")
_COLLECTED_FIELDS = (
    "manual_source",
    "manual_medium",
    "manual_campaign_name",
    "manual_term",
    "manual_content",
)
_FIRST_TOUCH_FIELDS = ("source", "medium", "name")


def _campaign() -> str:
    """The five UTM columns, from the first source with any value (a source counts whole)."""
    params = [_set(_param(key)) for key in _PARAM_KEYS]
    collected = [_set(f"e.collected_traffic_source.{name}") for name in _COLLECTED_FIELDS]
    first_touch = [_set(f"e.traffic_source.{name}") for name in _FIRST_TOUCH_FIELDS]
    first_touch += ["CAST(NULL AS VARCHAR)"] * (len(_UTM) - len(first_touch))
    columns = []
    for n, field in enumerate(_UTM):
        cases = " ".join(
            f"WHEN coalesce({', '.join(source)}) IS NOT NULL THEN {source[n]}"
            for source in (params, collected)
        )
        columns.append(f"CASE {cases} ELSE {first_touch[n]} END AS {field}")
    return ", ".join(columns)


def _first_param(keys: tuple[str, ...]) -> str:
    """The first of the parameters ``keys`` with a non-empty value (as ``pop_first`` reads)."""
    values = ", ".join(f"nullif({_param(key)}, '')" for key in keys)
    return f"coalesce({values})"


def _experiment(event_type: str) -> str:
    """``experiment_id``, ``variant_id`` and ``rec_id``; names count only on an exposure."""
    exposure = f"{event_type} = 'experiment_exposure'"
    columns = []
    for field, keys, exposure_keys in (
        ("experiment_id", EXPERIMENT_KEYS, EXPOSURE_EXPERIMENT_KEYS),
        ("variant_id", VARIANT_KEYS, EXPOSURE_VARIANT_KEYS),
    ):
        columns.append(
            f"CASE WHEN {exposure} THEN {_first_param(keys + exposure_keys)} "
            f"ELSE {_first_param(keys)} END AS {field}"
        )
    columns.append(f"{_first_param(REC_ID_KEYS)} AS rec_id")
    return ", ".join(columns)


def _items() -> str:
    """The event's items as a JSON array, as the tap reads them (id, else name; no id: left out)."""
    item_id = f"coalesce({_set('i.item_id')}, {_set('i.item_name')})"
    position = "CAST(trunc(TRY_CAST(i.item_list_index AS DOUBLE)) AS BIGINT)"
    fields = (
        f"'item_id': {item_id}, 'name': {_set('i.item_name')}, "
        f"'category': {_set('i.item_category')}, 'brand': {_set('i.item_brand')}, "
        f"'variant': {_set('i.item_variant')}, 'price': CAST(i.price AS DOUBLE), "
        f"'quantity': CAST(i.quantity AS DOUBLE), 'position': {position}"
    )
    # No items: [] (an empty aggregate is NULL, and BigQuery's TO_JSON(NULL) is JSON null).
    return (
        f"(SELECT CASE WHEN count(*) = 0 THEN json('[]') ELSE to_json(list({{{fields}}})) END "
        f"FROM unnest(e.items) AS u(i) WHERE {item_id} IS NOT NULL)"
    )


def view_select(event_map: Mapping[str, str] | None = None) -> str:
    """The view's SELECT over the export (the table is :data:`EVENTS_PLACEHOLDER`).

    ``event_map`` is the tap's setting (raw event name -> canonical type), applied first.
    """
    event_type = event_type_sql("e.event_name", event_map)
    text = "CAST({} AS VARCHAR)"
    # Joined with || (BigQuery has no concat_ws; every part is text, never NULL).
    parts = " || chr(31) || ".join(
        f"coalesce({text.format(c)}, '')"
        for c in (
            "e.stream_id", "e.user_pseudo_id", "e.event_timestamp", "e.event_name",
            _param("ga_session_id"), "e.event_bundle_sequence_id", "e.batch_page_id",
            "e.batch_ordering_id", "e.batch_event_index",
        )
    )  # fmt: skip
    all_params = (
        "(SELECT string_agg(p.key || '=' || coalesce(p.value.string_value, "
        "CAST(p.value.int_value AS VARCHAR), CAST(p.value.double_value AS VARCHAR), "
        "CAST(p.value.float_value AS VARCHAR), ''), '&') "
        "FROM unnest(e.event_params) AS t(p))"
    )
    url = f"nullif({_param('page_location')}, '')"
    order_id = f"coalesce({_set('e.ecommerce.transaction_id')}, {_set(_param('transaction_id'))})"
    event_ts = "make_timestamp(e.event_timestamp)"
    return f"""
SELECT 'ga4' AS source,
    md5({parts} || chr(31) || CASE WHEN e.batch_event_index IS NULL
        THEN coalesce({all_params}, '') ELSE '' END) AS event_id,
    e.event_name, {event_type} AS event_type,
    {event_ts} AS event_ts,
    make_timestamp(e.event_timestamp + e.event_server_timestamp_offset) AS ingested_at,
    nullif(e.user_id, '') AS user_id, nullif(e.user_pseudo_id, '') AS anonymous_id,
    CASE WHEN nullif(e.user_pseudo_id, '') IS NOT NULL AND {_param("ga_session_id")} IS NOT NULL
        THEN e.user_pseudo_id || ':' || {_param("ga_session_id")} END AS session_id,
    {url} AS page_url,
    CASE WHEN {url} IS NOT NULL THEN coalesce(nullif(
        regexp_extract({url}, '^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*([^?#]*)', 1), ''), '/') END
        AS page_path,
    nullif({_param("page_title")}, '') AS page_title,
    nullif({_param("page_referrer")}, '') AS referrer,
    {_campaign()},
    nullif({_param("search_term")}, '') AS search_query,
    CAST(NULL AS JSON) AS filters, {_items()} AS items,
    {order_id} AS order_id,
    coalesce(e.ecommerce.purchase_revenue,
        CASE WHEN {order_id} IS NOT NULL THEN {_param("value", "number")} END) AS revenue,
    nullif({_param("currency")}, '') AS currency,
    {_param("engagement_time_msec", "number")} AS engagement_ms,
    {_param("percent_scrolled", "number")} AS scroll_depth_pct,
    {_param("video_percent", "number")} AS media_progress_pct,
    1 AS event_count, FALSE AS is_aggregate,
    nullif(e.device.category, '') AS device_category,
    nullif(e.device.operating_system, '') AS os,
    nullif(e.device.web_info.browser, '') AS browser,
    {_set("e.geo.country")} AS country, {_set("e.geo.region")} AS region,
    {_set("e.geo.city")} AS city,
    CAST(NULL AS JSON) AS properties, CAST(NULL AS JSON) AS user_properties,
    {_experiment(event_type)},
    {event_ts} AS loaded_at
FROM {EVENTS_PLACEHOLDER} AS e
WHERE e.event_name <> '' AND e.event_timestamp IS NOT NULL"""
