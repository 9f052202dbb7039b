"""Canonical events for tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


def event(n: int, **overrides: Any) -> dict[str, Any]:
    """The n-th test event: a product view by one of five users, a minute apart."""
    record: dict[str, Any] = {
        "source": "file",
        "event_id": f"e{n}",
        "event_name": "Product Viewed",
        "event_type": "product_view",
        "event_ts": (T0 + timedelta(minutes=n)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "user_id": f"u{n % 5}",
        "session_id": f"s{n % 5}",
        "items": [{"item_id": f"i{n % 7}", "price": 10.0 + n % 7}],
        "properties": {"n": n},
    }
    record.update(overrides)
    return record
