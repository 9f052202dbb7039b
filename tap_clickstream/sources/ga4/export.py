"""Turn one row of the GA4 BigQuery export into a canonical event.

The export has one row per event, with repeated ``event_params`` / ``user_properties`` /
``items`` records and ``device``, ``geo``, ``traffic_source``, ``ecommerce``... records
(https://support.google.com/analytics/answer/7029846). Every typed parameter value arrives as
a struct with one of ``string_value``, ``int_value``, ``float_value``, ``double_value`` set.
"""

from __future__ import annotations

import json
import typing as t
from datetime import UTC, datetime, timedelta

from tap_clickstream.events import ClickstreamEvent, Item, format_ts, stable_event_id
from tap_clickstream.normalize import as_float, as_str, experiment_fields, path_of, pop_first

if t.TYPE_CHECKING:
    from collections.abc import Callable, Mapping

__all__ = ["event_id_of", "normalise_export_row", "param_value"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_VALUE_FIELDS = ("string_value", "int_value", "float_value", "double_value")
#: GA4's placeholder for a field it could not fill.
_NOT_SET = frozenset({"(not set)", "(none)", "(direct)", "(not provided)"})
#: Columns turned into canonical fields (everything else non-null goes to ``properties``).
_CONSUMED = frozenset(
    {
        "event_timestamp", "event_name", "event_params", "user_id", "user_pseudo_id",
        "user_properties", "items", "event_server_timestamp_offset",
    }
)  # fmt: skip


def param_value(value: object) -> t.Any:
    """The value of a typed export value struct: whichever of its typed fields is set."""
    if not isinstance(value, dict):
        return value
    for field in _VALUE_FIELDS:
        if value.get(field) is not None:
            return value[field]
    return None


def _key_values(entries: object) -> dict[str, t.Any]:
    if not isinstance(entries, list):
        return {}
    out: dict[str, t.Any] = {}
    for entry in entries:
        if isinstance(entry, dict) and isinstance(entry.get("key"), str):
            out[entry["key"]] = param_value(entry.get("value"))
    return out


def _micros(value: object) -> datetime:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"event_timestamp is not whole microseconds: {value!r}")
    try:
        return _EPOCH + timedelta(microseconds=value)
    except OverflowError:
        raise ValueError(f"event_timestamp is out of range: {value!r}") from None


def _set(value: object) -> str | None:
    text = as_str(value)
    return None if text is None or text in _NOT_SET else text


def event_id_of(row: Mapping[str, t.Any], params: Mapping[str, t.Any]) -> str:
    """The stable id of an export row (GA4 has no event id).

    Hashed from the fields that identify an event in the export: the device
    (``user_pseudo_id``), ``event_timestamp``, ``event_name``, ``ga_session_id``, the upload
    bundle (``event_bundle_sequence_id``) and, in newer exports, the ``batch_*`` fields that
    order events inside one request. Exports without ``batch_event_index`` add a digest of the
    event's parameters, so two events of one bundle at the same microsecond stay apart.
    """
    parts: list[object] = [
        row.get("stream_id"),
        row.get("user_pseudo_id"),
        row.get("event_timestamp"),
        row.get("event_name"),
        params.get("ga_session_id"),
        row.get("event_bundle_sequence_id"),
        row.get("batch_page_id"),
        row.get("batch_ordering_id"),
        row.get("batch_event_index"),
    ]
    if row.get("batch_event_index") is None:
        parts.append(json.dumps(params, sort_keys=True, default=str))
    return stable_event_id(*parts)


def _items(raw: object) -> list[Item]:
    if not isinstance(raw, list):
        return []
    items: list[Item] = []
    for entry in raw:
        if not isinstance(entry, dict):
            continue
        item_id = _set(entry.get("item_id")) or _set(entry.get("item_name"))
        if item_id is None:
            continue
        item: Item = {
            "item_id": item_id,
            "name": _set(entry.get("item_name")),
            "category": _set(entry.get("item_category")),
            "brand": _set(entry.get("item_brand")),
            "variant": _set(entry.get("item_variant")),
            "price": as_float(entry.get("price")),
            "quantity": as_float(entry.get("quantity")),
        }
        position = as_float(entry.get("item_list_index"))
        item["position"] = int(position) if position is not None else None
        items.append(item)
    return items


