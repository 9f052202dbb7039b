"""Batch files bigger than a chunk: loaded chunk by chunk, exactly as in one piece."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from target_personalize.engine import EventStore, LoadResult
from target_personalize.engine.store.columns import EVENT_COLUMNS
from tests.support.events import event

_COLUMNS = ", ".join(EVENT_COLUMNS)


def _records() -> list[dict[str, Any]]:
    """31 rows: 27 events, two of them re-sent (the later version wins), and two rejects."""
    records = [event(n) for n in range(20)]
    records.append(event(3, page_title="v2"))  # re-sent, chunks after the first version
    records.append(event(21, event_ts="not a time"))
    records.append(event(23, event_id=None))
    records += [event(n) for n in range(24, 30)]
    records.append(event(0, page_title="v2"))
    records.append(event(30, page_title="last"))
    # Every record has every field (Parquet columns come from the first).
    return [{"page_title": "v1", **r} for r in records]


def _write(tmp_path: Path, file_format: str, gzipped: bool) -> list[str]:
    """The records in two files (the second holds the last ten)."""
    records = _records()
    paths = []
    for number, part in enumerate((records[:-10], records[-10:])):
        if file_format == "parquet":
            path = tmp_path / f"batch-{number}.parquet"
            flat = [{**r, "properties": json.dumps(r["properties"])} for r in part]
            pq.write_table(pa.Table.from_pylist(flat), path, row_group_size=4)
        else:
            path = tmp_path / f"batch-{number}.jsonl{'.gz' if gzipped else ''}"
            text = "".join(json.dumps(r) + "\n" for r in part).encode()
            path.write_bytes(gzip.compress(text) if gzipped else text)
        paths.append(str(path))
    return paths


def _contents(store: EventStore) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    events = store.query(f"SELECT {_COLUMNS} FROM events ORDER BY source, event_id")
    rejects = store.query("SELECT stream, event_key, field, reason, record FROM rejects ORDER BY 2")
    return events, rejects


def _summary(result: LoadResult) -> tuple[int, list[tuple[str, str, str]]]:
    return result.loaded, [(r.event_key, r.field, r.reason) for r in result.rejects]


@pytest.mark.parametrize(
    ("file_format", "gzipped", "small"),
    [
        ("parquet", False, {"chunk_rows": 7}),
        ("jsonl", False, {"chunk_bytes": 1500}),
        ("jsonl", True, {"chunk_bytes": 1500}),
    ],
)
def test_files_bigger_than_a_chunk_load_once_as_an_unchunked_load_does(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    file_format: Any,
    gzipped: bool,
    small: dict[str, int],
) -> None:
    paths = _write(tmp_path, file_format, gzipped)
    chunks: list[int] = []
    load_chunk = EventStore._load_chunk_in_duckdb

    def counting(store: EventStore, pieces: Any, *args: Any) -> Any:
        chunks.append(len(pieces))
        return load_chunk(store, pieces, *args)

    monkeypatch.setattr(EventStore, "_load_chunk_in_duckdb", counting)
    with EventStore(f"duckdb:///{tmp_path / 'whole.duckdb'}") as store:
        whole = store.load_event_files(paths, file_format, gzipped=gzipped)
        whole_contents = _contents(store)
    assert len(chunks) == 1
    chunks.clear()
    with EventStore(f"duckdb:///{tmp_path / 'chunked.duckdb'}") as store:
        chunked = store.load_event_files(paths, file_format, gzipped=gzipped, **small)
        chunked_contents = _contents(store)
    # Several chunks, each within its bound (a 500-byte line or 7 rows per chunk).
    assert len(chunks) >= 4
    assert _summary(chunked) == _summary(whole)
    assert chunked_contents == whole_contents
    events, rejects = chunked_contents
    assert chunked.loaded == 29  # every good row counts, re-sent ones too
    assert [r[1:3] for r in rejects] == [("file/None", "event_id"), ("file/e21", "event_ts")]
    by_id = {row[1]: dict(zip(EVENT_COLUMNS, row, strict=True)) for row in events}
    assert len(events) == len(by_id) == 27  # e0-e19, e24-e30
    assert by_id["e0"]["page_title"] == by_id["e3"]["page_title"] == "v2"  # later wins
    assert by_id["e30"]["page_title"] == "last"


def test_a_load_again_replaces_the_events_it_stored(tmp_path: Path) -> None:
    paths = _write(tmp_path, "parquet", False)
    with EventStore(f"duckdb:///{tmp_path / 'store.duckdb'}") as store:
        first = store.load_event_files(paths, "parquet", chunk_rows=5)
        contents = store.query(f"SELECT {_COLUMNS} FROM events ORDER BY event_id")
        again = store.load_event_files(paths, "parquet", chunk_rows=5)
        assert store.query(f"SELECT {_COLUMNS} FROM events ORDER BY event_id") == contents
        assert first.loaded == again.loaded == 29
        assert store.query("SELECT count(*) FROM rejects") == [(4,)]
