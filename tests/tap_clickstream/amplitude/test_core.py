"""The singer-sdk standard tap tests for ``amplitude_events``, against a local fake export API.

The fake starts when this module is imported (the SDK's test factory discovers streams at
import time and syncs once in a class-scoped fixture). Its answers carry the edge cases the
stream must absorb: a 429 with Retry-After, a 400 "too large" and a 504 that make the stream
split its windows, hours without data (404), several gzipped members per hour, and a malformed
and a truncated line.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from singer_sdk.testing import get_tap_test_class
from singer_sdk.testing.runners import TapTestRunner

from tap_clickstream.tap import TapClickstream
from tests.fakes.amplitude import FakeAmplitude
from tests.tap_clickstream.helpers import FIXTURES, load_jsonl

EVENTS = load_jsonl(FIXTURES / "amplitude" / "events.jsonl")
# Windows of more than 4 hours are "too large" (400); of more than 2, time out (504).
FAKE = FakeAmplitude(EVENTS, files_per_hour=2, max_hours=4, timeout_hours=2)
FAKE.start()
FAKE.fail_next(429, {"Retry-After": "1"})
FAKE.bad_lines = {
    EVENTS[1]["uuid"]: b'{"uuid": "cut-short", "event_type": "Se',
    EVENTS[6]["uuid"]: b"\x00\x01 binary noise",
}

CONFIG = {
    "start_date": "2024-03-01T00:00:00Z",
    "end_date": "2024-03-01T12:00:00Z",
    "amplitude": {
        "api_key": "amp-key",
        "secret_key": "amp-secret",
        "api_url": FAKE.url,
        "window_hours": 8,
    },
}


@pytest.fixture(scope="module", autouse=True)
def _fake_server() -> Iterator[FakeAmplitude]:
    yield FAKE
    FAKE.stop()


class TestTapClickstreamAmplitude(
    get_tap_test_class(TapClickstream, config=CONFIG, parse_env_config=False)
):
    """The standard tests, plus checks on what the fake saw and what the sync emitted."""

    def test_every_event_once_despite_the_edge_cases(self, runner: TapTestRunner) -> None:
        ids = [r["event_id"] for r in runner.records["amplitude_events"]]
        assert sorted(ids) == sorted(e["uuid"] for e in EVENTS)
        statuses = [r["status"] for r in FAKE.requests]
        assert statuses[0] == 429
        assert {400, 504, 404, 200} <= set(statuses)
        # The first 8-hour window was split down to 2-hour requests; 00..03 are empty (404).
        spans = {(r["query"]["start"], r["query"]["end"]) for r in FAKE.requests}
        assert ("20240301T00", "20240301T07") in spans
        assert ("20240301T00", "20240301T01") in spans

    def test_final_bookmark_is_the_end_of_the_last_window(self, runner: TapTestRunner) -> None:
        final = runner.state_messages[-1]["value"]["bookmarks"]["amplitude_events"]
        assert final["replication_key"] == "ingested_at"
        assert final["replication_key_value"] == "2024-03-01T12:00:00.000000Z"
