"""target-personalize fed Singer messages: RECORD and BATCH paths, rejects, STATE after commit."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tap_clickstream.events import EVENT_SCHEMA
from target_personalize.engine import EventStore
from target_personalize.target import TargetPersonalize
from tests.support.events import event

SCHEMA = {
    "type": "SCHEMA",
    "stream": "file_events",
    "schema": EVENT_SCHEMA,
    "key_properties": ["source", "event_id"],
}


def _run(
    config: dict[str, Any], messages: list[dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> list[dict[str, Any]]:
    target = TargetPersonalize(config=config, parse_env_config=False)
    target.listen(file_input=io.StringIO("".join(json.dumps(m) + "\n" for m in messages)))
    out = capsys.readouterr().out
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def _record(record: dict[str, Any]) -> dict[str, Any]:
    return {"type": "RECORD", "stream": "file_events", "record": record}


def test_records_are_stored_and_the_state_is_emitted_after_them(
    store_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    messages = [SCHEMA]
    messages += [_record(event(n)) for n in range(25)]
    messages += [{"type": "STATE", "value": {"bookmarks": {"file_events": {"n": 25}}}}]
    messages += [_record(event(n)) for n in range(20, 40)]  # lookback overlap
    messages += [{"type": "STATE", "value": {"bookmarks": {"file_events": {"n": 40}}}}]
    states = _run({"database_url": store_url, "batch_size_rows": 10}, messages, capsys)
    assert states[-1] == {"bookmarks": {"file_events": {"n": 40}}}
    with EventStore(store_url) as store:
        assert store.query("SELECT count(*), count(DISTINCT event_id) FROM events") == [(40, 40)]


def test_bad_records_are_rejected_counted_and_the_load_goes_on(
    store_url: str, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    messages = [
        SCHEMA,
        _record(event(1)),
        _record(event(2, event_ts="not a time")),
        _record({k: v for k, v in event(3).items() if k != "event_ts"}),
        _record(event(4)),
    ]
    _run({"database_url": store_url}, messages, capsys)
    with EventStore(store_url) as store:
        assert [r[0] for r in store.query("SELECT event_id FROM events ORDER BY event_id")] == [
            "e1",
            "e4",
        ]
        rejects = store.query("SELECT stream, event_key, field FROM rejects ORDER BY event_key")
    assert rejects == [
        ("file_events", "file/e2", "event_ts"),
        ("file_events", "file/e3", "event_ts"),
    ]
    assert "2 bad records went to the rejects table" in caplog.text
    assert "key file/e2: event_ts" in caplog.text


def test_a_stream_without_the_canonical_fields_is_named_when_it_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    properties = {k: v for k, v in EVENT_SCHEMA["properties"].items() if k != "event_ts"}
    schema = {
        **SCHEMA,
        "stream": "odd_events",
        "schema": {**EVENT_SCHEMA, "properties": properties},
    }
    _run({"database_url": f"duckdb:///{tmp_path / 'store.duckdb'}"}, [schema], capsys)
    assert "Stream odd_events does not carry the canonical event (no event_ts)" in caplog.text
    assert "Stream file_events" not in caplog.text


def _jsonl_batch(path: Path, records: list[dict[str, Any]]) -> None:
    with gzip.open(path, "wt") as handle:
        for record in records:
            handle.write(json.dumps(record) + "\n")


def _parquet_batch(path: Path, records: list[dict[str, Any]]) -> None:
    flat = [
        {
            **r,
            **{
                k: json.dumps(r.get(k)) if r.get(k) is not None else None
                for k in ("properties", "filters")
            },
        }
        for r in records
    ]
    columns = sorted(set().union(*flat))
    pq.write_table(pa.Table.from_pydict({c: [r.get(c) for r in flat] for c in columns}), path)


@pytest.mark.parametrize("file_format", ["jsonl", "parquet"])
def test_batch_files_are_loaded_in_bulk_with_rejects(
    store_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], file_format: str
) -> None:
    first = [event(n) for n in range(0, 300)]
    second = [event(n) for n in range(250, 500)] + [
        event(900, event_ts="garbage"),
        event(901, revenue="lots"),
    ]
    writer = _jsonl_batch if file_format == "jsonl" else _parquet_batch
    files = []
    for i, records in enumerate([first, second]):
        path = tmp_path / f"batch-{i}.{file_format}"
        writer(path, records)
        files.append(path.as_uri())
    encoding = {"format": file_format, "compression": "gzip" if file_format == "jsonl" else "none"}
    messages = [
        SCHEMA,
        {"type": "BATCH", "stream": "file_events", "encoding": encoding, "manifest": files},
        {"type": "STATE", "value": {"bookmarks": {"file_events": {"done": True}}}},
    ]
    states = _run({"database_url": store_url}, messages, capsys)
    assert states[-1]["bookmarks"]["file_events"] == {"done": True}
    with EventStore(store_url) as store:
        assert store.query("SELECT count(*), count(DISTINCT event_id) FROM events") == [(500, 500)]
        rejects = store.query("SELECT event_key, field FROM rejects ORDER BY event_key")
        assert rejects == [("file/e900", "event_ts"), ("file/e901", "revenue")]
        row = store.query(
            "SELECT user_id, session_id, event_count, is_aggregate FROM events WHERE event_id = 'e7'"
        )
        assert row == [("u2", "s2", 1, False)]
        assert store.summary().items == 7
        prices = store.query(
            "SELECT event_id, revenue FROM events WHERE event_id IN ('e1', 'e2') ORDER BY event_id"
        )
        assert prices == [("e1", None), ("e2", None)]
