"""The canonical clickstream event: schema, typed record, crosswalk and normalisation helpers.

Every source turns its native records into :class:`ClickstreamEvent` dicts. The JSON schema
(:data:`EVENT_SCHEMA`) is defined once here and used by both plugins: the tap declares it on
every ``*_events`` stream and the target's store derives its columns from it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any, TypedDict

from singer_sdk import typing as th

from tap_clickstream.schema_objects import ITEM_TYPE

__all__ = [
    "BUILTIN_CROSSWALK",
    "CANONICAL_TYPES",
    "EVENT_COLUMNS",
    "EVENT_SCHEMA",
    "ClickstreamEvent",
    "EventTypeMapper",
    "Item",
    "format_ts",
    "parse_ts",
    "snake_case",
    "stable_event_id",
]


class Item(TypedDict, total=False):
    """A product, listing, video or article an event involves."""

    item_id: str
    name: str | None
    category: str | None
    brand: str | None
    variant: str | None
    price: float | None
    quantity: float | None
    position: int | None


class ClickstreamEvent(TypedDict, total=False):
    """One interaction, in the canonical form every source is normalised to."""

    source: str
    event_id: str
    event_name: str
    event_type: str
    event_ts: str
    ingested_at: str | None
    user_id: str | None
    anonymous_id: str | None
    session_id: str | None
    page_url: str | None
    page_path: str | None
    page_title: str | None
    referrer: str | None
    utm_source: str | None
    utm_medium: str | None
    utm_campaign: str | None
    utm_term: str | None
    utm_content: str | None
    search_query: str | None
    filters: dict[str, Any] | None
    items: list[Item]
    order_id: str | None
    revenue: float | None
    currency: str | None
    engagement_ms: float | None
    scroll_depth_pct: float | None
    media_progress_pct: float | None
    event_count: int
    is_aggregate: bool
    device_category: str | None
    os: str | None
    browser: str | None
    country: str | None
    region: str | None
    city: str | None
    properties: dict[str, Any]
    user_properties: dict[str, Any]
    experiment_id: str | None
    variant_id: str | None
    rec_id: str | None


_STRING_FIELDS = [
    "user_id", "anonymous_id", "session_id", "page_url", "page_path", "page_title", "referrer",
    "utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content", "search_query",
]  # fmt: skip
_CONTEXT_FIELDS = ["device_category", "os", "browser", "country", "region", "city"]

EVENT_SCHEMA: dict[str, Any] = th.PropertiesList(
    th.Property("source", th.StringType, required=True, description="Source system"),
    th.Property("event_id", th.StringType, required=True, description="Unique id in the source"),
    th.Property("event_name", th.StringType, required=True, description="Raw event name"),
    th.Property("event_type", th.StringType, required=True, description="Canonical event type"),
    th.Property("event_ts", th.DateTimeType, required=True, description="When it happened (UTC)"),
    th.Property("ingested_at", th.DateTimeType, description="When the source received it"),
    *(th.Property(name, th.StringType) for name in _STRING_FIELDS),
    th.Property("filters", th.ObjectType(additional_properties=True)),
    th.Property("items", th.ArrayType(ITEM_TYPE)),
    th.Property("order_id", th.StringType),
    th.Property("revenue", th.NumberType),
    th.Property("currency", th.StringType),
    th.Property("engagement_ms", th.NumberType),
    th.Property("scroll_depth_pct", th.NumberType),
    th.Property("media_progress_pct", th.NumberType),
    th.Property("event_count", th.IntegerType),
    th.Property("is_aggregate", th.BooleanType),
    *(th.Property(name, th.StringType) for name in _CONTEXT_FIELDS),
    th.Property("properties", th.ObjectType(additional_properties=True)),
    th.Property("user_properties", th.ObjectType(additional_properties=True)),
    # Last, so stores created before them get the same column order when they are added.
    th.Property("experiment_id", th.StringType, description="A/B test an exposure names"),
    th.Property("variant_id", th.StringType, description="Its variant (arm)"),
    th.Property("rec_id", th.StringType, description="Recommended list the event came from"),
).to_dict()

#: Canonical columns, in schema order.
EVENT_COLUMNS: tuple[str, ...] = tuple(EVENT_SCHEMA["properties"])

CANONICAL_TYPES: frozenset[str] = frozenset(
    {
        "page_view", "product_view", "category_view", "search", "filter", "add_to_cart",
        "remove_from_cart", "add_to_wishlist", "begin_checkout", "purchase", "booking",
        "review_view", "message", "follow", "media_progress", "engagement",
        "experiment_exposure",
    }
)  # fmt: skip

# Built-in crosswalk, keyed by the normalised raw name (lower case, words joined by "_").
# Segment/Mixpanel/Amplitude spec names, GA4 recommended events and Snowplow event names.
# fmt: off
_BUILTIN_CROSSWALK: dict[str, str] = {
    # page and screen views
    "page": "page_view", "page_view": "page_view", "pageview": "page_view",
    "page_viewed": "page_view", "mp_page_view": "page_view", "screen_view": "page_view",
    "screen": "page_view", "screen_viewed": "page_view", "view_page": "page_view",
    # Mixpanel autotrack ($mp_web_page_view), Amplitude browser SDK ([Amplitude] Page Viewed)
    "mp_web_page_view": "page_view", "amplitude_page_viewed": "page_view",
    # products
    "product_viewed": "product_view", "view_item": "product_view", "product_view": "product_view",
    "viewed_product": "product_view", "item_viewed": "product_view",
    "product_clicked": "product_view",
    "select_item": "product_view", "view_product": "product_view", "detail": "product_view",
    "product_list_viewed": "category_view", "view_item_list": "category_view",
    "category_viewed": "category_view", "view_category": "category_view",
    "category_view": "category_view", "list_view": "category_view",
    "view_promotion": "category_view",
    # search and filters
    "products_searched": "search", "search": "search", "searched": "search",
    "view_search_results": "search", "site_search": "search", "search_performed": "search",
    "product_list_filtered": "filter", "filter": "filter", "filter_applied": "filter",
    "filters_applied": "filter",
    # cart and wishlist
    "product_added": "add_to_cart", "add_to_cart": "add_to_cart", "added_to_cart": "add_to_cart",
    "cart": "add_to_cart", "add_product": "add_to_cart",
    "product_removed": "remove_from_cart", "remove_from_cart": "remove_from_cart",
    "removed_from_cart": "remove_from_cart", "remove": "remove_from_cart",
    "product_added_to_wishlist": "add_to_wishlist", "add_to_wishlist": "add_to_wishlist",
    "added_to_wishlist": "add_to_wishlist",
    # checkout and conversions
    "checkout_started": "begin_checkout", "begin_checkout": "begin_checkout",
    "checkout": "begin_checkout", "initiate_checkout": "begin_checkout",
    "order_completed": "purchase", "purchase": "purchase", "purchased": "purchase",
    "transaction": "purchase", "transaction_item": "purchase", "order_placed": "purchase",
    "checkout_completed": "purchase", "completed_purchase": "purchase",
    "booking": "booking", "booking_completed": "booking", "reservation_completed": "booking",
    # content and social
    "review_viewed": "review_view", "product_reviewed": "review_view",
    "view_reviews": "review_view",
    "message_sent": "message", "message": "message", "contact_seller": "message",
    "follow": "follow", "followed": "follow", "user_followed": "follow",
    "video_progress": "media_progress", "video_playback_progress": "media_progress",
    "video_content_playing": "media_progress", "media_progress": "media_progress",
    "media_player_event": "media_progress",
    "page_ping": "engagement", "user_engagement": "engagement", "scroll": "engagement",
    "engagement": "engagement",
    # A/B test exposures: Segment/Mixpanel/Amplitude spec "Experiment Viewed", GrowthBook
    # experiment_viewed, Amplitude Experiment $exposure ("[Experiment] Exposure" before it),
    # Mixpanel $experiment_started
    "experiment_viewed": "experiment_exposure", "exposure": "experiment_exposure",
    "experiment_exposure": "experiment_exposure", "experiment_started": "experiment_exposure",
}
# fmt: on
#: The built-in crosswalk, snake_case raw name -> canonical type (read-only).
BUILTIN_CROSSWALK: Mapping[str, str] = MappingProxyType(_BUILTIN_CROSSWALK)

_SNAKE_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_NON_WORD = re.compile(r"[^0-9a-zA-Z]+")


def snake_case(name: str) -> str:
    """Return the snake_case form of a raw event name (``"Order Completed"`` -> ``order_completed``).

    A leading ``$`` (Mixpanel's reserved prefix) is dropped; an empty result becomes ``unknown``.
    """
    text = _SNAKE_BOUNDARY.sub("_", name.lstrip("$"))
    return _NON_WORD.sub("_", text).strip("_").lower() or "unknown"


class EventTypeMapper:
    """Map raw event names to canonical types: the user's ``event_map`` first, then the crosswalk.

    Results are cached per raw name, because a sync sees the same few hundred names millions
    of times.
    """

    def __init__(self, event_map: dict[str, str] | None = None) -> None:
        pairs = [(name, snake_case(kind)) for name, kind in (event_map or {}).items()]
        self._user = dict(pairs)
        # Also by normalised name, so "Checkout Done" in the map matches "checkout_done".
        self._user_normalised = {snake_case(name): kind for name, kind in pairs}
        self._cache: dict[str, str] = {}

    def __call__(self, raw_name: str) -> str:
        """Return the canonical type of ``raw_name``; unmapped names become their snake_case."""
        cached = self._cache.get(raw_name)
        if cached is not None:
            return cached
        kind = self._user.get(raw_name)
        if kind is None:
            key = snake_case(raw_name)
            kind = self._user_normalised.get(key) or _BUILTIN_CROSSWALK.get(key, key)
        self._cache[raw_name] = kind
        return kind


def stable_event_id(*parts: object) -> str:
    """Return a stable id hashed from the identifying fields of an event that has none."""
    joined = "\x1f".join("" if part is None else str(part) for part in parts)
    return hashlib.blake2b(joined.encode(), digest_size=16).hexdigest()


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def parse_ts(value: object) -> datetime:
    """Parse a timestamp from the forms sources send, returning an aware UTC datetime.

    Accepts epoch numbers (seconds, or milliseconds/microseconds by magnitude), ISO-8601 with
    ``T`` or a space, with or without an offset or ``Z``, and a trailing `` UTC``. Naive times
    are UTC.

    Raises:
        ValueError: if the value is not a timestamp.
    """
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, bool):
        raise ValueError(f"not a timestamp: {value!r}")
    if isinstance(value, int | float):
        number = float(value)
        if abs(number) > 1e14:
            number /= 1e6
        elif abs(number) > 1e11:
            number /= 1e3
        try:
            return _EPOCH + timedelta(seconds=number)
        except (OverflowError, ValueError):  # inf, nan, or beyond year 9999
            raise ValueError(f"not a timestamp: {value!r}") from None
    if not isinstance(value, str) or not value:
        raise ValueError(f"not a timestamp: {value!r}")
    text = value.strip()
    if text.endswith(" UTC"):
        text = text[:-4]
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        try:
            return parse_ts(float(text))
        except ValueError:
            raise ValueError(f"not a timestamp: {value!r}") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def format_ts(moment: datetime) -> str:
    """Format an aware datetime as the canonical ISO-8601 UTC string (microseconds, ``Z``)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
