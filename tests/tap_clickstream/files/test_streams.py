"""``file_events``: JSONL, CSV and Parquet, canonical or mapped, read again only when changed."""

from __future__ import annotations

import gzip
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tap_clickstream.events import stable_event_id
from tap_clickstream.samples import SAMPLE_PATH
from tests.tap_clickstream.helpers import CSV_MAPPING, FIXTURES, load_jsonl, run_tap

STREAM = "file_events"


def files_config(*paths: Path | str, **files: Any) -> dict[str, Any]:
    return {"files": {"paths": [str(p) for p in paths], **files}}


def test_bundled_sample_and_its_truncated_last_row() -> None:
    result = run_tap({})
    assert result.error is None
    records = result.records(STREAM)
    assert len(records) == 17_429  # 17,434 complete rows, 5 exact repeats emitted once
    assert sum(r["event_type"] == "purchase" for r in records) == 214
    assert records[-1]["event_ts"] == "2019-10-01T02:50:00.000000Z"
    skipped = [line for line in result.logs if line.startswith("Skipped a malformed record")]
    assert skipped == [
        "Skipped a malformed record in file_events, rees46-2019-Oct-head-sample.csv, "
        "line 17436: truncated row: 8 of 9 fields"
    ]
    assert (
        "Stream file_events emitted 17429 events and skipped 1 malformed records "
        "(truncated row: 1), 5 repeated events emitted once"
    ) in result.logs
    assert str(SAMPLE_PATH.resolve()) in result.states[-1]["bookmarks"][STREAM]["files"]


def test_canonical_jsonl_passes_through(tmp_path: Path) -> None:
    path = shutil.copy(FIXTURES / "files" / "canonical.jsonl", tmp_path / "events.jsonl")
    result = run_tap(files_config(path))
    assert result.error is None
    records = result.records(STREAM)
    assert [r["event_name"] for r in records] == ["page_view", "Product Viewed", "purchase"]
    first, second, third = records
    assert first["event_id"] == "f-1"
    assert (first["page_url"], first["page_path"]) == ("https://shop.example/", "/")
    assert (first["device_category"], first["country"]) == ("desktop", "DE")
    assert first["source"] == "file"
    assert second["event_type"] == "product_view"  # no event_type: the crosswalk decides
    assert second["event_ts"] == "2024-03-01T09:01:00.500000Z"
    assert second["items"] == [
        {"item_id": "sku-1", "name": "Lamp", "price": 24.99, "quantity": 1.0, "position": 3}
    ]
    assert second["engagement_ms"] == 4200.0
    assert second["properties"] == {"campaign_group": "b"}  # unknown keys are kept
    assert third["event_ts"] == "2024-03-01T09:02:00.000000Z"  # epoch seconds
    assert (third["order_id"], third["revenue"], third["currency"]) == ("o-1", 24.99, "EUR")
    assert third["properties"] == {"coupon": "SPRING"}
    # No event_id in the row: a stable hash, the same on every read.
    assert len(third["event_id"]) == 32
    again = run_tap(files_config(path)).records(STREAM)
    assert again[2]["event_id"] == third["event_id"]
    # ingested_at is when the file was last written.
    assert first["ingested_at"] is not None


def test_csv_mapped_with_files_mapping_and_event_map(tmp_path: Path) -> None:
    path = shutil.copy(FIXTURES / "files" / "mapped.csv", tmp_path / "mapped.csv")
    cfg = files_config(path, mapping=CSV_MAPPING)
    cfg["event_map"] = {"basket": "add_to_cart", "Wishlisted": "add_to_wishlist"}
    result = run_tap(cfg)
    assert result.error is None
    records = result.records(STREAM)
    assert [r["event_type"] for r in records] == [
        "product_view",  # "detail": built-in crosswalk
        "add_to_cart",  # "basket": event_map
        "purchase",  # "Order Completed": built-in crosswalk
        "add_to_wishlist",  # "Wishlisted": event_map
    ]
    first = records[0]
    assert first["event_ts"] == "2024-03-02T10:00:00.000000Z"
    assert (first["anonymous_id"], first["page_path"], first["device_category"]) == (
        "v-1",
        "/p/sku-5",
        "mobile",
    )
    assert first["items"] == [{"item_id": "sku-5", "category": "kitchen", "price": 12.0}]
    assert first["properties"] == {}  # every column was mapped
    expected_id = stable_event_id(
        "file", "detail", "2024-03-02T10:00:00.000000Z", None, "v-1", None, "sku-5"
    )
    assert first["event_id"] == expected_id


