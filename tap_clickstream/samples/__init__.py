"""The bundled sample: REES46 Open CDP e-commerce events, the tap's embedded default.

See ``ATTRIBUTION.md`` beside this module for where the file comes from.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["SAMPLE_EVENT_MAP", "SAMPLE_MAPPING", "SAMPLE_PATH"]

SAMPLE_PATH = Path(__file__).with_name("rees46-2019-Oct-head-sample.csv")

#: Canonical field -> CSV column, for the REES46 layout.
SAMPLE_MAPPING: dict[str, str] = {
    "event_ts": "event_time",
    "event_name": "event_type",
    "user_id": "user_id",
    "session_id": "user_session",
    "items.item_id": "product_id",
    "items.category": "category_code",
    "items.brand": "brand",
    "items.price": "price",
}

#: REES46's raw names for the canonical types.
SAMPLE_EVENT_MAP: dict[str, str] = {"view": "product_view", "cart": "add_to_cart"}
