"""``snowplow_events`` on both warehouse layouts: normalisation, state, resume and bad rows."""

from __future__ import annotations

import json
import subprocess
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tap_clickstream.sources.snowplow.connector import resolve_layout
from tap_clickstream.sources.snowplow.streams import engagement
from tests.support.postgres import postgres_schema_url
from tests.tap_clickstream.helpers import (
    TAP_EXECUTABLE,
    parse_messages,
    run_cli,
    run_tap,
    write_json,
)
from tests.tap_clickstream.snowplow.conftest import ItemsWarehouse, snowplow_config
from tests.tap_clickstream.snowplow.warehouse import (
    ACTION,
    EMITTED,
    EVENTS,
    ITEM_EMITTED,
    PRODUCT,
    UUID,
    WIDE_COLUMNS,
    create_wide,
    wide_row,
)

STREAM = "snowplow_events"


def test_sessions_become_canonical_events(warehouse_config: dict[str, Any]) -> None:
    result = run_tap(warehouse_config)
    assert result.error is None
    events = result.by_id(STREAM)
    assert set(events) == EMITTED
    assert len(result.event_ids(STREAM)) == len(EMITTED)  # the duplicated row once
    assert "1 repeated events emitted once" in result.log_text

    view = events[UUID(1)]
    assert (view["event_name"], view["event_type"]) == ("page_view", "page_view")
    assert view["event_ts"] == "2024-03-01T09:59:59.000000Z"  # derived_tstamp
    assert (view["user_id"], view["anonymous_id"], view["session_id"]) == ("u1", "d1", "s1")
    assert view["page_path"] == "/products/42"
    assert (view["utm_source"], view["utm_medium"], view["utm_campaign"]) == (
        "google", "cpc", "spring",
    )  # fmt: skip
    assert (view["country"], view["browser"]) == ("US", "Firefox")
    # Two pings 10 s apart: 10 s x (2 heartbeats - 1) + 5 s minimum visit; scroll to
    # (900 px + 800 px viewport) of a 2000 px page.
    assert view["engagement_ms"] == 15000.0
    assert view["scroll_depth_pct"] == 85.0
    assert view["properties"]["page_pings"] == 2
    assert view["properties"]["contexts"] == {
        "com_snowplowanalytics_snowplow_web_page_1": [{"id": "pv-1"}]
    }

    shoe = {"item_id": "42", "name": "Red shoes", "category": "shoes", "brand": "Acme",
            "price": 19.99}  # fmt: skip
    product_view = events[UUID(4)]
    assert (product_view["event_name"], product_view["event_type"]) == ("product_view",) * 2
    assert product_view["items"] == [shoe]
    assert product_view["properties"]["self_describing_event"] == {ACTION: {"type": "product_view"}}
    assert product_view["properties"]["contexts"][PRODUCT][0]["currency"] == "USD"
    add = events[UUID(5)]
    assert add["event_type"] == "add_to_cart"
    assert add["items"] == [{**shoe, "quantity": 2.0}]
    purchase = events[UUID(6)]
    assert (purchase["event_name"], purchase["event_type"]) == ("transaction", "purchase")
    assert (purchase["order_id"], purchase["revenue"], purchase["currency"]) == (
        "o-1", 39.98, "USD",
    )  # fmt: skip

    search = events[UUID(8)]
    assert (search["event_name"], search["event_type"], search["search_query"]) == (
        "search", "search", "red shoes",
    )  # fmt: skip
    assert search["properties"]["se_category"] == "search"
    custom = events[UUID(9)]
    assert (custom["event_name"], custom["event_type"]) == ("banner-click", "banner_click")
    assert custom["properties"]["se_value"] == 3.5
    assert custom["user_id"] is None and custom["anonymous_id"] == "d2"

    legacy = events[UUID(10)]
    assert legacy["event_type"] == "purchase"
    assert (legacy["order_id"], legacy["revenue"], legacy["currency"]) == ("o-2", 50.0, "EUR")
    assert legacy["items"] == [
        {"item_id": "A", "name": "Socks", "category": "socks", "price": 20.0, "quantity": 1.0},
        {"item_id": "B", "name": "Laces", "category": "laces", "price": 15.0, "quantity": 2.0},
    ]
    assert [line["ti_sku"] for line in legacy["properties"]["transaction_items"]] == ["A", "B"]

    # The page view of s3 closes one window; its ping, loaded in the next, stands alone.
    assert events[UUID(13)]["engagement_ms"] is None
    ping = events[UUID(14)]
    assert (ping["event_name"], ping["event_type"]) == ("page_ping", "engagement")
    assert (ping["engagement_ms"], ping["scroll_depth_pct"]) == (5000.0, 100.0)
    for event in events.values():
        assert event["source"] == "snowplow"
        assert (event["event_count"], event["is_aggregate"]) == (1, False)
    assert result.bookmark(STREAM) == "2024-03-04T00:00:00.000000Z"


