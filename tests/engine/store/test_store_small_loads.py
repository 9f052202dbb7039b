"""Loads with tracked keys (DuckDB, as the server stores events): still exactly once."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from target_personalize.engine import EventStore
from target_personalize.engine.store.keys import KeyFilter
from tests.support.events import event


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EventStore]:
    store = EventStore(f"duckdb:///{tmp_path / 'store.duckdb'}")
    yield store
    store.close()


def _counts(store: EventStore) -> tuple[int, int]:
    total, distinct = store.query(
        "SELECT count(*), count(DISTINCT (source, event_id)) FROM events"
    )[0]
    return int(total), int(distinct)


def test_events_stored_before_tracking_are_replaced_not_repeated(store: EventStore) -> None:
    store.load_events([event(n) for n in range(100)])
    store.track_keys()
    for n in (3, 50, 99):
        store.load_events([event(n, page_title="resent")])
    store.load_events([event(n) for n in range(100, 105)])
    assert _counts(store) == (105, 105)
    titles = store.query("SELECT event_id FROM events WHERE page_title = 'resent' ORDER BY 1")
    assert titles == [("e3",), ("e50",), ("e99",)]


def test_a_key_twice_in_a_small_batch_keeps_the_last_version(store: EventStore) -> None:
    store.track_keys()
    result = store.load_events([event(1, page_title="a"), event(2), event(1, page_title="b")])
    assert result.loaded == 3
    assert _counts(store) == (2, 2)
    assert store.query("SELECT page_title FROM events WHERE event_id = 'e1'") == [("b",)]


def test_events_resent_one_by_one_are_stored_once(store: EventStore) -> None:
    store.track_keys()
    for _ in range(3):
        for n in range(20):
            store.load_events([event(n)])
            store.load_events([event(n, source="mixpanel")])  # same id, other source
    assert _counts(store) == (40, 40)


def test_big_loads_and_file_loads_keep_the_filter_right(
    store: EventStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[str] = []

    class Recording:
        """The DuckDB connection, noting each statement it is sent."""

        def __init__(self, connection: Any) -> None:
            self.connection = connection

        def execute(self, sql: str, *args: Any) -> Any:
            sent.append(sql)
            return self.connection.execute(sql, *args)

        def __getattr__(self, name: str) -> Any:
            return getattr(self.connection, name)

    monkeypatch.setattr(store.backend, "connection", Recording(store.backend.connection))
    store.track_keys()
    store.load_events([event(1)])  # builds the filter
    big = [event(n) for n in range(10, 3_010)]
    store.load_events(big)
    store.load_events([*big[:5], event(4000)])  # re-sent with a new one: replaced by key
    # A tracked store never sets DuckDB's memory limit (it binds every connection).
    assert not [sql for sql in sent if "memory_limit" in sql]
    path = tmp_path / "batch.jsonl"
    path.write_text("".join(json.dumps(event(n)) + "\n" for n in range(5000, 5010)))
    store.load_event_files([str(path)], "jsonl")
    store.load_events([event(10, page_title="again"), event(5005, page_title="again")])
    assert _counts(store) == (1 + len(big) + 1 + 10, 1 + len(big) + 1 + 10)
    assert store.query("SELECT count(*) FROM events WHERE page_title = 'again'") == [(2,)]


def test_bad_records_of_a_small_load_go_to_rejects(store: EventStore) -> None:
    store.track_keys()
    result = store.load_events([event(1), event(2, event_ts="not a time")])
    assert (result.loaded, result.rejected) == (1, 1)
    assert store.query("SELECT event_key, field FROM rejects") == [("file/e2", "event_ts")]
    assert _counts(store) == (1, 1)


def test_the_key_filter_knows_added_hashes_before_and_after_merging() -> None:
    rng = np.random.default_rng(7)
    stored = rng.integers(0, 2**63, size=1000, dtype=np.uint64)
    keys = KeyFilter(stored)
    assert keys.any_of(stored[[5]])
    fresh = stored.max() + np.arange(1, 4, dtype=np.uint64)
    assert not keys.any_of(fresh)
    keys.add(fresh[:1])
    assert keys.any_of(fresh[:1]) and not keys.any_of(fresh[1:])
    # Enough additions to be merged into the sorted array.
    many = stored.max() + np.arange(10, 10 + 70_000, dtype=np.uint64)
    keys.add(many)
    assert keys.any_of(many[[-1]]) and keys.any_of(fresh[:1]) and keys.any_of(stored[[0]])
    assert not keys.any_of(fresh[1:])
    assert len(keys) == 1000 + 1 + 70_000
