"""The GA4 canonical view over DuckDB tables in the export's nested layout.

Its rows must be what the tap extracts from the same day tables, field by field for every
column the view computes (ids aside: the view hashes them with MD5, the tap with BLAKE2b;
see test_view_ids_are_md5_of_the_documented_fields).
"""

from __future__ import annotations

import hashlib
import json
import typing as t
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest
import sqlglot
from click.testing import CliRunner

from tap_clickstream.events import EVENT_COLUMNS, parse_ts
from tap_clickstream.views import emit_view
from target_personalize.commands.funnel import funnel
from target_personalize.engine import EventStore
from tests.tap_clickstream.ga4.export_db import event, micros, sample_tables, write_tables
from tests.tap_clickstream.helpers import run_tap

DAYS = ("events_20240301", "events_20240302", "events_20240303")
COMPARED = (
    "event_name", "event_type", "event_ts", "ingested_at", "user_id", "anonymous_id",
    "session_id", "page_url", "page_path", "page_title", "referrer", "utm_source",
    "utm_medium", "utm_campaign", "utm_term", "utm_content", "search_query", "order_id",
    "revenue", "currency", "engagement_ms", "scroll_depth_pct", "media_progress_pct",
    "event_count", "is_aggregate", "device_category", "os", "browser", "country", "region",
    "city", "items", "experiment_id", "variant_id", "rec_id",
)  # fmt: skip


def _plain(field: str, value: Any) -> Any:
    if isinstance(value, datetime):
        return value.replace(tzinfo=None)
    if field in {"event_ts", "ingested_at"} and isinstance(value, str):
        return parse_ts(value).replace(tzinfo=None)
    if field in {"revenue", "engagement_ms", "scroll_depth_pct", "media_progress_pct"}:
        return None if value is None else float(value)
    if field == "items" and isinstance(value, str):  # the view's JSON text
        return json.loads(value)
    return value


