"""The RECORD fast path (typed decoding, no SDK per-record work) against the SDK's path."""

from __future__ import annotations

import gc
import io
import json
import logging
import threading
from typing import Any

import msgspec
import pytest
from singer_sdk.exceptions import InvalidInputLine

from target_personalize.engine import EventStore
from target_personalize.engine.store.columns import EVENT_COLUMNS
from target_personalize.engine.store.typed_records import TypedEvent
from target_personalize.reader import LOADING_GEN0_THRESHOLD
from target_personalize.sinks import EventsSink
from target_personalize.target import TargetPersonalize
from tests.support.events import event
from tests.support.postgres import postgres_schema_url
from tests.target_personalize.test_target import SCHEMA

_COLUMNS = ", ".join(EVENT_COLUMNS)


def _record(record: dict[str, Any]) -> dict[str, Any]:
    return {"type": "RECORD", "stream": "file_events", "record": record}


def _state(n: int) -> dict[str, Any]:
    return {"type": "STATE", "value": {"bookmarks": {"file_events": {"n": n}}}}


def _mixed_messages() -> list[dict[str, Any]]:
    """Plain events, values the store converts, bad records, re-sent keys and states."""
    messages: list[dict[str, Any]] = [SCHEMA]
    messages += [_record(event(n)) for n in range(30)]
    messages += [
        _record(event(30, revenue="12.5", event_count=1.0, user_id=7)),  # converted values
        _record(event(31, properties='{"from": "text"}', filters={"size": ["42", "43"]})),
        _record(event(32, items=[{"item_id": "i1", "price": "9.5", "quantity": 2}])),
        _record(event(33, event_ts="2024-03-01T14:00:00+02:00", ingested_at="")),
        _record(event(34, event_type=None, event_name="Order Completed!")),
        _record(event(35, event_name="", _sdc_extracted_at="2024-03-02T00:00:00Z", extra=1)),
        _record(event(36, event_ts="not a time")),  # rejects from here
        _record(event(37, revenue=True)),
        _record(event(38, items=[{"item_id": "", "price": 1.0}])),
        _record(event(39, event_id=None)),
        _record({k: v for k, v in event(40).items() if k != "event_ts"}),
        _record(event(41, items=[{"item_id": "i2", "position": 1.5}])),
        _record(event(42, filters="not json")),
    ]
    messages.append(_state(43))
    # Re-sent keys: the later version wins, on either path.
    messages += [_record(event(n, page_title=f"v2-{n}")) for n in [10, *range(36, 45)]]
    messages += [_record(event(5, revenue="bad")), _state(45)]
    messages += [_record(event(n)) for n in range(45, 60)]
    messages.append(_state(60))
    return messages


def _load(
    store_url: str,
    messages: list[dict[str, Any]],
    capsys: pytest.CaptureFixture[str],
    *,
    fast: bool,
    config: dict[str, Any] | None = None,
) -> tuple[list[dict[str, Any]], int]:
    """Run the target over ``messages``; return the states it emitted and the fast records."""
    target = TargetPersonalize(
        config={"database_url": store_url, "batch_size_rows": 16, **(config or {})},
        parse_env_config=False,
    )
    taken = 0
    take = target._take_typed_event

    def counting(stream: str, typed: Any, line: int) -> bool:
        nonlocal taken
        accepted = take(stream, typed, line)
        taken += accepted
        return accepted

    target.message_reader.fast_records = counting if fast else None  # type: ignore[attr-defined]
    target.listen(file_input=io.StringIO("".join(json.dumps(m) + "\n" for m in messages)))
    out = capsys.readouterr().out
    return [json.loads(line) for line in out.splitlines() if line.strip()], taken


def _contents(store_url: str) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    with EventStore(store_url) as store:
        rows = store.query(f"SELECT {_COLUMNS} FROM events ORDER BY source, event_id")
        rejects = store.query(
            "SELECT stream, event_key, field, reason, record FROM rejects "
            "ORDER BY event_key, field, reason"
        )

    # JSON columns compared as values (PostgreSQL gives them parsed, DuckDB as text).
    def value(v: Any) -> Any:
        return json.loads(v) if isinstance(v, str) and v[:1] in "{[" else v

    return [tuple(map(value, r)) for r in rows], [tuple(map(value, r)) for r in rejects]