def _campaign(row: Mapping[str, t.Any], params: dict[str, t.Any]) -> dict[str, str | None]:
    """UTM fields from the first source that has any.

    The event's own (params, then ``collected_traffic_source``), else the session's last
    click, else the user's first-touch ``traffic_source``.
    """
    collected = row.get("collected_traffic_source") or {}
    session = (row.get("session_traffic_source_last_click") or {}).get("manual_campaign") or {}
    first = row.get("traffic_source") or {}
    sources = [
        {
            "utm_source": pop_first(params, "source"),
            "utm_medium": pop_first(params, "medium"),
            "utm_campaign": pop_first(params, "campaign"),
            "utm_term": pop_first(params, "term"),
            "utm_content": pop_first(params, "content"),
        },
        {
            "utm_source": collected.get("manual_source"),
            "utm_medium": collected.get("manual_medium"),
            "utm_campaign": collected.get("manual_campaign_name"),
            "utm_term": collected.get("manual_term"),
            "utm_content": collected.get("manual_content"),
        },
        {
            "utm_source": session.get("source"),
            "utm_medium": session.get("medium"),
            "utm_campaign": session.get("campaign_name"),
            "utm_term": session.get("term"),
            "utm_content": session.get("content"),
        },
        {
            "utm_source": first.get("source"),
            "utm_medium": first.get("medium"),
            "utm_campaign": first.get("name"),
        },
    ]
    out: dict[str, str | None] = dict.fromkeys(sources[0])
    for source in sources:
        # A source counts as a whole: the event's medium never mixes with the user's source.
        values = {k: _set(v) for k, v in source.items()}
        if any(values.values()):
            out.update(values)
            break
    return out


def normalise_export_row(
    row: Mapping[str, t.Any], map_event_type: Callable[[str], str]
) -> ClickstreamEvent:
    """Return the canonical event of one export row.

    Raises:
        ValueError: when the row has no event name or no usable ``event_timestamp``.
    """
    name = row.get("event_name")
    if not isinstance(name, str) or not name:
        raise ValueError("event_name is missing")
    moment = _micros(row.get("event_timestamp"))
    params = _key_values(row.get("event_params"))
    event_id = event_id_of(row, params)
    offset = row.get("event_server_timestamp_offset")
    ingested = (
        format_ts(moment + timedelta(microseconds=offset))
        if isinstance(offset, int) and not isinstance(offset, bool)
        else None
    )
    pseudo_id = as_str(row.get("user_pseudo_id"))
    session_number = as_str(params.get("ga_session_id"))
    device = row.get("device") or {}
    web_info = device.get("web_info") or {}
    geo = row.get("geo") or {}
    ecommerce = row.get("ecommerce") or {}
    url = as_str(params.pop("page_location", None))
    order_id = _set(ecommerce.get("transaction_id")) or _set(params.pop("transaction_id", None))
    revenue = as_float(ecommerce.get("purchase_revenue"))
    if revenue is None and order_id is not None:
        revenue = as_float(params.get("value"))
    campaign = _campaign(row, params)
    title = as_str(params.pop("page_title", None))
    referrer = as_str(params.pop("page_referrer", None))
    search = as_str(params.pop("search_term", None))
    engagement = as_float(params.pop("engagement_time_msec", None))
    scroll = as_float(params.pop("percent_scrolled", None))
    media = as_float(params.pop("video_percent", None))
    event_type = map_event_type(name)
    experiment_id, variant_id, rec_id = experiment_fields(event_type, params)
    properties: dict[str, t.Any] = {
        key: value
        for key, value in row.items()
        if key not in _CONSUMED and value is not None and value not in ([], {})
    }
    properties.update(params)  # the parameters not turned into canonical fields
    return {
        "source": "ga4",
        "event_id": event_id,
        "event_name": name,
        "event_type": event_type,
        "event_ts": format_ts(moment),
        "ingested_at": ingested,
        "user_id": as_str(row.get("user_id")),
        "anonymous_id": pseudo_id,
        "session_id": f"{pseudo_id}:{session_number}" if pseudo_id and session_number else None,
        "page_url": url,
        "page_path": path_of(url),
        "page_title": title,
        "referrer": referrer,
        **campaign,  # type: ignore[typeddict-item]
        "search_query": search,
        "filters": None,
        "items": _items(row.get("items")),
        "order_id": order_id,
        "revenue": revenue,
        "currency": as_str(params.get("currency")),
        "engagement_ms": engagement,
        "scroll_depth_pct": scroll,
        "media_progress_pct": media,
        "event_count": 1,
        "is_aggregate": False,
        "device_category": as_str(device.get("category")),
        "os": as_str(device.get("operating_system")),
        "browser": as_str(web_info.get("browser") or device.get("browser")),
        "country": _set(geo.get("country")),
        "region": _set(geo.get("region")),
        "city": _set(geo.get("city")),
        "properties": properties,
        "user_properties": _key_values(row.get("user_properties")),
        "experiment_id": experiment_id,
        "variant_id": variant_id,
        "rec_id": rec_id,
    }
