"""Turn Data API report rows into canonical (aggregate) events.

A ``runReport`` row is a combination of dimension values with its metrics, never one event
(https://developers.google.com/analytics/devguides/reporting/data/v1/api-schema): each row
becomes one record with ``is_aggregate`` true and ``event_count`` = the row's ``eventCount``.
Time dimensions (``date``, ``dateHour``, ``dateHourMinute``) are in the property's time zone
and are converted to UTC.
"""

from __future__ import annotations

import typing as t
from datetime import date, datetime, time

from tap_clickstream.events import ClickstreamEvent, Item, format_ts, stable_event_id
from tap_clickstream.normalize import as_float, path_of

if t.TYPE_CHECKING:
    from collections.abc import Callable
    from zoneinfo import ZoneInfo

__all__ = ["RowContext", "normalise_report_row"]

_NOT_SET = frozenset({"(not set)", "(other)", "(none)", "(direct)", "(not provided)", ""})
#: Dimension -> canonical field.
_FIELDS = {
    "pageLocation": "page_url", "pagePath": "page_path", "pagePathPlusQueryString": "page_path",
    "pageTitle": "page_title", "pageReferrer": "referrer",
    "sessionSource": "utm_source", "sessionMedium": "utm_medium",
    "sessionCampaignName": "utm_campaign", "sessionManualTerm": "utm_term",
    "sessionManualAdContent": "utm_content",
    "searchTerm": "search_query", "transactionId": "order_id",
    "deviceCategory": "device_category", "operatingSystem": "os", "browser": "browser",
    "country": "country", "region": "region", "city": "city",
}  # fmt: skip
_ITEM_FIELDS = {
    "itemId": "item_id", "itemName": "name", "itemCategory": "category", "itemBrand": "brand",
    "itemVariant": "variant",
}  # fmt: skip
_TIME_FORMATS = {"dateHourMinute": "%Y%m%d%H%M", "dateHour": "%Y%m%d%H", "date": "%Y%m%d"}


class RowContext(t.NamedTuple):
    """What a row's meaning depends on besides its values."""

    property_id: str
    report: str
    day: date
    tz: ZoneInfo
    currency: str | None


def _value(text: str) -> str | None:
    return None if text in _NOT_SET else text


def _row_time(dims: dict[str, str], ctx: RowContext) -> datetime:
    for name, pattern in _TIME_FORMATS.items():
        text = dims.get(name)
        if text and text not in _NOT_SET:
            local = datetime.strptime(text, pattern)  # property-local time
            if name == "date":
                hour = dims.get("hour", "")
                minute = dims.get("minute", "")
                local = local.replace(
                    hour=int(hour) if hour.isdigit() else 0,
                    minute=int(minute) if minute.isdigit() else 0,
                )
            return local.replace(tzinfo=ctx.tz)
    return datetime.combine(ctx.day, time(), ctx.tz)


def normalise_report_row(
    dims: dict[str, str],
    metrics: dict[str, float | int],
    ctx: RowContext,
    map_event_type: Callable[[str], str],
) -> ClickstreamEvent:
    """Return the canonical record of one report row.

    Args:
        dims: dimension name -> value, as the API sent them (strings).
        metrics: metric name -> value, typed by the metric header.
        ctx: the property, report, day requested, property time zone and currency.
        map_event_type: the event-name crosswalk.

    Returns:
        An aggregate record: ``is_aggregate`` true, ``event_count`` the row's ``eventCount``.
    """
    name = _value(dims.get("eventName", "")) or ctx.report
    event: dict[str, t.Any] = dict.fromkeys(set(_FIELDS.values()))
    for dimension, field in _FIELDS.items():
        if dimension in dims and event[field] is None:
            event[field] = _value(dims[dimension])
    if event["page_path"] is None and event["page_url"] is not None:
        event["page_path"] = path_of(event["page_url"])
    item: dict[str, t.Any] = {}
    for dimension, field in _ITEM_FIELDS.items():
        if dimension in dims and _value(dims[dimension]) is not None:
            item[field] = dims[dimension]
    items: list[Item] = []
    if "item_id" in item or "name" in item:
        item.setdefault("item_id", item.get("name"))
        items.append(t.cast("Item", item))
    revenue = as_float(metrics.get("purchaseRevenue", metrics.get("totalRevenue")))
    engagement = as_float(metrics.get("userEngagementDuration"))  # seconds
    scroll = as_float(_value(dims.get("percentScrolled", "")))
    count = metrics.get("eventCount")
    consumed = set(_FIELDS) | set(_ITEM_FIELDS) | {"eventName", "percentScrolled"}
    properties: dict[str, t.Any] = {
        "report": ctx.report,
        "report_date": ctx.day.isoformat(),
        **{k: v for k, v in dims.items() if k not in consumed},
        **metrics,
    }
    return {
        "source": "ga4_report",
        "event_id": stable_event_id(
            "ga4_report",
            ctx.property_id,
            ctx.report,
            ctx.day.isoformat(),
            *(f"{key}={dims[key]}" for key in sorted(dims)),
        ),
        "event_name": name,
        "event_type": map_event_type(name),
        "event_ts": format_ts(_row_time(dims, ctx)),
        "ingested_at": None,
        "user_id": None,
        "anonymous_id": None,
        "session_id": None,
        **event,  # type: ignore[typeddict-item]
        "filters": None,
        "items": items,
        "revenue": revenue,
        "currency": ctx.currency if revenue is not None else None,
        "engagement_ms": engagement * 1000.0 if engagement is not None else None,
        "scroll_depth_pct": scroll,
        "media_progress_pct": None,
        "event_count": int(count) if count is not None else 1,
        "is_aggregate": True,
        "properties": properties,
        "user_properties": {},
        "experiment_id": None,
        "variant_id": None,
        "rec_id": None,
    }
