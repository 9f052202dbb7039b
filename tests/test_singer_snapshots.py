"""Golden outputs: each source's Singer stream for its fixture, both plugins' ``--about``, and
what the target stores from a hostile Singer input.

The snapshots live in ``tests/snapshots/test_singer_snapshots/<test>/``. A change that alters
them on purpose is reviewed as a diff: refresh them with
``pytest tests/test_singer_snapshots.py --snapshot-update`` and commit the result. "Now" is
frozen (``time-machine``), so extraction times and bookmarks are the same on every run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import time_machine
from pytest_snapshot.plugin import Snapshot

from target_personalize.engine import EventStore
from tests.fakes.amplitude import FakeAmplitude
from tests.fakes.mixpanel import FakeMixpanel
from tests.tap_clickstream.helpers import CSV_MAPPING, FIXTURES, load_jsonl, run_tap

NOW = datetime(2024, 3, 10, 12, 0, tzinfo=UTC)
BIN = Path(sys.executable).parent


@pytest.fixture(autouse=True)
def _frozen_now() -> Iterator[None]:
    with time_machine.travel(NOW, tick=False):
        yield


def _singer(messages: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(m, sort_keys=True, ensure_ascii=False) + "\n" for m in messages)


def _synced(config: dict[str, Any]) -> str:
    result = run_tap(config)
    assert result.error is None, result.error
    return _singer(result.messages)


def test_mixpanel_sync(snapshot: Snapshot) -> None:
    events = load_jsonl(FIXTURES / "mixpanel" / "export.jsonl")
    with FakeMixpanel(events, today=NOW.date()) as fake:
        config = {
            "start_date": "2024-03-01T00:00:00Z",
            "end_date": "2024-03-04T12:00:00Z",
            "mixpanel": {
                "project_id": "1234567",
                "username": "svc-user",
                "secret": "svc-secret",
                "api_url": fake.url,
                "window_days": 2,
                "lookback_days": 0,
            },
        }
        snapshot.assert_match(_synced(config), "singer.jsonl")


def test_amplitude_sync(snapshot: Snapshot) -> None:
    events = load_jsonl(FIXTURES / "amplitude" / "events.jsonl")
    with FakeAmplitude(events) as fake:
        config = {
            "start_date": "2024-03-01T04:00:00Z",
            "end_date": "2024-03-01T12:00:00Z",
            "amplitude": {
                "api_key": "amp-key",
                "secret_key": "amp-secret",
                "api_url": fake.url,
                "window_hours": 24,
                "lookback_hours": 0,
            },
        }
        snapshot.assert_match(_synced(config), "singer.jsonl")


def test_csv_file_sync(snapshot: Snapshot, tmp_path: Path) -> None:
    path = shutil.copy(FIXTURES / "files" / "mapped.csv", tmp_path / "mapped.csv")
    os.utime(path, (NOW.timestamp(), NOW.timestamp()))  # a file's events are ingested at its mtime
    config = {
        "event_map": {"basket": "add_to_cart", "Wishlisted": "add_to_wishlist"},
        "files": {
            "paths": [str(path)],
            "mapping": CSV_MAPPING,
        },
    }
    # The file's path is in the records (properties) and in the state: name it the same way.
    synced = _synced(config).replace(str(tmp_path), "<tmp>")
    snapshot.assert_match(synced, "singer.jsonl")


@pytest.mark.parametrize("plugin", ["tap-clickstream", "target-personalize"])
def test_about_markdown(snapshot: Snapshot, plugin: str) -> None:
    about = subprocess.run(
        [str(BIN / plugin), "--about", "--format=markdown"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    snapshot.assert_match(about, "about.md")


def test_target_stores_a_hostile_input(snapshot: Snapshot, tmp_path: Path) -> None:
    """Odd stream names, injection-looking and non-ASCII text, repeated and late events, bad
    values: stored as given, each event once (the later copy wins), bad records rejected."""
    store = tmp_path / "store.duckdb"
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"database_url": f"duckdb:///{store}"}))
    done = subprocess.run(
        [str(BIN / "target-personalize"), "--config", str(config)],
        stdin=(FIXTURES / "singer" / "hostile.singer").open("rb"),
        capture_output=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    with EventStore(f"duckdb:///{store}") as result:
        events = result.query(
            "SELECT event_id, event_type, event_ts, page_title, search_query, items, properties "
            "FROM events ORDER BY event_id"
        )
        rejects = result.query(
            "SELECT stream, event_key, field, reason FROM rejects ORDER BY event_key"
        )
    lines = [done.stdout.decode()]
    lines += [json.dumps(list(row), default=str, ensure_ascii=False) + "\n" for row in events]
    lines += [json.dumps(list(row), ensure_ascii=False) + "\n" for row in rejects]
    snapshot.assert_match("".join(lines), "stored.jsonl")