def test_parquet_and_gzipped_jsonl_by_glob(tmp_path: Path) -> None:
    rows = load_jsonl(FIXTURES / "files" / "canonical.jsonl")
    nested = tmp_path / "exports" / "2024" / "03"
    nested.mkdir(parents=True)
    table = pa.Table.from_pylist(
        [
            {
                "event_id": r.get("event_id"),
                "event_name": r["event_name"],
                "event_ts": str(r["event_ts"]),
            }
            for r in rows
        ]
    )
    pq.write_table(table, nested / "events.parquet")
    with gzip.open(nested / "more.jsonl.gz", "wt") as handle:
        handle.write(
            json.dumps(
                {"event_id": "gz-1", "event_name": "scroll", "event_ts": "2024-03-05T00:00:00Z"}
            )
            + "\n"
        )
    (nested / "notes.txt").write_text("not events")
    result = run_tap(files_config(tmp_path / "exports" / "**" / "*.*"))
    assert result.error is None
    records = result.records(STREAM)
    # Files in path order (events.parquet, more.jsonl.gz), rows in file order.
    assert [r["event_id"] for r in records[:2]] + [r["event_id"] for r in records[3:]] == [
        "f-1",
        "f-2",
        "gz-1",
    ]
    assert {r["event_name"] for r in records} == {
        "scroll",
        "page_view",
        "Product Viewed",
        "purchase",
    }
    assert {r["event_type"] for r in records if r["event_name"] == "scroll"} == {"engagement"}
    assert "notes.txt: unknown format" in result.log_text


def test_unchanged_file_is_skipped_and_changed_file_read_again(tmp_path: Path) -> None:
    path = Path(shutil.copy(FIXTURES / "files" / "canonical.jsonl", tmp_path / "events.jsonl"))
    first = run_tap(files_config(path))
    assert len(first.records(STREAM)) == 3
    state = first.states[-1]

    second = run_tap(files_config(path), state=state)
    assert second.records(STREAM) == []
    assert any("read before and unchanged" in line for line in second.logs)

    # Touched, same content: skipped, and remembered with its new time.
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    third = run_tap(files_config(path), state=second.states[-1])
    assert third.records(STREAM) == []
    assert any("content is unchanged" in line for line in third.logs)
    remembered = third.states[-1]["bookmarks"][STREAM]["files"][str(path.resolve())]
    assert remembered["mtime_ns"] == path.stat().st_mtime_ns

    # Changed: read again whole; the event ids of rows read before are the same.
    with path.open("a") as handle:
        handle.write(
            json.dumps({"event_name": "search", "event_ts": "2024-03-01T10:00:00Z"}) + "\n"
        )
    fourth = run_tap(files_config(path), state=third.states[-1])
    assert len(fourth.records(STREAM)) == 4
    assert fourth.event_ids()[:3] == first.event_ids()
    fifth = run_tap(files_config(path), state=fourth.states[-1])
    assert fifth.records(STREAM) == []


