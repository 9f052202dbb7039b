"""A DuckDB stand-in for the GA4 BigQuery export: day tables in the export's nested layout.

Column types follow the export schema (https://support.google.com/analytics/answer/7029846):
repeated key/value records for ``event_params`` and ``user_properties``, a repeated record for
``items``, and records for ``device``, ``geo``, ``traffic_source``, ``ecommerce``...
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

VALUE = "STRUCT(string_value VARCHAR, int_value BIGINT, float_value DOUBLE, double_value DOUBLE)"
COLUMNS = f"""
    event_date VARCHAR,
    event_timestamp BIGINT,
    event_name VARCHAR,
    event_params STRUCT(key VARCHAR, value {VALUE})[],
    event_previous_timestamp BIGINT,
    event_value_in_usd DOUBLE,
    event_bundle_sequence_id BIGINT,
    event_server_timestamp_offset BIGINT,
    user_id VARCHAR,
    user_pseudo_id VARCHAR,
    user_properties STRUCT(key VARCHAR, value STRUCT(string_value VARCHAR, int_value BIGINT,
        float_value DOUBLE, double_value DOUBLE, set_timestamp_micros BIGINT))[],
    device STRUCT(category VARCHAR, mobile_brand_name VARCHAR, operating_system VARCHAR,
        language VARCHAR, web_info STRUCT(browser VARCHAR, browser_version VARCHAR,
        hostname VARCHAR)),
    geo STRUCT(continent VARCHAR, country VARCHAR, region VARCHAR, city VARCHAR),
    traffic_source STRUCT(name VARCHAR, medium VARCHAR, source VARCHAR),
    stream_id VARCHAR,
    platform VARCHAR,
    ecommerce STRUCT(total_item_quantity BIGINT, purchase_revenue_in_usd DOUBLE,
        purchase_revenue DOUBLE, shipping_value DOUBLE, tax_value DOUBLE,
        unique_items BIGINT, transaction_id VARCHAR),
    items STRUCT(item_id VARCHAR, item_name VARCHAR, item_brand VARCHAR, item_variant VARCHAR,
        item_category VARCHAR, price DOUBLE, quantity BIGINT, item_revenue DOUBLE,
        item_list_index VARCHAR)[],
    collected_traffic_source STRUCT(manual_campaign_name VARCHAR, manual_source VARCHAR,
        manual_medium VARCHAR, manual_term VARCHAR, manual_content VARCHAR, gclid VARCHAR),
    batch_event_index BIGINT,
    batch_page_id BIGINT,
    batch_ordering_id BIGINT