def _rows(events: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return sorted(
        (tuple(_plain(f, e[f]) for f in COMPARED) for e in events),
        key=lambda row: tuple(str(v) for v in row),
    )


def _tap_and_view(
    path: Path,
    tables: dict[str, list[dict[str, Any]]],
    event_map: dict[str, str] | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[str]]:
    """What the tap extracts from the day tables, and the view's rows and column names."""
    url = write_tables(path, tables)
    result = run_tap(
        {"start_date": "2024-03-01T00:00:00Z", "end_date": "2024-03-06T00:00:00Z",
         "ga4": {"export_url": url}, "event_map": event_map or {}}
    )  # fmt: skip
    assert result.error is None
    con = duckdb.connect(str(path))
    try:
        # Outside BigQuery there is no wildcard table: a view over the day tables stands in.
        con.execute("CREATE VIEW all_days AS " + " UNION ALL ".join(f"FROM {d}" for d in tables))
        con.execute(
            emit_view("ga4", "duckdb", events="all_days", view="canonical", event_map=event_map)
        )
        cursor = con.execute("SELECT * FROM canonical")
        names = [d[0] for d in cursor.description]
        found = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    finally:
        con.close()
    return list(result.by_id("ga4_events").values()), found, names


def test_view_on_the_export_matches_the_tap(tmp_path: Path) -> None:
    expected, found, names = _tap_and_view(
        tmp_path / "export.duckdb", {day: sample_tables()[day] for day in DAYS}
    )
    assert names == [*EVENT_COLUMNS, "loaded_at"]
    assert len({row["event_id"] for row in found}) == len(found) == len(expected) == 9
    assert _rows(found) == _rows(expected)
    purchase = next(json.loads(row["items"]) for row in found if row["event_name"] == "purchase")
    assert [item["item_id"] for item in purchase] == ["SKU-1", "Socks"]  # not an empty list


#: Exposures, a rec_id, a product's ``variant`` off an exposure, the shop's own names.
EXPERIMENT_DAY = [
    event("experiment_viewed", micros(2024, 3, 4, 9), pseudo="p4", session=4004,
          params={"experiment_id": "exp-1", "variation_id": 2, "experiment_name": "Hero"}),
    event("Saw Test", micros(2024, 3, 4, 9, 1), pseudo="p4", session=4004,
          params={"experiment_id": "", "experiment_name": "homepage", "variant": "B"}),
    event("select_item", micros(2024, 3, 4, 9, 2), pseudo="p4", session=4004,
          params={"rec_id": "r-9", "variant": "red"},
          items=[
              {"item_id": "SKU-5", "item_name": "Scarf", "item_brand": "(not set)",
               "item_variant": "red", "item_category": "Acc", "price": 12.0, "quantity": 3,
               "item_revenue": None, "item_list_index": "4"},
              {"item_id": "(not set)", "item_name": None, "item_brand": None,
               "item_variant": None, "item_category": None, "price": 1.0, "quantity": 1,
               "item_revenue": None, "item_list_index": None},
          ]),
    event("Order Done", micros(2024, 3, 4, 9, 3), pseudo="p4", session=4004,
          params={"recommendation_id": "r-9", "transaction_id": "T-9", "value": 36.0}),
    event("experiment started", micros(2024, 3, 4, 9, 4), pseudo="p4", session=4004,
          params={"Experiment name": "checkout", "Variant name": "fast"}),
]  # fmt: skip
EVENT_MAP = {"Saw Test": "experiment_exposure", "order done": "purchase"}


def test_view_reads_experiments_items_and_the_event_map_as_the_tap(tmp_path: Path) -> None:
    tables = {**{day: sample_tables()[day] for day in DAYS}, "events_20240304": EXPERIMENT_DAY}
    expected, found, _ = _tap_and_view(tmp_path / "export.duckdb", tables, EVENT_MAP)
    assert len(found) == len(expected) == 14
    assert _rows(found) == _rows(expected)
    by_name = {row["event_name"]: row for row in found}
    fields = ("event_type", "experiment_id", "variant_id", "rec_id")
    assert {name: tuple(by_name[name][f] for f in fields) for name in by_name if
            name in {e["event_name"] for e in EXPERIMENT_DAY}} == {
        "experiment_viewed": ("experiment_exposure", "exp-1", "2", None),
        "Saw Test": ("experiment_exposure", "homepage", "B", None),
        "select_item": ("product_view", None, None, "r-9"),
        "Order Done": ("purchase", None, None, "r-9"),
        "experiment started": ("experiment_exposure", "checkout", "fast", None),
    }  # fmt: skip
    assert json.loads(by_name["select_item"]["items"]) == [
        {"item_id": "SKU-5", "name": "Scarf", "category": "Acc", "brand": None,
         "variant": "red", "price": 12.0, "quantity": 3.0, "position": 4},
    ]  # fmt: skip


def test_bigquery_statement_reads_the_wildcard_table() -> None:
    ddl = emit_view("ga4", "bigquery", events="proj.analytics_123.events_*")
    assert "FROM `proj.analytics_123.events_*` AS e" in ddl
    statement = sqlglot.parse_one(ddl.rstrip().rstrip(";"), read="bigquery")
    assert [c.alias_or_name for c in statement.expression.expressions] == [
        *EVENT_COLUMNS,
        "loaded_at",
    ]
    assert "UNNEST(e.event_params)" in ddl


def test_ga4_view_only_where_the_export_lives() -> None:
    with pytest.raises(ValueError, match="the GA4 export lives in BigQuery"):
        emit_view("ga4", "snowflake")


@pytest.mark.parametrize(
    "options",
    [("--min-share", "0.1"), ("--steps", "page_view,search", "--window", "none")],
    ids=["discovered", "explicit"],
)
def test_funnel_of_the_view_equals_the_loaded_store(
    tmp_path: Path, options: tuple[str, ...]
) -> None:
    path = tmp_path / "export.duckdb"
    url = write_tables(path, {day: sample_tables()[day] for day in DAYS})
    result = run_tap(
        {"start_date": "2024-03-01T00:00:00Z", "end_date": "2024-03-04T00:00:00Z",
         "ga4": {"export_url": url}}
    )  # fmt: skip
    store_url = f"duckdb:///{tmp_path / 'store.duckdb'}"
    with EventStore(store_url) as store:
        store.load_events(result.by_id("ga4_events").values())
    con = duckdb.connect(str(path))
    try:
        con.execute("CREATE VIEW all_days AS " + " UNION ALL ".join(f"FROM {d}" for d in DAYS))
        con.execute(emit_view("ga4", "duckdb", events="all_days", view="canonical"))
    finally:
        con.close()
    common = ("--conversion", "purchase", *options, "--format", "json")
    in_place = _funnel("--database-url", url, "--events-table", "canonical", *common)
    assert in_place == _funnel("--database-url", store_url, *common)
    assert in_place.get("units", in_place.get("entered"))  # not an empty funnel


def _funnel(*args: str) -> dict[str, Any]:
    outcome = CliRunner().invoke(funnel, list(args), catch_exceptions=False)
    assert outcome.exit_code == 0, outcome.output
    return t.cast("dict[str, Any]", json.loads(outcome.output))


def test_view_ids_are_md5_of_the_documented_fields(tmp_path: Path) -> None:
    """The view's id of an event is not the tap's: a store takes events from one of them."""
    day = {"events_20240301": sample_tables()["events_20240301"]}
    expected, found, _ = _tap_and_view(tmp_path / "export.duckdb", day)
    row = day["events_20240301"][0]  # the page view, which has the batch_* fields
    parts = [
        row["stream_id"], row["user_pseudo_id"], row["event_timestamp"], row["event_name"],
        1001, row["event_bundle_sequence_id"], row["batch_page_id"], row["batch_ordering_id"],
        row["batch_event_index"], "",
    ]  # fmt: skip
    known = hashlib.md5("\x1f".join(map(str, parts)).encode()).hexdigest()
    page_view = next(r for r in found if r["event_name"] == "page_view")
    tapped = next(e for e in expected if e["event_name"] == "page_view")
    assert page_view["event_id"] == known
    assert tapped["event_id"] != known
    # Stable and distinct, but never one of the tap's: the same event twice in a store.
    assert len({r["event_id"] for r in found}) == len(found) == len(expected)
    assert not {r["event_id"] for r in found} & {e["event_id"] for e in expected}
