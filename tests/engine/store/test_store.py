"""The event store on DuckDB and PostgreSQL: idempotent loads, latest versions, rejects."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from target_personalize.engine import (
    EVENT_COLUMNS,
    EventStore,
    UnsupportedDatabaseError,
    coerce_event,
)
from tests.support.events import event


def _rows(store: EventStore) -> list[tuple[str, str]]:
    return store.query("SELECT source, event_id FROM events ORDER BY event_id")


def test_loading_the_same_events_twice_adds_nothing(store_url: str) -> None:
    records = [event(n) for n in range(50)]
    with EventStore(store_url) as store:
        store.load_events(records)
        store.load_events(records)
        assert store.query("SELECT count(*), count(DISTINCT event_id) FROM events") == [(50, 50)]


def test_overlapping_windows_store_each_event_once(store_url: str) -> None:
    with EventStore(store_url) as store:
        store.load_events([event(n) for n in range(0, 30)])
        store.load_events([event(n) for n in range(20, 60)])  # a lookback re-read of 20..29
        assert len(_rows(store)) == 60
        assert store.summary().events == 60


def test_a_later_version_replaces_the_earlier_one(store_url: str) -> None:
    with EventStore(store_url) as store:
        store.load_events([event(1, page_title="first"), event(2)])
        # Same key twice in one batch, then again later: the last one read wins.
        store.load_events([event(1, page_title="second"), event(1, page_title="third")])
        titles = store.query("SELECT page_title FROM events WHERE event_id = %s", ["e1"])
        assert titles == [("third",)]
        assert len(_rows(store)) == 2


def test_same_event_id_from_two_sources_are_two_events(store_url: str) -> None:
    with EventStore(store_url) as store:
        store.load_events([event(1), event(1, source="mixpanel")])
        assert store.query("SELECT count(*) FROM events") == [(2,)]


@pytest.mark.parametrize(
    ("bad", "field", "reason"),
    [
        ({"event_ts": None}, "event_ts", "is missing"),
        ({"event_ts": "yesterday-ish"}, "event_ts", "timestamp"),
        ({"revenue": "lots"}, "revenue", "could not convert"),
        ({"items": [{"price": 3}]}, "items", "no item_id"),
        ({"items": "not a list"}, "items", ""),
        ({"properties": 7}, "properties", "expected an object"),
        ({"event_id": None}, "event_id", "is missing"),
    ],
)
def test_bad_records_go_to_rejects_and_the_rest_loads(
    store_url: str, bad: dict[str, object], field: str, reason: str
) -> None:
    with EventStore(store_url) as store:
        result = store.load_events([event(1), event(2, **bad), event(3)], stream="file_events")
        assert result.loaded == 2
        assert [(r.field, r.stream) for r in result.rejects] == [(field, "file_events")]
        assert reason in result.rejects[0].reason
        assert [r[1] for r in _rows(store)] == ["e1", "e3"]
        stored = store.query("SELECT stream, field, reason, record FROM rejects")
        assert len(stored) == 1
        assert stored[0][:2] == ("file_events", field)
        record = stored[0][3]
        record = json.loads(record) if isinstance(record, str) else record
        assert record["properties"] == event(2, **bad)["properties"]


@pytest.mark.parametrize("tracked", [False, True])
def test_rows_checked_already_are_stored_as_their_events_would_be(
    store_url: str, tracked: bool
) -> None:
    records = [event(1), event(2, revenue="3.5"), event(1, page_title="later")]
    query = f"SELECT {', '.join(EVENT_COLUMNS)} FROM events ORDER BY source, event_id"
    with EventStore(store_url) as store:
        store.load_events(records)
        expected = store.query(query)
        store.query("DELETE FROM events")
        if tracked:
            store.track_keys()
        result = store.load_rows([coerce_event(r) for r in records])
        assert (result.loaded, result.rejects) == (3, [])
        assert store.query(query) == expected
        assert [row[11] for row in expected] == ["later", None]  # the later version won


def test_values_are_stored_with_their_types(store_url: str) -> None:
    record = event(
        4,
        event_ts="2024-03-01T14:00:00+02:00",
        revenue="12.5",
        items=[{"item_id": 42, "price": 3, "quantity": 2, "position": 1}],
        filters={"color": "red"},
    )
    with EventStore(store_url) as store:
        store.load_events([record])
        ts, revenue, count, aggregate = store.query(
            "SELECT event_ts, revenue, event_count, is_aggregate FROM events"
        )[0]
        assert ts == datetime(2024, 3, 1, 12, 0)  # stored as naive UTC
        assert revenue == 12.5
        assert (count, aggregate) == (1, False)
        assert store.summary().items == 1


def test_event_type_defaults_to_the_snake_case_name(store_url: str) -> None:
    with EventStore(store_url) as store:
        store.load_events([event(1, event_type=None, event_name="Video Started")])
        assert store.query("SELECT event_type FROM events") == [("video_started",)]


def test_items_catalog_upserts_by_item_id(store_url: str) -> None:
    with EventStore(store_url) as store:
        store.load_items([{"item_id": "a", "price": 10, "cost": 6}, {"item_id": "b", "price": 5}])
        result = store.load_items(
            [{"item_id": "a", "price": 11, "colour": "red"}, {"title": "no id"}]
        )
        assert result.loaded == 1
        assert result.rejects[0].field == "item_id"
        rows = store.query("SELECT item_id, price FROM items ORDER BY item_id")
        assert rows == [("a", 11.0), ("b", 5.0)]


def test_empty_catalog_fields_keep_what_an_earlier_row_said(store_url: str) -> None:
    """Issue 13: a row with empty fields overwrote an earlier filled one."""
    with EventStore(store_url) as store:
        store.load_items([{"item_id": "a", "brand": "acme", "price": 10, "category": "shoes"}])
        store.load_items(
            [
                {"item_id": "a", "brand": "", "price": None, "title": "Runner"},
                {"item_id": "b", "price": 5, "brand": "zed"},
                {"item_id": "b", "price": "", "brand": "  ", "margin": 2},
            ]
        )
        rows = store.query(
            "SELECT item_id, title, category, brand, price, margin FROM items ORDER BY item_id"
        )
        assert rows == [
            ("a", "Runner", "shoes", "acme", 10.0, None),
            ("b", None, None, "zed", 5.0, 2.0),
        ]


def test_item_properties_may_be_json_text_and_bad_ones_are_rejects(store_url: str) -> None:
    with EventStore(store_url) as store:
        result = store.load_items(
            [
                {"item_id": "a", "properties": '{"colour": "red"}', "size": "M"},
                {"item_id": "b", "properties": "{not json"},
                {"item_id": "c", "properties": "[1, 2]"},
            ]
        )
        assert result.loaded == 1
        assert [(r.event_key, r.field) for r in result.rejects] == [
            ("b", "properties"),
            ("c", "properties"),
        ]
        assert "expected an object" in result.rejects[1].reason
        (properties,) = store.query("SELECT properties FROM items WHERE item_id = 'a'")[0]
        loaded = json.loads(properties) if isinstance(properties, str) else properties
        assert loaded == {"colour": "red", "size": "M"}


def test_nul_characters_are_kept_or_replaced_never_a_failed_load(store_url: str) -> None:
    # Bot traffic sends NUL bytes; PostgreSQL text and JSONB cannot hold them.
    records = [
        event(1, page_title="a\x00b", properties={"ua": "x\x00y"}),
        event(2, items=[{"item_id": "i\x001", "name": "n\x00"}]),
        event(3, revenue="lots", page_title="bad\x00"),  # a reject holding a NUL too
        event(4),
    ]
    with EventStore(store_url) as store:
        result = store.load_events(records)
        assert (result.loaded, result.rejected) == (3, 1)
        title, properties = store.query(
            "SELECT page_title, properties FROM events WHERE event_id = 'e1'"
        )[0]
        stored = json.loads(properties) if isinstance(properties, str) else properties
        (reject,) = store.query("SELECT event_key, field FROM rejects")
        items = store.query("SELECT items FROM events WHERE event_id = 'e2'")[0][0]
    kept = "\x00" if store_url.startswith("duckdb") else "\ufffd"
    assert title == f"a{kept}b" and stored == {"ua": f"x{kept}y"}
    item = (json.loads(items) if isinstance(items, str) else items)[0]
    assert (item["item_id"], item["name"]) == (f"i{kept}1", f"n{kept}")
    assert reject == ("file/e3", "revenue")


def test_summary_counts_users_sessions_items_and_span(store_url: str) -> None:
    with EventStore(store_url) as store:
        store.load_events([event(n) for n in range(20)])
        summary = store.summary()
        assert (summary.events, summary.users, summary.sessions, summary.items) == (20, 5, 5, 7)
        assert summary.first_event == datetime(2024, 3, 1, 12, 0)
        assert summary.last_event == datetime(2024, 3, 1, 12, 19)
        assert summary.as_dict()["events_by_source_type"] == [
            {"source": "file", "event_type": "product_view", "events": 20}
        ]


def test_an_unsupported_database_url_says_which_urls_work() -> None:
    with pytest.raises(UnsupportedDatabaseError, match="duckdb:///FILE"):
        EventStore("mysql://root@127.0.0.1/test")


@pytest.mark.parametrize("file_format", ["parquet", "jsonl"])
def test_batch_files_are_checked_as_records_are(tmp_path: Path, file_format: str) -> None:
    # Text columns typed as coerce_event types them: a naive time is UTC, whatever the
    # machine's time zone; a count must be a whole number (2.5 is refused, not rounded); an
    # empty name counts as missing; an item needs a non-empty item_id.
    records = [
        event(1, event_ts="2024-03-01 12:00:00", event_count="3.0"),
        event(2, event_count="2.5"),
        event(3, event_name="", event_type=""),
        event(4, items=[{"item_id": "", "price": 1.0}]),
        event(5, event_ts="2024-03-01T12:00:00+02:00"),
    ]
    path = tmp_path / f"batch.{file_format}"
    if file_format == "parquet":
        flat = [{**r, "properties": json.dumps(r["properties"])} for r in records]
        pq.write_table(pa.Table.from_pylist(flat), path)
    else:
        path.write_text("".join(json.dumps(r) + "\n" for r in records))
    with EventStore(f"duckdb:///{tmp_path / 'store.duckdb'}") as store:
        result = store.load_event_files([str(path)], file_format, gzipped=False)
        via_records = EventStore(f"duckdb:///{tmp_path / 'records.duckdb'}")
        expected = via_records.load_events(records)
        assert result.loaded == expected.loaded == 2
        assert sorted((r.event_key, r.field) for r in result.rejects) == sorted(
            (r.event_key, r.field) for r in expected.rejects
        )
        rows = "SELECT event_id, event_ts, event_count FROM events ORDER BY event_id"
        assert (
            store.query(rows)
            == via_records.query(rows)
            == [
                ("e1", datetime(2024, 3, 1, 12, 0), 3),
                ("e5", datetime(2024, 3, 1, 10, 0), 1),
            ]
        )
        via_records.close()