def test_the_fast_path_stores_and_rejects_exactly_what_the_sdk_path_does(
    store_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    messages = _mixed_messages()
    slow_states, slow_taken = _load(store_url, messages, capsys, fast=False)
    slow = _contents(store_url)
    with EventStore(store_url) as store:
        store.query("DELETE FROM events")
        store.query("DELETE FROM rejects")
    fast_states, fast_taken = _load(store_url, messages, capsys, fast=True)
    fast = _contents(store_url)
    assert slow_taken == 0
    # Plain events took the fast path; the others (to convert or reject) the SDK's.
    # 73 lines: 1 SCHEMA, 3 STATE, 11 records to convert (e30-e32) or reject (e36-e42, e5).
    assert fast_taken == len(messages) - 1 - 3 - 11 == 58
    assert fast == slow
    assert fast_states == slow_states
    # Each state once its records are stored (the last is repeated at the end of the pipe).
    assert fast_states[:3] == [_state(n)["value"] for n in (43, 45, 60)]
    rows, rejects = fast
    assert len(rows) == 60  # e36-e42 rejected first, stored when re-sent right
    by_id = {r[1]: dict(zip(EVENT_COLUMNS, r, strict=True)) for r in rows}
    assert by_id["e30"]["revenue"] == 12.5 and by_id["e30"]["user_id"] == "7"
    assert by_id["e34"]["event_type"] == "order_completed"
    assert by_id["e35"]["event_name"] == "product_view"
    assert by_id["e10"]["page_title"] == "v2-10"  # the later version won
    assert by_id["e36"]["page_title"] == "v2-36"
    assert by_id["e5"]["revenue"] is None  # the bad re-send was rejected, the first kept
    assert {(r[1], r[2]) for r in rejects} == {
        ("file/e36", "event_ts"),
        ("file/e37", "revenue"),
        ("file/e38", "items"),
        ("file/None", "event_id"),
        ("file/e40", "event_ts"),
        ("file/e41", "items"),
        ("file/e42", "filters"),
        ("file/e5", "revenue"),
    }
    # The stored reject is the record as sent, less the SDK's metadata fields.
    assert all("_sdc_extracted_at" not in r[4] for r in rejects)


def test_bad_records_mid_stream_are_reported_with_their_line_and_counted(
    tmp_path: Any, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    url = f"duckdb:///{tmp_path / 'store.duckdb'}"
    messages = [SCHEMA] + [_record(event(n)) for n in range(10)]
    messages[4] = _record(event(3, event_ts="yesterday"))  # line 5
    messages[8] = _record(event(7, revenue=[1]))  # line 9
    messages.append(_state(10))
    with caplog.at_level(logging.INFO):
        states, taken = _load(url, messages, capsys, fast=True)
    assert taken == 8
    assert states[0] == _state(10)["value"]
    assert "line 5, key file/e3: event_ts not a timestamp" in caplog.text
    assert "line 9, key file/e7: revenue" in caplog.text
    assert "Loaded 8 records; 2 bad records went to the rejects table" in caplog.text
    with EventStore(url) as store:
        assert store.query("SELECT count(*) FROM events") == [(8,)]
        assert store.query("SELECT count(*) FROM rejects") == [(2,)]


class _StateWatcher(TargetPersonalize):
    """Notes how many events the store holds, committed, whenever a STATE goes out."""

    stored_at_state: list[tuple[int, int]]

    def _write_state_message(self, state: dict[str, Any]) -> None:
        with EventStore(self.config["database_url"]) as reader:
            stored = reader.query("SELECT count(*) FROM events")[0][0]
        self.stored_at_state.append((state["bookmarks"]["file_events"]["n"], int(stored)))
        super()._write_state_message(state)


@pytest.mark.postgres
def test_a_state_goes_out_only_after_the_records_before_it_are_committed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # On PostgreSQL, where a second connection sees committed rows only (DuckDB lets one
    # process hold the file).
    with postgres_schema_url() as store_url:
        stored_at_state = _watch_states(store_url, capsys)
    # (The last state goes out again at the end of the pipe.)
    assert stored_at_state == [(30, 30), (60, 60), (90, 90), (90, 90)]


def _watch_states(store_url: str, capsys: pytest.CaptureFixture[str]) -> list[tuple[int, int]]:
    messages: list[dict[str, Any]] = [SCHEMA]
    for n in range(0, 90, 30):
        messages += [_record(event(k)) for k in range(n, n + 30)]
        messages.append(_state(n + 30))
    target = _StateWatcher(
        config={"database_url": store_url, "batch_size_rows": 1000}, parse_env_config=False
    )
    target.stored_at_state = []
    target.listen(file_input=io.StringIO("".join(json.dumps(m) + "\n" for m in messages)))
    capsys.readouterr()
    return target.stored_at_state


def test_stdin_is_read_as_bytes_and_a_line_not_json_stops_the_load_named(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"duckdb:///{tmp_path / 'store.duckdb'}"
    lines = [json.dumps(m) for m in [SCHEMA, _record(event(1)), _record(event(2, revenue="3"))]]
    target = TargetPersonalize(config={"database_url": url}, parse_env_config=False)
    stdin = io.TextIOWrapper(io.BytesIO(("\n".join(lines) + "\n").encode()))
    target.listen(file_input=stdin)
    with EventStore(url) as store:
        assert store.query("SELECT event_id, revenue FROM events ORDER BY 1") == [
            ("e1", None),
            ("e2", 3.0),
        ]
    broken = io.TextIOWrapper(io.BytesIO(f"{lines[0]}\n{{not json\n".encode()))
    target = TargetPersonalize(config={"database_url": url}, parse_env_config=False)
    with pytest.raises(InvalidInputLine, match=r"as JSON: \{not json"):
        target.listen(file_input=broken)


def test_decoded_events_and_their_items_are_not_tracked_by_the_garbage_collector() -> None:
    line = json.dumps(event(1, items=[{"item_id": "i1", "price": 2.0}])).encode()
    typed = msgspec.json.decode(line, type=TypedEvent)
    assert typed.items[0].item_id == "i1"
    assert not gc.is_tracked(typed)
    assert not gc.is_tracked(typed.items[0])


def test_collections_are_rarer_while_reading_and_restored_after(
    tmp_path: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"duckdb:///{tmp_path / 'store.duckdb'}"
    seen: list[tuple[int, int]] = []
    process_batch = EventsSink.process_batch

    def noting(sink: EventsSink, context: dict[str, Any]) -> None:
        seen.append((gc.get_threshold()[0], gc.get_freeze_count()))
        process_batch(sink, context)

    monkeypatch.setattr(EventsSink, "process_batch", noting)
    before = gc.get_threshold()
    _load(url, [SCHEMA, *(_record(event(n)) for n in range(20)), _state(20)], capsys, fast=True)
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0
    # Drained at the STATE, while reading: setup objects frozen, young collections rarer.
    assert seen[0][0] == LOADING_GEN0_THRESHOLD != before[0]
    assert seen[0][1] > 0


def test_a_lone_sink_is_drained_on_the_reading_thread(
    tmp_path: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"duckdb:///{tmp_path / 'store.duckdb'}"
    threads: set[int] = set()
    process_batch = EventsSink.process_batch

    def noting(sink: EventsSink, context: dict[str, Any]) -> None:
        threads.add(threading.get_ident())
        process_batch(sink, context)

    monkeypatch.setattr(EventsSink, "process_batch", noting)
    messages = [SCHEMA, *(_record(event(n)) for n in range(20)), _state(20)]
    messages += [_record(event(n)) for n in range(20, 30)]  # drained at the end of the pipe
    _load(url, messages, capsys, fast=True)
    assert threads == {threading.get_ident()}
    with EventStore(url) as store:
        assert store.query("SELECT count(*) FROM events") == [(30,)]