"""


def micros(*args: int) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp() * 1_000_000)  # type: ignore[arg-type]


def param(key: str, value: Any) -> dict[str, Any]:
    """One ``event_params`` entry with the typed field the export would set."""
    typed = {"string_value": None, "int_value": None, "float_value": None, "double_value": None}
    if isinstance(value, str):
        typed["string_value"] = value
    elif isinstance(value, int):
        typed["int_value"] = value
    else:
        typed["double_value"] = value
    return {"key": key, "value": typed}


def event(
    name: str,
    ts: int,
    pseudo: str = "p1",
    session: int = 1001,
    params: dict[str, Any] | None = None,
    **columns: Any,
) -> dict[str, Any]:
    """One export row; ``ga_session_id`` and the given params become ``event_params``."""
    row: dict[str, Any] = dict.fromkeys(COLUMN_NAMES)
    row.update(
        event_date=datetime.fromtimestamp(ts / 1e6, UTC).strftime("%Y%m%d"),
        event_timestamp=ts,
        event_name=name,
        event_params=[param("ga_session_id", session)]
        + [param(k, v) for k, v in (params or {}).items()],
        user_pseudo_id=pseudo,
        stream_id="1234567890",
        platform="WEB",
        event_bundle_sequence_id=ts // 1000,
        device={
            "category": "desktop",
            "mobile_brand_name": None,
            "operating_system": "Macintosh",
            "language": "en-us",
            "web_info": {"browser": "Chrome", "browser_version": "122", "hostname": "shop"},
        },
        geo={"continent": "Europe", "country": "Germany", "region": "Berlin", "city": "Berlin"},
        traffic_source={"name": "(direct)", "medium": "(none)", "source": "(direct)"},
        items=[],
    )
    row.update(columns)
    return row


COLUMN_NAMES = [
    "event_date", "event_timestamp", "event_name", "event_params", "event_previous_timestamp",
    "event_value_in_usd", "event_bundle_sequence_id", "event_server_timestamp_offset",
    "user_id", "user_pseudo_id", "user_properties", "device", "geo", "traffic_source",
    "stream_id", "platform", "ecommerce", "items", "collected_traffic_source",
    "batch_event_index", "batch_page_id", "batch_ordering_id",
]  # fmt: skip


def write_tables(path: Path, tables: dict[str, list[dict[str, Any]]]) -> str:
    """Create (or replace) the tables in a DuckDB file; return its SQLAlchemy URL."""
    con = duckdb.connect(str(path))
    try:
        for table, rows in tables.items():
            con.execute(f'CREATE OR REPLACE TABLE "{table}" ({COLUMNS})')
            placeholders = ", ".join("?" for _ in COLUMN_NAMES)
            for row in rows:
                con.execute(
                    f'INSERT INTO "{table}" VALUES ({placeholders})',
                    [row[name] for name in COLUMN_NAMES],
                )
    finally:
        con.close()
    return f"duckdb:///{path}"


def drop_table(path: Path, table: str) -> None:
    con = duckdb.connect(str(path))
    try:
        con.execute(f'DROP TABLE IF EXISTS "{table}"')
    finally:
        con.close()


def sample_tables() -> dict[str, list[dict[str, Any]]]:
    """Three daily tables, one intraday table and an unrelated table."""
    purchase_items = [
        {
            "item_id": "SKU-1", "item_name": "Boots", "item_brand": "Acme",
            "item_variant": "42", "item_category": "Shoes", "price": 80.0, "quantity": 1,
            "item_revenue": 80.0, "item_list_index": "2",
        },
        {
            "item_id": None, "item_name": "Socks", "item_brand": None, "item_variant": None,
            "item_category": "Apparel", "price": 5.5, "quantity": 2, "item_revenue": 11.0,
            "item_list_index": None,
        },
    ]  # fmt: skip
    return {
        "events_20240301": [
            event(
                "page_view",
                micros(2024, 3, 1, 9),
                params={
                    "page_location": "https://shop.example/boots?utm_source=news",
                    "page_title": "Boots",
                    "page_referrer": "https://news.example/",
                    "source": "newsletter",
                    "medium": "email",
                    "campaign": "spring",
                    "engagement_time_msec": 1500,
                    "ga_session_number": 3,
                },
                user_id="u-42",
                event_server_timestamp_offset=250_000,
                user_properties=[
                    {
                        "key": "plan",
                        "value": {
                            "string_value": "gold",
                            "int_value": None,
                            "float_value": None,
                            "double_value": None,
                            "set_timestamp_micros": micros(2024, 2, 1),
                        },
                    }
                ],
                batch_event_index=0,
                batch_page_id=1,
                batch_ordering_id=1,
            ),
            event(
                "view_search_results",
                micros(2024, 3, 1, 9, 1),
                params={"search_term": "red boots", "page_location": "https://shop.example/s"},
            ),
            event(
                "scroll",
                micros(2024, 3, 1, 9, 2),
                params={"percent_scrolled": 90, "engagement_time_msec": 20000},
            ),
            event(
                "purchase",
                micros(2024, 3, 1, 9, 5),
                params={"currency": "EUR", "value": 91.0, "transaction_id": "T-1"},
                items=purchase_items,
                ecommerce={
                    "total_item_quantity": 3,
                    "purchase_revenue_in_usd": 99.0,
                    "purchase_revenue": 91.0,
                    "shipping_value": 0.0,
                    "tax_value": 0.0,
                    "unique_items": 2,
                    "transaction_id": "T-1",
                },
                collected_traffic_source={
                    "manual_campaign_name": "retarget",
                    "manual_source": "google",
                    "manual_medium": "cpc",
                    "manual_term": "boots",
                    "manual_content": None,
                    "gclid": "abc",
                },
            ),
            # No name: skipped as malformed, the sync goes on.
            event("", micros(2024, 3, 1, 10)),
        ],
        "events_20240302": [
            event(
                "view_item",
                micros(2024, 3, 2, 8),
                pseudo="p2",
                session=2002,
                params={"value": 3.25, "price_tier": 2.5},
                items=[
                    {
                        "item_id": "SKU-9",
                        "item_name": "Hat",
                        "item_brand": None,
                        "item_variant": None,
                        "item_category": None,
                        "price": 3.25,
                        "quantity": 1,
                        "item_revenue": None,
                        "item_list_index": None,
                    }
                ],
            ),
            event("add_to_cart", micros(2024, 3, 2, 8, 1), pseudo="p2", session=2002),
            # Same device, name and microsecond, different parameters: two events.
            event(
                "custom Thing", micros(2024, 3, 2, 8, 2), pseudo="p2", session=2002, params={"n": 1}
            ),
            event(
                "custom Thing", micros(2024, 3, 2, 8, 2), pseudo="p2", session=2002, params={"n": 2}
            ),
        ],
        "events_20240303": [
            event(
                "video_progress",
                micros(2024, 3, 3, 12),
                pseudo="p3",
                session=3003,
                params={"video_percent": 25, "video_title": "Intro"},
            ),
        ],
        "events_intraday_20240304": [
            event(
                "page_view",
                micros(2024, 3, 4, 7),
                pseudo="p3",
                session=3004,
                params={"page_location": "https://shop.example/"},
            ),
        ],
        "pseudonymous_users_20240301": [],
    }
