"""``file_events`` in BATCH mode: files converted column by column, the same events as RECORD.

The RECORD path (RowMapper, row by row) is the definition; BATCH mode converts whole chunks in
DuckDB and hands to RowMapper only the rows it cannot be sure of. These tests load both into
a store and compare what is stored, and check the STATE a BATCH sync writes.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import math
import shutil
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tap_clickstream.sources.files import columnar
from target_personalize.engine import EventStore
from target_personalize.target import TargetPersonalize
from tests.tap_clickstream.helpers import FIXTURES, SyncResult, run_tap

STREAM = "file_events"
T0 = 1_709_280_000  # 2024-03-01T08:00:00Z


def batch_config(config: dict[str, Any], root: Path, batch_size: int = 1_000) -> dict[str, Any]:
    root.mkdir(exist_ok=True)
    return {
        **config,
        "batch_config": {
            "encoding": {"format": "parquet", "compression": "none"},
            "storage": {"root": root.as_uri(), "prefix": "b-"},
            "batch_size": batch_size,
        },
    }


def load(messages: list[dict[str, Any]], database: Path) -> list[dict[str, Any]]:
    """Feed a sync's messages to target-personalize; return the stored events, by key."""
    url = f"duckdb:///{database}"
    target = TargetPersonalize(config={"database_url": url}, parse_env_config=False)
    lines = "".join(json.dumps(m) + "\n" for m in messages if m["type"] != "STATE")
    with io.StringIO(lines) as source:
        target.listen(file_input=source)
    with EventStore(url) as store:
        rows = store.query("SELECT * EXCLUDE (loaded_at) FROM events ORDER BY source, event_id")
        names = [row[0] for row in store.query("DESCRIBE events") if row[0] != "loaded_at"]
        assert store.query("SELECT count(*) FROM rejects") == [(0,)]
    events = []
    for row in rows:
        event = dict(zip(names, row, strict=True))
        for name in ("filters", "properties", "user_properties"):
            if event[name] is not None:
                event[name] = json.loads(event[name])
        events.append(event)
    return events


def skipped(result: SyncResult) -> list[str]:
    return sorted(line for line in result.logs if line.startswith("Skipped a malformed record"))


