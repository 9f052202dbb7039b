"""Journal replay can never be wedged by one record (the issue's 280 MB event, scaled down)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from target_personalize.engine import EventStore
from target_personalize.engine.store import backends
from target_personalize.serve import ServeSettings
from target_personalize.serve.journal import Journal
from target_personalize.serve.service import ServingState
from tests.serve.conftest import seed_store


def event(number: int, note: str = "") -> dict[str, object]:
    return {
        "source": "api",
        "event_id": f"j-{number}",
        "event_name": "product_view",
        "event_type": "product_view",
        "event_ts": "2024-05-02T10:00:00",
        "session_id": "s-journal",
        "items": [{"item_id": "a"}],
        "properties": {"note": note} if note else {},
    }


def test_a_poison_record_goes_to_rejects_and_the_rest_replays(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A 280 MB event under DuckDB's 256 MB load bound made every restart fail ("could not
    # allocate block"); here 24 MB under a 16 MB bound. On top: a line that is JSON but not
    # an object, one that is not JSON, and a torn last line (a crash mid-write).
    monkeypatch.setattr(backends, "LOAD_MEMORY_LIMIT", "16MB")
    url = seed_store(tmp_path / "store.duckdb")
    journal_dir = tmp_path / "journal"
    journal_dir.mkdir()
    huge = json.dumps(event(2, "x" * (24 << 20))).encode()
    lines = [
        json.dumps(event(1)).encode(),
        huge,
        b"[1, 2]",
        b"{not json",
        json.dumps(event(3)).encode(),
    ]
    (journal_dir / "events.0.jsonl").write_bytes(b"\n".join(lines) + b"\n" + b'{"source": "ap')
    # The default max_event_bytes (256 KiB) lets replay take lines up to 1 MiB.
    settings = ServeSettings(database_url=url, ack="journal", journal_dir=str(journal_dir))
    state = ServingState(settings)  # replays at start; this raised
    state.close()
    with EventStore(url) as store:
        ids = {row[0] for row in store.query("SELECT event_id FROM events WHERE source = 'api'")}
        rejects = store.query("SELECT event_key, reason, record FROM rejects ORDER BY event_key")
    assert ids == {"j-1", "j-3"}
    reasons = {key: reason for key, reason, _ in rejects}
    assert reasons == {
        "rejected-events.0.jsonl, line 2": "journal line over 1048576 bytes (max_event_bytes)",
        "rejected-events.0.jsonl, line 3": "not a JSON object",
        "rejected-events.0.jsonl, line 4": reasons["rejected-events.0.jsonl, line 4"],
    }
    assert reasons["rejected-events.0.jsonl, line 4"].startswith("not JSON: ")
    huge_reject = json.loads(rejects[0][2])
    assert huge_reject["bytes"] == len(huge)
    assert len(huge_reject["head"]) <= 2048
    # The poison lines are kept whole beside the journal; the segment itself is gone.
    kept = (journal_dir / "rejected-events.0.jsonl").read_bytes().split(b"\n")
    assert kept[:3] == [huge, b"[1, 2]", b"{not json"]
    assert "events.0.jsonl" not in {path.name for path in journal_dir.glob("*")}


def test_replay_reads_in_chunks_and_sets_long_lines_aside(tmp_path: Path) -> None:
    journal = Journal(tmp_path, "events")
    good = [json.dumps(event(n)).encode() for n in range(50)]
    long = json.dumps(event(99, "y" * 5000)).encode()
    (tmp_path / "events.0.jsonl").write_bytes(b"\n".join([*good[:25], long, *good[25:]]) + b"\n")
    journal = Journal(tmp_path, "events")  # a new run: segment 0 is a leftover
    chunks = list(journal.leftovers_of(0, max_record_bytes=1000, chunk_bytes=700))
    assert len(chunks) > 10  # read 700 bytes at a time
    records = [record["event_id"] for _, found, _ in chunks for record in found]
    assert records == [f"j-{n}" for n in range(50)]
    poison = [item for _, _, found in chunks for item in found]
    assert [(item.line, item.size) for item in poison] == [(26, len(long))]
    assert journal.rejected_path(0).read_bytes() == long + b"\n"


def test_a_record_the_database_cannot_take_is_set_aside_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Within the replay's line limit, but over DuckDB's memory bound: loaded one by one, the
    # record at fault goes to rejects (and whole to the rejected file), the others are stored.
    monkeypatch.setattr(backends, "LOAD_MEMORY_LIMIT", "16MB")
    url = seed_store(tmp_path / "store.duckdb")
    journal_dir = tmp_path / "journal"
    journal_dir.mkdir()
    lines = [event(1), event(2, "x" * (24 << 20)), event(3)]
    (journal_dir / "events.0.jsonl").write_bytes(
        b"".join(json.dumps(line).encode() + b"\n" for line in lines)
    )
    settings = ServeSettings(
        database_url=url, ack="journal", journal_dir=str(journal_dir), max_event_bytes=64 << 20
    )
    ServingState(settings).close()
    with EventStore(url) as store:
        ids = {row[0] for row in store.query("SELECT event_id FROM events WHERE source = 'api'")}
        ((key, reason),) = store.query("SELECT event_key, reason FROM rejects")
    assert ids == {"j-1", "j-3"}
    assert key == "api:j-2"
    assert "OutOfMemoryException" in reason
    kept = json.loads((journal_dir / "rejected-events.0.jsonl").read_bytes())
    assert kept["event_id"] == "j-2"
    assert len(kept["properties"]["note"]) == 24 << 20
