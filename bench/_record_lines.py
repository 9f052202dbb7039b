"""Singer RECORD lines of realistic canonical events, as a third-party tap sends them.

One SCHEMA message (the canonical event, key ``[source, event_id]``), then one
``{"type": "RECORD", ...}`` line per event with ``time_extracted``, and a STATE message every
10,000 events. Events: visitors' sessions of views, searches, carts and purchases over priced
items, with page, campaign, device and free-form properties.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tap_clickstream.events import EVENT_SCHEMA

STREAM = "file_events"
STATE_EVERY = 10_000
_FLOW = [
    ("Product Viewed", "product_view"),
    ("Products Searched", "search"),
    ("Product Added", "add_to_cart"),
    ("Order Completed", "purchase"),
]


def events(n: int, seed: int = 7) -> Iterator[dict[str, Any]]:
    """``n`` canonical events, generated one at a time."""
    rng = random.Random(seed)
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    i = 0
    while i < n:
        visitor = rng.randrange(50_000)
        start = t0 + timedelta(seconds=rng.randrange(90 * 86_400))
        for step in range(rng.randint(1, 12)):
            if i >= n:
                return
            roll = rng.random()
            name, kind = _FLOW[(roll >= 0.8) + (roll >= 0.9) + (roll >= 0.97)]
            item = rng.randrange(20_000)
            price = round(5 + item % 300 * 1.5, 2)
            ts = start + timedelta(seconds=40 * step)
            yield {
                "source": "file",
                "event_id": f"ev-{i}",
                "event_name": name,
                "event_type": kind,
                "event_ts": ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                "ingested_at": (ts + timedelta(seconds=3)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                "user_id": f"user-{visitor}",
                "anonymous_id": f"anon-{visitor}",
                "session_id": f"s-{visitor}-{start:%j%H}",
                "page_url": f"https://shop.example/p/{item}?utm_source=news",
                "page_path": f"/p/{item}",
                "page_title": f"Product {item}",
                "referrer": "https://www.google.com/",
                "utm_source": "news" if visitor % 4 == 0 else None,
                "utm_medium": "email" if visitor % 4 == 0 else None,
                "utm_campaign": "spring" if visitor % 4 == 0 else None,
                "search_query": f"shoes {item % 50}" if kind == "search" else None,
                "filters": {"size": "42"} if kind == "search" else None,
                "items": [
                    {
                        "item_id": f"sku-{item}",
                        "name": f"Product {item}",
                        "category": f"cat-{item % 200}",
                        "brand": f"brand-{item % 30}",
                        "price": price,
                        "quantity": 1,
                        "position": step,
                    }
                ],
                "order_id": f"o-{i}" if kind == "purchase" else None,
                "revenue": price if kind == "purchase" else None,
                "currency": "EUR" if kind == "purchase" else None,
                "engagement_ms": 1000 + 250 * step,
                "scroll_depth_pct": 50.0,
                "event_count": 1,
                "is_aggregate": False,
                "device_category": "mobile" if visitor % 3 else "desktop",
                "os": "Android" if visitor % 3 else "Windows",
                "browser": "Chrome",
                "country": "DE",
                "region": "BE",
                "city": "Berlin",
                "properties": {"ab_test": "b" if visitor % 2 else "a", "step": step},
                "user_properties": {"plan": "free"},
            }
            i += 1


def write_messages(path: Path, n: int) -> None:
    """Write the SCHEMA, RECORD and STATE lines for ``n`` events to ``path``."""
    extracted = "2024-04-01T00:00:00.000000+00:00"
    schema = {
        "type": "SCHEMA",
        "stream": STREAM,
        "schema": EVENT_SCHEMA,
        "key_properties": ["source", "event_id"],
    }
    with path.open("w") as out:
        out.write(json.dumps(schema) + "\n")
        for i, record in enumerate(events(n), 1):
            message = {
                "type": "RECORD",
                "stream": STREAM,
                "record": record,
                "time_extracted": extracted,
            }
            out.write(json.dumps(message, separators=(",", ":")) + "\n")
            if i % STATE_EVERY == 0 or i == n:
                state = {"bookmarks": {STREAM: {"replication_key_value": i}}}
                out.write(json.dumps({"type": "STATE", "value": state}) + "\n")
