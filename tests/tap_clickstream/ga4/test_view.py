"""The GA4 canonical view over DuckDB tables in the export's nested layout.

Its rows must be what the tap extracts from the same day tables, field by field for every
column the view computes (ids aside: the view hashes them with MD5, the tap with BLAKE2b).
"""

from __future__ import annotations

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
from tests.tap_clickstream.ga4.export_db import sample_tables, write_tables
from tests.tap_clickstream.helpers import run_tap

DAYS = ("events_20240301", "events_20240302", "events_20240303")
COMPARED = (
    "event_name", "event_type", "event_ts", "ingested_at", "user_id", "anonymous_id",
    "session_id", "page_url", "page_path", "page_title", "referrer", "utm_source",
    "utm_medium", "utm_campaign", "utm_term", "utm_content", "search_query", "order_id",
    "revenue", "currency", "engagement_ms", "scroll_depth_pct", "media_progress_pct",
    "event_count", "is_aggregate", "device_category", "os", "browser", "country", "region",
    "city",
)  # fmt: skip


def _plain(field: str, value: Any) -> Any:
    if isinstance(value, datetime):
        return value.replace(tzinfo=None)
    if field in {"event_ts", "ingested_at"} and isinstance(value, str):
        return parse_ts(value).replace(tzinfo=None)
    if field in {"revenue", "engagement_ms", "scroll_depth_pct", "media_progress_pct"}:
        return None if value is None else float(value)
    return value


def _rows(events: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return sorted(
        (tuple(_plain(f, e[f]) for f in COMPARED) for e in events),
        key=lambda row: tuple(str(v) for v in row),
    )


def test_view_on_the_export_matches_the_tap(tmp_path: Path) -> None:
    path = tmp_path / "export.duckdb"
    url = write_tables(path, {day: sample_tables()[day] for day in DAYS})
    result = run_tap(
        {"start_date": "2024-03-01T00:00:00Z", "end_date": "2024-03-04T00:00:00Z",
         "ga4": {"export_url": url}}
    )  # fmt: skip
    assert result.error is None
    expected = list(result.by_id("ga4_events").values())

    con = duckdb.connect(str(path))
    try:
        # Outside BigQuery there is no wildcard table: a view over the day tables stands in.
        con.execute("CREATE VIEW all_days AS " + " UNION ALL ".join(f"FROM {d}" for d in DAYS))
        con.execute(emit_view("ga4", "duckdb", events="all_days", view="canonical"))
        cursor = con.execute("SELECT * FROM canonical")
        names = [d[0] for d in cursor.description]
        found = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    finally:
        con.close()
    assert names == [*EVENT_COLUMNS, "loaded_at"]
    assert len({row["event_id"] for row in found}) == len(found) == len(expected) == 9
    assert _rows(found) == _rows(expected)


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
