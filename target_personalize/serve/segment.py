"""Segment ``track`` / ``page`` calls to canonical events, with the tap's crosswalk.

Follows the Segment spec (common fields, and the e-commerce spec for products): ``event`` is the
raw name and goes through :class:`tap_clickstream.events.EventTypeMapper` (so ``Product Viewed``
becomes ``product_view``), ``messageId`` is the event id (a hash of the call when missing),
``properties.products`` (or a single ``product_id``/``sku``) become items, ``context.page`` and
``context.campaign`` the page and UTM fields. Exposures A/B tools log ("Experiment Viewed"...) and
``properties.rec_id`` fill ``experiment_id``, ``variant_id`` and ``rec_id`` by the tap's crosswalk
(``tap_clickstream.normalize.experiment_fields``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from target_personalize.serve.models import SegmentPage, SegmentTrack

__all__ = ["SEGMENT_SOURCE", "from_segment", "mapper"]

SEGMENT_SOURCE = "segment"
_ITEM_FIELDS = ("name", "category", "brand", "variant", "price", "quantity", "position")
_USED = {
    "products", "product_id", "sku", "id", "order_id", "checkout_id", "revenue", "total",
    "currency", "query", "filters", "url", "path", "title", "referrer", "search", "session_id",
    *_ITEM_FIELDS,
}  # fmt: skip


def mapper(event_map: Mapping[str, str] | None = None) -> Callable[[str], str]:
    """The tap's raw name -> canonical type mapper (the user's ``event_map`` first)."""
    # The tap's module pulls in singer_sdk.typing; only the server needs it, never the engine.
    from tap_clickstream.events import EventTypeMapper  # noqa: PLC0415

    return EventTypeMapper(dict(event_map or {}))


def _text(value: object) -> str | None:
    return None if value is None or value == "" else str(value)


def _item(raw: Mapping[str, Any]) -> dict[str, Any] | None:
    item_id = _text(raw.get("product_id") or raw.get("sku") or raw.get("id"))
    if item_id is None:
        return None
    item: dict[str, Any] = {"item_id": item_id}
    for name in _ITEM_FIELDS:
        if raw.get(name) is not None:
            item[name] = raw[name]
    return item


def _items(properties: Mapping[str, Any]) -> list[dict[str, Any]]:
    products = properties.get("products")
    if isinstance(products, list):
        found = [_item(p) for p in products if isinstance(p, Mapping)]
        return [item for item in found if item]
    single = _item(properties)
    return [single] if single else []


def _filters(value: object) -> dict[str, Any] | None:
    # Segment's "Product List Filtered": filters = [{"type": "brand", "value": "acme"}, ...]
    if isinstance(value, list):
        pairs = [f for f in value if isinstance(f, Mapping) and "type" in f]
        return {str(f["type"]): f.get("value") for f in pairs} or None
    return dict(value) if isinstance(value, Mapping) else None


def _sub(context: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = context.get(name)
    return value if isinstance(value, Mapping) else {}


def _moment(call: SegmentTrack | SegmentPage) -> datetime:
    return call.timestamp or call.originalTimestamp or call.receivedAt or datetime.now(UTC)


def from_segment(
    call: SegmentTrack | SegmentPage, event_type_of: Callable[[str], str]
) -> dict[str, Any]:
    """The canonical event of one Segment call."""
    props = call.properties
    context = call.context
    page = _sub(context, "page")
    campaign = _sub(context, "campaign")
    location = _sub(context, "location")
    if isinstance(call, SegmentTrack):
        name = call.event
    else:
        name = "Screen Viewed" if call.type == "screen" else "Page Viewed"
    event_id = (
        call.messageId
        or hashlib.blake2b(
            json.dumps(call.model_dump(mode="json"), sort_keys=True).encode(), digest_size=16
        ).hexdigest()
    )
    # The tap's module pulls in singer_sdk.typing; only the server needs it, never the engine.
    from tap_clickstream.normalize import experiment_fields  # noqa: PLC0415

    event_type = event_type_of(name)
    # From all properties: an exposure's "variant" is no product's.
    unused = dict(props)
    experiment_id, variant_id, rec_id = experiment_fields(event_type, unused)
    extra = {k: v for k, v in unused.items() if k not in _USED}
    if isinstance(call, SegmentPage):
        extra.update({k: v for k, v in (("name", call.name), ("category", call.category)) if v})
    traits = _sub(context, "traits")
    return {
        "source": SEGMENT_SOURCE,
        "event_id": event_id,
        "event_name": name,
        "event_type": event_type,
        "event_ts": _moment(call),
        "ingested_at": call.receivedAt,
        "user_id": _text(call.userId),
        "anonymous_id": call.anonymousId,
        "session_id": _text(
            props.get("session_id") or context.get("sessionId") or context.get("session_id")
        ),
        "page_url": _text(props.get("url") or page.get("url")),
        "page_path": _text(props.get("path") or page.get("path")),
        "page_title": _text(props.get("title") or page.get("title")),
        "referrer": _text(props.get("referrer") or page.get("referrer")),
        "utm_source": _text(campaign.get("source")),
        "utm_medium": _text(campaign.get("medium")),
        "utm_campaign": _text(campaign.get("name")),
        "utm_term": _text(campaign.get("term")),
        "utm_content": _text(campaign.get("content")),
        "search_query": _text(props.get("query")),
        "filters": _filters(props.get("filters")),
        "items": _items(props),
        "order_id": _text(props.get("order_id") or props.get("checkout_id")),
        "revenue": props.get("revenue", props.get("total")),
        "currency": _text(props.get("currency")),
        "device_category": _text(_sub(context, "device").get("type")),
        "os": _text(_sub(context, "os").get("name")),
        "browser": None,
        "country": _text(location.get("country")),
        "region": _text(location.get("region")),
        "city": _text(location.get("city")),
        "properties": extra,
        "user_properties": dict(traits),
        "experiment_id": experiment_id,
        "variant_id": variant_id,
        "rec_id": rec_id,
    }