def test_bad_rows_and_unreadable_files_are_counted_not_fatal(tmp_path: Path) -> None:
    good = tmp_path / "a.jsonl"
    good.write_text(
        "\n".join(
            [
                json.dumps({"event_name": "page_view", "event_ts": "2024-03-01T00:00:00Z"}),
                '{"event_name": "cut", "event_ts": "2024-03-01T00:0',
                json.dumps({"event_name": "no_time"}),
                json.dumps({"event_ts": "2024-03-01T00:00:00Z"}),
                json.dumps({"event_name": "x", "event_ts": "yesterday"}),
                "[1, 2]",
                json.dumps({"event_name": "add_to_cart", "event_ts": "2024-03-01T00:01:00Z"}),
            ]
        )
        + "\n"
    )
    (tmp_path / "b.jsonl.gz").write_bytes(gzip.compress(b'{"event_name": "x"}\n')[:-8])
    (tmp_path / "c.csv").write_text("event_ts,event_name\n2024-03-01 00:02:00,purchase\n")
    result = run_tap(files_config(tmp_path / "*"))
    assert result.error is None
    assert [r["event_name"] for r in result.records(STREAM)] == [
        "page_view",
        "add_to_cart",
        "purchase",
    ]
    skipped = [line for line in result.logs if line.startswith("Skipped a malformed record")]
    assert skipped[0].startswith(
        "Skipped a malformed record in file_events, a.jsonl, line 2: malformed JSON: "
    )
    assert skipped[1:5] == [
        "Skipped a malformed record in file_events, a.jsonl, line 3: invalid event: event_ts is missing",
        "Skipped a malformed record in file_events, a.jsonl, line 4: invalid event: "
        "event_name (or event_type) is missing",
        "Skipped a malformed record in file_events, a.jsonl, line 5: invalid event: "
        "event_ts does not parse: not a timestamp: 'yesterday'",
        "Skipped a malformed record in file_events, a.jsonl, line 6: malformed JSON: not an object",
    ]
    assert any(
        line.startswith("Skipped a malformed record in file_events, b.jsonl.gz: unreadable file")
        for line in skipped
    )
    # The damaged file is not remembered, so the next sync tries it again.
    files = result.states[-1]["bookmarks"][STREAM]["files"]
    assert sorted(Path(p).name for p in files) == ["a.jsonl", "c.csv"]


@pytest.mark.parametrize("delimiter", [";", "\t"])
def test_csv_delimiters(tmp_path: Path, delimiter: str) -> None:
    name = "e.tsv" if delimiter == "\t" else "e.csv"
    path = tmp_path / name
    path.write_text(f"event_ts{delimiter}event_name\n2024-03-01T00:00:00Z{delimiter}search\n")
    cfg = files_config(path, csv_delimiter=";")
    records = run_tap(cfg).records(STREAM)
    assert [(r["event_type"], r["event_ts"]) for r in records] == [
        ("search", "2024-03-01T00:00:00.000000Z")
    ]


def test_stream_maps_still_apply_to_records(tmp_path: Path) -> None:
    # Records skip the SDK's conformance walk; a configured stream map still transforms them.
    path = shutil.copy(FIXTURES / "files" / "canonical.jsonl", tmp_path / "events.jsonl")
    config = files_config(path)
    config["stream_maps"] = {STREAM: {"page_url": None, "event_label": "event_name.upper()"}}
    records = run_tap(config).records(STREAM)
    assert [r["event_label"] for r in records] == ["PAGE_VIEW", "PRODUCT VIEWED", "PURCHASE"]
    assert all("page_url" not in r for r in records)


@pytest.mark.parametrize("mode", ["record", "batch"])
def test_a_corrupt_gzip_is_skipped_named_and_counted(tmp_path: Path, mode: str) -> None:
    # A gzip header followed by deflate data that does not decode raises zlib.error, which
    # once stopped the sync: exit 1, no records, no STATE, the file unnamed.
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.jsonl.gz").write_bytes(b"\x1f\x8b\x08\x00" + b"garbage" * 10)
    with gzip.open(data / "b.jsonl.gz", "wt") as handle:
        handle.write(json.dumps({"event_name": "scroll", "event_ts": "2024-03-05T00:00:00Z"}))
    config = files_config(data / "*.jsonl.gz")
    if mode == "batch":
        (tmp_path / "batches").mkdir()
        config["batch_config"] = {
            "encoding": {"format": "parquet", "compression": "none"},
            "storage": {"root": (tmp_path / "batches").as_uri()},
        }
    result = run_tap(config)
    assert result.error is None
    if mode == "record":
        assert [r["event_name"] for r in result.records(STREAM)] == ["scroll"]
    else:
        assert any(m["type"] == "BATCH" for m in result.messages)
    assert any(
        line.startswith("Skipped a malformed record in file_events, a.jsonl.gz: unreadable file")
        for line in result.logs
    )
    files = result.states[-1]["bookmarks"][STREAM]["files"]
    assert [Path(p).name for p in files] == ["b.jsonl.gz"]