def test_cursor_is_load_tstamp_where_the_loader_writes_it(
    warehouse_config: dict[str, Any],
) -> None:
    events = run_tap(warehouse_config).by_id(STREAM)
    view = events[UUID(1)]
    wide = "duckdb" in warehouse_config["snowplow"]["sqlalchemy_url"]
    # Wide: load_tstamp (collector + 1 min here); Postgres loader: collector_tstamp.
    expected = "2024-03-01T10:01:00.000000Z" if wide else "2024-03-01T10:00:00.000000Z"
    assert view["ingested_at"] == expected


def test_next_sync_starts_at_the_bookmark_less_the_lookback(duckdb_url: str) -> None:
    config = snowplow_config(duckdb_url)
    config.pop("end_date")
    first = run_tap(config)
    state = first.states[-1]
    late = {**EVENTS[7], "event_id": UUID(99), "se_label": "blue shoes"}
    row = wide_row(late)
    row["load_tstamp"] = datetime.fromisoformat(first.bookmark(STREAM)[:19]) - timedelta(hours=1)
    _insert(duckdb_url, [row])
    again = run_tap(config, state=state)
    assert again.error is None
    assert again.event_ids(STREAM) == []  # loaded before the bookmark, lookback 0: not re-read
    config["snowplow"]["lookback_hours"] = 2
    with_lookback = run_tap(config, state=state)
    assert with_lookback.event_ids(STREAM) == [UUID(99)]
    assert with_lookback.by_id(STREAM)[UUID(99)]["search_query"] == "blue shoes"


def _insert(url: str, rows: list[dict[str, Any]]) -> None:
    engine = sa.create_engine(url)
    table = sa.table("events", *map(sa.column, WIDE_COLUMNS), schema="atomic")
    with engine.begin() as connection:
        connection.execute(sa.insert(table), rows)
    engine.dispose()


def test_bad_rows_are_counted_not_fatal(tmp_path: Path) -> None:
    url = f"duckdb:///{tmp_path / 'bad.duckdb'}"
    broken_json = {**wide_row(EVENTS[7]), "event_id": UUID(50)}
    broken_json[f"contexts_{PRODUCT}"] = "{not json"
    not_array = {**wide_row(EVENTS[8]), "event_id": UUID(51)}
    not_array[f"contexts_{PRODUCT}"] = '{"id": "x"}'
    no_id = {**wide_row(EVENTS[9]), "event_id": None}
    create_wide(url, rows=[*map(wide_row, EVENTS), broken_json, not_array, no_id])
    result = run_tap(snowplow_config(url))
    assert result.error is None
    assert set(result.by_id(STREAM)) == EMITTED
    assert "skipped 3 malformed records" in result.log_text
    assert "contexts_com_snowplowanalytics_snowplow_ecommerce_product_1 is not valid JSON" in (
        result.log_text
    )


def test_killed_sync_resumes_from_its_last_state(tmp_path: Path, duckdb_url: str) -> None:
    config = snowplow_config(duckdb_url, window_hours=6)
    args = [str(TAP_EXECUTABLE), "--config", str(write_json(tmp_path / "config.json", config))]
    before: list[str] = []
    state: dict[str, Any] | None = None
    with subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            message = json.loads(line)
            if message["type"] == "RECORD":
                before.append(message["record"]["event_id"])
            elif message["type"] == "STATE" and message["value"].get("bookmarks"):
                state = message["value"]
                proc.kill()
                break
        proc.wait(30)
    assert state is not None and before, "the tap never completed a window"
    assert len(before) < len(EMITTED)
    rerun = run_cli(config, tmp_path, state=state)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    after = [m["record"]["event_id"] for m in parse_messages(rerun.stdout) if m["type"] == "RECORD"]
    assert sorted(before + after) == sorted(EMITTED)  # every event exactly once


@pytest.mark.parametrize(
    ("layout", "dialect", "expected"),
    [
        ("auto", "snowflake", "wide"),
        ("auto", "bigquery", "wide"),
        ("auto", "redshift", "shredded"),
        ("auto", "postgresql", "shredded"),
        ("wide", "postgresql", "wide"),
        ("shredded", "duckdb", "shredded"),
    ],
)
def test_layout_follows_the_warehouse(layout: str, dialect: str, expected: str) -> None:
    assert resolve_layout(layout, dialect) == expected


def test_auto_layout_of_an_unknown_warehouse_names_the_setting() -> None:
    with pytest.raises(ValueError, match="set it to wide or shredded"):
        resolve_layout("auto", "mssql")


def test_engagement_follows_the_snowplow_web_model() -> None:
    t0 = EVENTS[0]["collector_tstamp"]
    pings = [
        {"dvce_created_tstamp": t0 + timedelta(seconds=s), "collector_tstamp": t0,
         "pp_yoffset_max": y, "doc_height": 4000, "br_viewheight": 1000}
        for s, y in ((5, 100), (7, 300), (15, 5000), (25, None))
    ]  # fmt: skip
    engaged_ms, scroll = engagement(pings)
    # Heartbeat slots 0, 1, 2 (two pings share one): 10 s x 2 + 5 s.
    assert engaged_ms == 25000.0
    assert scroll == 100.0  # offset clamped to the page height
    assert engagement([]) == (None, None)
    no_height = [{**pings[0], "doc_height": None}]
    assert engagement(no_height) == (5000.0, None)