def record_and_batch(
    config: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[SyncResult, SyncResult, int]:
    """Sync in both modes; also count the events BATCH mode converted in SQL."""
    converted = [0]
    finish = columnar.FileConverter._finish

    def counting(self: columnar.FileConverter, fast: pa.Table) -> pa.Table:
        converted[0] += len(fast)
        return finish(self, fast)

    monkeypatch.setattr(columnar.FileConverter, "_finish", counting)
    record = run_tap(config)
    batch = run_tap(batch_config(config, tmp_path / "batches", batch_size=700))
    assert record.error is None
    assert batch.error is None
    assert [m["type"] for m in batch.messages if m["type"] == "RECORD"] == []
    assert any(m["type"] == "BATCH" for m in batch.messages)
    return record, batch, converted[0]


def test_bundled_sample_stores_the_same_events_in_both_modes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A mapped CSV with a truncated last row and repeated rows.
    record, batch, in_sql = record_and_batch({}, tmp_path, monkeypatch)
    assert in_sql > 17_000
    assert skipped(record) == skipped(batch)
    recorded = load(record.messages, tmp_path / "record.duckdb")
    batched = load(batch.messages, tmp_path / "batch.duckdb")
    capsys.readouterr()
    assert len(recorded) == 17_429
    assert batched == recorded


def _jsonl_rows() -> list[str]:
    rows: list[Any] = []
    for n in range(400):
        row: dict[str, Any] = {
            "event_id": f"j-{n % 370}",  # repeats
            "event_name": ["Product Viewed", "Product Added", "Order Completed", "scroll"][n % 4],
            "event_ts": (f"2024-03-01T{n % 24:02d}:{n % 60:02d}:00.{n:06d}Z" if n % 5 else T0 + n),
            "user_id": f"u{n % 9}" if n % 7 else n,
            "items": [{"item_id": f"sku-{n % 13}", "price": 1.5 + n % 4, "quantity": 1}],
            "properties": {"ab": "b" if n % 2 else "a", "n": n},
        }
        if n % 11 == 0:
            row["revenue"] = 12.5
            row["currency"] = "EUR"
        if n % 17 == 0:
            row["campaign"] = "spring"  # an unmapped key: goes to properties
        if n % 19 == 0:
            row["engagement_ms"] = "4200"  # text where a number is wanted
        if n % 23 == 0:
            del row["event_id"]  # a stable id is hashed
            row["properties"] = {}
        rows.append(row)
    lines = [json.dumps(row) for row in rows]
    lines[5] = '{"event_name": "cut", "event_ts": "2024-03-01T00:0'  # malformed
    lines[6] = json.dumps({"event_name": "no_time"})
    lines[7] = json.dumps({"event_name": "x", "event_ts": "yesterday"})
    lines[8] = '{"event_name": "x", "event_ts": "2024-03-01T00:00:00Z", "revenue": NaN}'
    lines[9] = '{"event_name": "x", "event_ts": "2024-03-01T00:00:00Z",}'
    lines[10] = ""
    return lines


def test_jsonl_and_parquet_store_the_same_events_in_both_modes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Small blocks: lines cut at block boundaries, chunks converted one after another.
    monkeypatch.setattr(columnar, "CHUNK_BYTES", 9_000)
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.jsonl").write_text("\n".join(_jsonl_rows()) + "\n")
    with gzip.open(data / "b.jsonl.gz", "wt") as handle:
        handle.write("\n".join(_jsonl_rows()[::-1]))
    pq.write_table(
        pa.table(
            {
                "event_id": [f"p-{n % 40}" if n % 9 else None for n in range(60)],
                "event_name": ["Product Viewed", "cart", None, "view"] * 15,
                "event_ts": pa.array([T0 * 1_000_000 + n for n in range(60)], pa.timestamp("us")),
                "revenue": [float("nan") if n % 10 == 0 else n / 4 for n in range(60)],
                "campaign": ["spring", None, "summer"] * 20,
            }
        ),
        data / "c.parquet",
    )
    config = {"files": {"paths": [str(data / "*")]}, "event_map": {"cart": "add_to_cart"}}
    record, batch, in_sql = record_and_batch(config, tmp_path, monkeypatch)
    assert in_sql > 600
    assert skipped(record) == skipped(batch)
    assert len(skipped(record)) > 10
    recorded = load(record.messages, tmp_path / "record.duckdb")
    batched = load(batch.messages, tmp_path / "batch.duckdb")
    capsys.readouterr()
    assert len(recorded) > 400
    assert batched == recorded
    # NaN travels as null in both modes.
    assert not any(isinstance(e["revenue"], float) and math.isnan(e["revenue"]) for e in batched)


def test_batch_state_names_a_file_once_its_events_are_in_a_batch(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    first = Path(shutil.copy(FIXTURES / "files" / "canonical.jsonl", data / "a.jsonl"))
    second = data / "b.jsonl"
    second.write_text(
        "".join(
            json.dumps({"event_name": "view", "event_ts": T0 + n, "event_id": f"b{n}"}) + "\n"
            for n in range(5)
        )
    )
    config = batch_config({"files": {"paths": [str(data / "*.jsonl")]}}, tmp_path / "b", 4)
    result = run_tap(config)
    assert result.error is None
    kinds = [m["type"] for m in result.messages]
    assert kinds.count("BATCH") == 2  # 3 + 5 events, 4 a file
    # The STATE after the first BATCH (a.jsonl's 3 events and one of b.jsonl's) names a.jsonl
    # only; the last names both, with their content hashes.
    after_first = result.messages[kinds.index("BATCH") + 1]["value"]["bookmarks"][STREAM]
    assert list(after_first["files"]) == [str(first)]
    files = result.states[-1]["bookmarks"][STREAM]["files"]
    assert sorted(files) == [str(first), str(second)]
    for path in (first, second):
        assert files[str(path)]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    again = run_tap(config, state=result.states[-1])
    assert [m for m in again.messages if m["type"] == "BATCH"] == []


def test_batch_file_damaged_midway_gives_the_rows_before_as_record_mode(tmp_path: Path) -> None:
    lines = "".join(
        json.dumps({"event_name": "view", "event_ts": T0 + n, "event_id": f"g{n}"}) + "\n"
        for n in range(2_000)
    )
    whole = gzip.compress(lines.encode())
    (tmp_path / "d.jsonl.gz").write_bytes(whole[: len(whole) // 2])
    config = {"files": {"paths": [str(tmp_path / "d.jsonl.gz")]}}
    record = run_tap(config)
    batch = run_tap(batch_config(config, tmp_path / "b"))
    ids = [m["record"]["event_id"] for m in record.messages if m["type"] == "RECORD"]
    assert 0 < len(ids) < 2_000
    tables = [
        pq.read_table(url.removeprefix("file://"))
        for m in batch.messages
        if m["type"] == "BATCH"
        for url in m["manifest"]
    ]
    assert [i for t in tables for i in t.column("event_id").to_pylist()] == ids
    for result in (record, batch):
        assert any("d.jsonl.gz: unreadable file" in line for line in result.logs)
        assert "files" not in result.states[-1]["bookmarks"][STREAM]
