"""The Snowplow canonical view, created on DuckDB (wide) and PostgreSQL (shredded) warehouses.

Its rows must be the events the tap extracts from the same rows (read in one window, as the
view folds pings and transaction items over all events), field by field for every column the
view computes.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import sqlglot
from click.testing import CliRunner

from tap_clickstream.events import EVENT_COLUMNS, parse_ts
from tap_clickstream.sources.snowplow.view import default_layout
from tap_clickstream.tap import TapClickstream
from tap_clickstream.views import emit_view
from tests.tap_clickstream.helpers import run_tap
from tests.tap_clickstream.snowplow.conftest import ItemsWarehouse, snowplow_config
from tests.tap_clickstream.snowplow.warehouse import EMITTED, ITEM_EMITTED

#: What the view computes as the tap does (filters and properties it leaves out).
COMPARED = (
    "event_id", "event_name", "event_type", "event_ts", "ingested_at", "user_id",
    "anonymous_id", "session_id", "page_url", "page_path", "page_title", "referrer",
    "utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content", "search_query",
    "order_id", "revenue", "currency", "engagement_ms", "scroll_depth_pct",
    "media_progress_pct", "event_count", "is_aggregate", "device_category", "os", "browser",
    "country", "region", "city", "items",
)  # fmt: skip


def _plain(field: str, value: Any) -> Any:
    if isinstance(value, datetime):
        return value.replace(tzinfo=None)
    if field in {"event_ts", "ingested_at"} and isinstance(value, str):
        return parse_ts(value).replace(tzinfo=None)
    if field in {"revenue", "engagement_ms", "scroll_depth_pct"} and value is not None:
        return float(value)
    if field == "items" and isinstance(value, str):  # JSON text (DuckDB, Snowflake)
        return json.loads(value)
    return value


def tap_events(
    url: str, schema: str, event_map: dict[str, str] | None = None, layout: str = "auto"
) -> dict[str, dict[str, Any]]:
    """What the tap extracts, in one window, keyed by event id."""
    config = snowplow_config(url, schema, window_hours=24 * 7, layout=layout)
    result = run_tap({**config, "event_map": event_map or {}})
    assert result.error is None
    return {
        event_id: {f: _plain(f, event[f]) for f in COMPARED}
        for event_id, event in result.by_id("snowplow_events").items()
    }


def view_events(url: str, ddl: str, view: str) -> dict[str, dict[str, Any]]:
    """Create the view from its DDL and read it, keyed by event id."""
    engine = sa.create_engine(url)
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql(ddl)
        with engine.connect() as connection:
            rows = connection.execute(sa.text(f"SELECT * FROM {view}")).mappings().all()
    finally:
        engine.dispose()
    return {row["event_id"]: {f: _plain(f, row[f]) for f in COMPARED} for row in rows}


def _differences(
    found: dict[str, dict[str, Any]], expected: dict[str, dict[str, Any]]
) -> list[tuple[str, str, Any, Any]]:
    return [
        (event_id, field, row[field], expected[event_id][field])
        for event_id, row in sorted(found.items())
        for field in COMPARED
        if row[field] != expected[event_id][field]
    ]


def test_wide_view_on_duckdb_matches_the_tap(duckdb_url: str) -> None:
    ddl = emit_view("snowplow", "duckdb", events="atomic.events", view="atomic.canonical")
    found = view_events(duckdb_url, ddl, "atomic.canonical")
    expected = tap_events(duckdb_url, "atomic")
    assert set(found) == set(expected) == EMITTED - {f"00000000-0000-4000-8000-{14:012d}"}
    assert _differences(found, expected) == []


def test_view_folds_items_into_their_own_order_only(items_warehouse: ItemsWarehouse) -> None:
    url, schema, dialect, layout = items_warehouse
    view = f"{schema}.canonical"
    ddl = emit_view("snowplow", dialect, events=f"{schema}.events", view=view, layout=layout)
    found = view_events(url, ddl, view)
    expected = tap_events(url, schema, layout=layout)
    # The order-less item stays an event (the view once dropped it, as NULL IN (...) is NULL).
    assert (
        set(found)
        == set(expected)
        == (EMITTED | ITEM_EMITTED) - {f"00000000-0000-4000-8000-{14:012d}"}
    )
    differences = _differences(found, expected)
    if (dialect, layout) == ("postgres", "wide"):
        # Not a loader's layout: PostgreSQL cuts the ecommerce action's 83-character column
        # name to 63, which the view's SQL names as PostgreSQL cuts it and the tap does not
        # recognise, so the action's name, type and currency differ; items must not.
        differences = [d for d in differences if d[1] not in {"event_name", "event_type",
                                                              "currency"}]  # fmt: skip
    assert differences == []
    # Known items: a listing of two products (one id blank), an order's line with a SKU, an
    # order-less line of its own, a transaction without order nor lines.
    items = {event_id[-2:]: row["items"] for event_id, row in found.items()}
    assert [item["item_id"] for item in items["30"]] == ["7", "42"]
    assert items["30"][0] == {"item_id": "7", "name": "Boot", "category": "boots",
                              "variant": "black", "price": 80.0, "position": 2}  # fmt: skip
    assert items["33"] == [{"item_id": "D", "price": 7.0, "quantity": 1.0}]
    assert [item["item_id"] for item in items["32"]] == ["C"]
    assert items["31"] == items["01"] == []
    assert [item["item_id"] for item in items["10"]] == ["A", "B"]


#: The shop's own names: a structured event's action, an ecommerce action, a legacy event.
EVENT_MAP = {"Banner Click": "promotion_click", "add_to_cart": "Wishlist Add",
             "transaction": "order_placed", "search": "site_search"}  # fmt: skip


def test_the_event_map_types_events_as_in_the_tap(duckdb_url: str) -> None:
    ddl = emit_view("snowplow", "duckdb", view="atomic.canonical", event_map=EVENT_MAP)
    found = view_events(duckdb_url, ddl, "atomic.canonical")
    expected = tap_events(duckdb_url, "atomic", EVENT_MAP)
    assert _differences(found, expected) == []
    types = {(row["event_name"], row["event_type"]) for row in found.values()}
    assert {
        ("banner-click", "promotion_click"),  # by snake_case key
        ("add_to_cart", "wishlist_add"),  # by raw name: not the ecommerce type
        ("transaction", "order_placed"),  # the ecommerce action and the legacy event
        ("search", "site_search"),
    } <= types
    assert ("transaction", "purchase") not in types
    # A search mapped elsewhere is no search: its label is no query (as in the tap).
    assert {row["search_query"] for row in found.values()} == {None}


@pytest.mark.postgres
def test_shredded_view_on_postgres_matches_the_tap(postgres_warehouse: tuple[str, str]) -> None:
    url, schema = postgres_warehouse
    view = f"{schema}.canonical"
    ddl = emit_view("snowplow", "postgres", events=f"{schema}.events", view=view)
    found = view_events(url, ddl, view)
    expected = tap_events(url, schema)
    assert len(found) == len(expected) == len(EMITTED) - 1
    assert _differences(found, expected) == []


@pytest.mark.parametrize(
    ("dialect", "layout", "marker"),
    [
        ("bigquery", "wide", "JSON_EXTRACT_SCALAR"),
        ("redshift", "shredded", "LEFT JOIN"),
        ("snowflake", "wide", "JSON_EXTRACT_PATH_TEXT"),
        ("postgres", "shredded", "LEFT JOIN"),
    ],
)
def test_each_dialect_parses_back(dialect: str, layout: str, marker: str) -> None:
    ddl = emit_view("snowplow", dialect, events="atomic.events")
    assert marker in ddl
    statement = sqlglot.parse_one(ddl.rstrip().rstrip(";"), read=dialect)
    assert isinstance(statement, sqlglot.exp.Create)
    assert statement.this.sql(dialect=dialect) == "atomic.snowplow_canonical_events"
    selected = [column.alias_or_name for column in statement.expression.expressions]
    assert selected == [*EVENT_COLUMNS, "loaded_at"]
    assert default_layout(dialect) == layout


def test_the_tap_prints_the_view() -> None:
    result = CliRunner().invoke(
        TapClickstream.cli,
        ["--emit-view", "snowplow", "--dialect", "redshift", "--view", "analytics.ev"],
    )
    assert result.exit_code == 0, result.output
    header, statement = result.output.split("\nCREATE OR REPLACE VIEW analytics.ev AS", 1)
    # What the view cannot compute is said above it, in comments.
    assert all(line.startswith("-- ") for line in header.splitlines())
    assert "Left NULL: filters" in header
    assert "items" not in header
    assert statement.rstrip().endswith(";")
    assert "atomic.com_snowplowanalytics_snowplow_web_page_1" in result.output
    missing = CliRunner().invoke(TapClickstream.cli, ["--emit-view", "snowplow"])
    assert missing.exit_code == 2
    assert "--emit-view needs --dialect" in missing.output
    # A combination no view exists for is a usage error naming the fix, not a traceback.
    wide = CliRunner().invoke(
        TapClickstream.cli, ["--emit-view", "snowplow", "--dialect", "redshift", "--layout", "wide"]
    )
    assert wide.exit_code == 2
    assert "Error: Snowplow's Redshift loader shreds entities" in wide.output
    assert "(drop --layout wide)" in wide.output


def test_the_printed_view_applies_the_configs_event_map(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"event_map": {"Banner Click": "promotion_click"}}))
    args = ["--emit-view", "snowplow", "--dialect", "duckdb"]
    mapped = CliRunner().invoke(TapClickstream.cli, [*args, "--config", str(config)])
    assert mapped.exit_code == 0, mapped.output
    assert re.search(r"WHEN 'banner_click'\s+THEN 'promotion_click'", mapped.output)
    plain = CliRunner().invoke(TapClickstream.cli, args)
    assert "promotion_click" not in plain.output


def test_unknown_layout_and_dialect_are_named() -> None:
    with pytest.raises(ValueError, match="unknown Snowplow layout 'flat'"):
        emit_view("snowplow", "duckdb", layout="flat")
    with pytest.raises(ValueError, match="unknown dialect 'oracle'"):
        emit_view("snowplow", "oracle")
    # Redshift's loader shreds: its items are read from the entity tables only.
    with pytest.raises(ValueError, match=r"shredded layout only \(drop --layout wide\)"):
        emit_view("snowplow", "redshift", layout="wide")