def test_missing_table_is_a_clear_error_without_the_password() -> None:
    with postgres_schema_url() as url:
        base = url.split("?", 1)[0].replace("postgres@", "postgres:Hunter2-secret@")
        result = run_tap(snowplow_config(base, schema="nowhere"))
    assert result.error is not None
    message = str(result.error)
    assert "check snowplow.sqlalchemy_url, snowplow.schema and snowplow.layout" in message
    assert "nowhere" in message
    assert "Hunter2-secret" not in message and "Hunter2-secret" not in result.log_text


def _full_version(name: str) -> str:
    return f"{name}_0_0" if name.startswith(("contexts_", "unstruct_")) else name


def test_items_fold_into_their_own_order_only(items_warehouse: ItemsWarehouse) -> None:
    events = run_tap(items_warehouse.config()).by_id(STREAM)
    assert set(events) == EMITTED | ITEM_EMITTED
    # A listing keeps its products in order; the one whose id is blank is no item.
    assert events[UUID(30)]["items"] == [
        {"item_id": "7", "name": "Boot", "category": "boots", "variant": "black",
         "price": 80.0, "position": 2},
        {"item_id": "42", "name": "Red shoes", "category": "shoes", "brand": "Acme",
         "price": 19.99, "quantity": 1.0, "position": 1},
    ]  # fmt: skip
    # Neither a transaction nor an item without an order id is another's (the item was
    # once folded into the order-less transaction, and so dropped as an event).
    assert (events[UUID(31)]["order_id"], events[UUID(31)]["items"]) == (None, [])
    assert (events[UUID(32)]["event_name"], events[UUID(32)]["order_id"]) == (
        "transaction_item", None,
    )  # fmt: skip
    assert events[UUID(32)]["items"] == [
        {"item_id": "C", "name": "Cap", "price": 10.0, "quantity": 1.0}
    ]
    # o-3 takes its lines; the one without a SKU is no item.
    assert events[UUID(33)]["items"] == [{"item_id": "D", "price": 7.0, "quantity": 1.0}]
    assert len(events[UUID(33)]["properties"]["transaction_items"]) == 2
    # An item whose transaction never came stands alone.
    assert (events[UUID(36)]["order_id"], events[UUID(36)]["items"]) == ("o-9", [
        {"item_id": "E", "name": 'Orphan "mini" \\ cap', "category": "misc", "price": 3.0, "quantity": 4.0}
    ])  # fmt: skip


def test_bigquery_loader_1_full_version_columns(tmp_path: Path) -> None:
    url = f"duckdb:///{tmp_path / 'bq1.duckdb'}"
    rows = [{_full_version(k): v for k, v in wide_row(e).items()} for e in EVENTS]
    columns = {_full_version(k): v for k, v in WIDE_COLUMNS.items()}
    create_wide(url, rows=rows, columns=columns)
    events = run_tap(snowplow_config(url)).by_id(STREAM)
    assert set(events) == EMITTED
    assert events[UUID(5)]["event_type"] == "add_to_cart"
    assert events[UUID(1)]["scroll_depth_pct"] == 85.0


SITE_SEARCH = "unstruct_event_com_snowplowanalytics_snowplow_site_search_1"


@pytest.mark.parametrize(
    ("data", "query", "filters"),
    [
        ({"terms": ["red", "shoes"], "filters": {"size": "42"}}, "red shoes", {"size": "42"}),
        ({"terms": '["boots"]', "filters": '{"color": "red"}'}, "boots", {"color": "red"}),
    ],
)
def test_site_search_events(
    tmp_path: Path, data: dict[str, Any], query: str, filters: dict[str, Any]
) -> None:
    url = f"duckdb:///{tmp_path / 'search.duckdb'}"
    row = wide_row(EVENTS[0])
    row.update(event="unstruct", event_name="site_search", event_id=UUID(70))
    row[SITE_SEARCH] = json.dumps(data)
    create_wide(url, rows=[row], columns={**WIDE_COLUMNS, SITE_SEARCH: "varchar"})
    event = run_tap(snowplow_config(url)).by_id(STREAM)[UUID(70)]
    assert (event["event_name"], event["event_type"]) == ("site_search", "search")
    assert (event["search_query"], event["filters"]) == (query, filters)


def test_a_later_bookmark_is_kept(duckdb_url: str) -> None:
    state = {
        "bookmarks": {
            STREAM: {
                "replication_key": "ingested_at",
                "replication_key_value": "2024-03-10T00:00:00.000000Z",
            }
        }
    }
    result = run_tap(snowplow_config(duckdb_url), state=state)
    assert result.error is None
    assert result.event_ids(STREAM) == []
    assert result.bookmark(STREAM) == "2024-03-10T00:00:00.000000Z"
