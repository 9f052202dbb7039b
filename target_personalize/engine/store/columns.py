"""The store's columns: the canonical event, the item catalog, and rejected records.

The tap's JSON schema (``tap_clickstream.events.EVENT_SCHEMA``) and these columns describe the
same event; ``tests/test_canonical_event.py`` keeps them in step.
"""

from __future__ import annotations

from typing import Literal

__all__ = ["EVENT_COLUMNS", "ITEM_COLUMNS", "ITEM_FIELDS", "REJECT_COLUMNS", "Kind"]

Kind = Literal["str", "ts", "float", "int", "bool", "json", "items"]

#: Canonical event columns and their kinds, in schema order.
EVENT_COLUMNS: dict[str, Kind] = {
    "source": "str",
    "event_id": "str",
    "event_name": "str",
    "event_type": "str",
    "event_ts": "ts",
    "ingested_at": "ts",
    "user_id": "str",
    "anonymous_id": "str",
    "session_id": "str",
    "page_url": "str",
    "page_path": "str",
    "page_title": "str",
    "referrer": "str",
    "utm_source": "str",
    "utm_medium": "str",
    "utm_campaign": "str",
    "utm_term": "str",
    "utm_content": "str",
    "search_query": "str",
    "filters": "json",
    "items": "items",
    "order_id": "str",
    "revenue": "float",
    "currency": "str",
    "engagement_ms": "float",
    "scroll_depth_pct": "float",
    "media_progress_pct": "float",
    "event_count": "int",
    "is_aggregate": "bool",
    "device_category": "str",
    "os": "str",
    "browser": "str",
    "country": "str",
    "region": "str",
    "city": "str",
    "properties": "json",
    "user_properties": "json",
    # Added after the first release: last, so a migrated store has the same column order.
    "experiment_id": "str",
    "variant_id": "str",
    "rec_id": "str",
}

#: Fields of one entry of ``items``.
ITEM_FIELDS: dict[str, Kind] = {
    "item_id": "str",
    "name": "str",
    "category": "str",
    "brand": "str",
    "variant": "str",
    "price": "float",
    "quantity": "float",
    "position": "int",
}

#: The item catalog (stream ``items``).
ITEM_COLUMNS: dict[str, Kind] = {
    "item_id": "str",
    "title": "str",
    "category": "str",
    "brand": "str",
    "price": "float",
    "cost": "float",
    "margin": "float",
    "available": "bool",
    "updated_at": "ts",
    "properties": "json",
}

#: Records that could not be stored (table ``rejects``).
REJECT_COLUMNS: dict[str, Kind] = {
    "rejected_at": "ts",
    "stream": "str",
    "event_key": "str",
    "field": "str",
    "reason": "str",
    "record": "json",
}
