"""``ga4_events`` against DuckDB tables in the BigQuery export's nested layout."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pytest

from tap_clickstream.config import validate_config
from tap_clickstream.registry import Provider, active_providers
from tap_clickstream.sources.ga4.export import param_value
from tap_clickstream.sources.ga4.streams import export_tables
from tap_clickstream.tap import TapClickstream
from tests.tap_clickstream.ga4.export_db import drop_table, sample_tables, write_tables
from tests.tap_clickstream.helpers import run_tap

STREAM = "ga4_events"


@pytest.fixture
def export(tmp_path: Path) -> tuple[Path, str]:
    path = tmp_path / "export.duckdb"
    return path, write_tables(path, sample_tables())


def config(url: str, **ga4: Any) -> dict[str, Any]:
    return {
        "start_date": "2024-03-01T00:00:00Z",
        "end_date": "2024-03-04T12:00:00Z",
        "ga4": {"export_url": url, **ga4},
    }


def _by_name(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["event_name"]: r for r in records}


def test_fields_land_where_they_should(export: tuple[Path, str]) -> None:
    result = run_tap(config(export[1]))
    assert result.error is None
    events = _by_name(result.records(STREAM))
    assert "page_view" in events and len(result.records(STREAM)) == 9  # no intraday

    view = events["page_view"]
    assert view["event_ts"] == "2024-03-01T09:00:00.000000Z"  # microseconds since epoch
    assert view["ingested_at"] == "2024-03-01T09:00:00.250000Z"  # + server offset
    assert (view["user_id"], view["anonymous_id"]) == ("u-42", "p1")
    assert view["session_id"] == "p1:1001"  # user_pseudo_id + ga_session_id
    assert view["page_url"] == "https://shop.example/boots?utm_source=news"
    assert (view["page_path"], view["page_title"]) == ("/boots", "Boots")
    assert view["referrer"] == "https://news.example/"
    assert (view["utm_source"], view["utm_medium"], view["utm_campaign"]) == (
        "newsletter", "email", "spring",
    )  # fmt: skip
    assert view["engagement_ms"] == 1500
    assert (view["device_category"], view["os"], view["browser"]) == (
        "desktop", "Macintosh", "Chrome",
    )  # fmt: skip
    assert (view["country"], view["region"], view["city"]) == ("Germany", "Berlin", "Berlin")
    assert view["user_properties"] == {"plan": "gold"}
    assert view["properties"]["ga_session_number"] == 3  # other params are kept, typed
    assert view["properties"]["platform"] == "WEB"
    assert (view["event_count"], view["is_aggregate"]) == (1, False)

    assert events["view_search_results"]["event_type"] == "search"
    assert events["view_search_results"]["search_query"] == "red boots"
    assert events["scroll"]["scroll_depth_pct"] == 90
    assert events["scroll"]["event_type"] == "engagement"
    assert events["video_progress"]["media_progress_pct"] == 25
    assert events["view_item"]["event_type"] == "product_view"
    assert events["view_item"]["properties"]["price_tier"] == 2.5  # double_value

    purchase = events["purchase"]
    assert purchase["event_type"] == "purchase"
    assert (purchase["order_id"], purchase["revenue"], purchase["currency"]) == (
        "T-1", 91.0, "EUR",
    )  # fmt: skip
    # Per-event campaign from collected_traffic_source, not the user's first touch.
    assert (purchase["utm_source"], purchase["utm_medium"], purchase["utm_term"]) == (
        "google", "cpc", "boots",
    )  # fmt: skip
    assert purchase["items"] == [
        {
            "item_id": "SKU-1", "name": "Boots", "category": "Shoes", "brand": "Acme",
            "variant": "42", "price": 80.0, "quantity": 1.0, "position": 2,
        },
        {
            "item_id": "Socks", "name": "Socks", "category": "Apparel", "brand": None,
            "variant": None, "price": 5.5, "quantity": 2.0, "position": None,
        },
    ]  # fmt: skip
    # "(direct)" / "(none)" first-touch placeholders are not campaigns.
    assert events["add_to_cart"]["utm_source"] is None
    assert "invalid event: event_name is missing" in result.log_text


def test_event_ids_are_stable_and_tell_apart_same_microsecond_events(
    export: tuple[Path, str],
) -> None:
    first = run_tap(config(export[1])).event_ids(STREAM)
    again = run_tap(config(export[1])).event_ids(STREAM)
    assert first == again
    assert len(set(first)) == len(first) == 9  # the two "custom Thing" events stay apart


def test_intraday_tables_are_read_only_when_asked_and_never_move_the_bookmark(
    export: tuple[Path, str],
) -> None:
    result = run_tap(config(export[1], include_intraday=True))
    assert len(result.records(STREAM)) == 10
    assert result.records(STREAM)[-1]["event_ts"] == "2024-03-04T07:00:00.000000Z"
    assert result.bookmark(STREAM) == "2024-03-04T00:00:00.000000Z"


def test_interrupted_sync_resumes_at_the_first_unfinished_day_table(
    export: tuple[Path, str],
) -> None:
    path, url = export
    # events_20240302 becomes a view over a table that is gone: reading it fails.
    drop_table(path, "events_20240302")
    con = duckdb.connect(str(path))
    con.execute('CREATE TABLE gone AS SELECT * FROM "events_20240303"')
    con.execute('CREATE VIEW "events_20240302" AS SELECT * FROM gone')
    con.execute("DROP TABLE gone")
    con.close()
    broken = run_tap(config(url, lookback_days=0))
    assert broken.error is not None
    assert {r["event_name"] for r in broken.records(STREAM)} == {
        "page_view", "view_search_results", "scroll", "purchase",
    }  # fmt: skip
    assert broken.bookmark(STREAM) == "2024-03-02T00:00:00.000000Z"

    con = duckdb.connect(str(path))
    con.execute('DROP VIEW "events_20240302"')
    con.close()
    write_tables(path, {"events_20240302": sample_tables()["events_20240302"]})
    resumed = run_tap(config(url, lookback_days=0), state=broken.states[-1])
    assert resumed.error is None
    assert {r["event_ts"][:10] for r in resumed.records(STREAM)} == {"2024-03-02", "2024-03-03"}
    assert resumed.bookmark(STREAM) == "2024-03-04T00:00:00.000000Z"


def test_lookback_rereads_the_last_days(export: tuple[Path, str]) -> None:
    state = {
        "bookmarks": {
            STREAM: {
                "replication_key": "event_ts",
                "replication_key_value": "2024-03-04T00:00:00.000000Z",
            }
        }
    }
    default = run_tap(config(export[1]), state=state)  # lookback_days 3
    assert {r["event_ts"][:10] for r in default.records(STREAM)} == {
        "2024-03-01", "2024-03-02", "2024-03-03",
    }  # fmt: skip
    one = run_tap(config(export[1], lookback_days=1), state=state)
    assert {r["event_ts"][:10] for r in one.records(STREAM)} == {"2024-03-03"}


def test_export_tables_sorts_names() -> None:
    tables = export_tables(
        ["events_20240301", "analytics_1.events_intraday_20240302", "events_2024", "users_x",
         "events_20241341"]
    )  # fmt: skip
    assert [str(d) for d in tables["daily"]] == ["2024-03-01"]
    assert tables["intraday"][next(iter(tables["intraday"]))] == (
        "analytics_1.events_intraday_20240302"
    )
    # Another property's export in the same project is not read.
    other = export_tables(
        ["analytics_1.events_20240301", "analytics_2.events_20240302"], "analytics_1"
    )
    assert [str(d) for d in other["daily"]] == ["2024-03-01"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"string_value": "a", "int_value": None, "float_value": None, "double_value": None}, "a"),
        ({"string_value": None, "int_value": 0, "float_value": None, "double_value": None}, 0),
        ({"string_value": None, "int_value": None, "float_value": 1.5, "double_value": None}, 1.5),
        ({"string_value": None, "int_value": None, "float_value": None, "double_value": 2.5}, 2.5),
        (
            {"string_value": None, "int_value": None, "float_value": None, "double_value": None},
            None,
        ),
    ],
)
def test_param_value_takes_whichever_typed_value_is_set(value: Any, expected: Any) -> None:
    assert param_value(value) == expected


def test_registry_turns_on_the_ga4_streams() -> None:
    cfg = {"ga4": {"export_url": "duckdb:///x.duckdb"}}
    assert active_providers(cfg) == [Provider.GA4]
    tap = TapClickstream(config=cfg, parse_env_config=False)
    assert sorted(tap.streams) == [STREAM]  # no property id: no report streams
    reports = {
        "property_id": "123",
        "api_endpoint": "http://127.0.0.1:1",
        "reports": [{"name": "daily", "metrics": ["eventCount"]}],
    }
    both = TapClickstream(config={"ga4": {**cfg["ga4"], **reports}}, parse_env_config=False)
    assert sorted(both.streams) == [STREAM, "ga4_report_daily"]
    for stream in both.streams.values():
        assert (stream.primary_keys, stream.replication_key) == (["source", "event_id"], "event_ts")


@pytest.mark.parametrize(
    ("ga4", "expected"),
    [
        ({"export_url": "bigquery://proj/analytics_1"}, []),
        ({"include_intraday": True}, ["ga4 needs ga4.export_url (BigQuery export) or"]),
        ({"export_url": "not a url"}, ["ga4.export_url must be a SQLAlchemy URL"]),
        ({"export_url": "duckdb:///x", "lookback_days": -1}, ["ga4.lookback_days must be"]),
    ],
)
def test_ga4_settings_rules(ga4: dict[str, Any], expected: list[str]) -> None:
    errors = validate_config({"ga4": ga4})
    assert len(errors) == len(expected)
    for error, start in zip(errors, expected, strict=True):
        assert error.startswith(start)
