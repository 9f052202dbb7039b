"""The singer-sdk standard tap tests for ``mixpanel_events``, against a local fake export API.

The fake starts when this module is imported: the SDK's test factory instantiates the tap and
discovers its streams at import time, and syncs once in a class-scoped fixture. Its responses
carry the edge cases the stream must absorb: a 429 with Retry-After and a 503 before the first
answer, one-day windows (one of them empty), bodies large enough to be gzipped, and a truncated
and a malformed line.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import pytest
from singer_sdk.testing import get_tap_test_class
from singer_sdk.testing.runners import TapTestRunner

from tap_clickstream.tap import TapClickstream
from tests.fakes.mixpanel import FakeMixpanel
from tests.tap_clickstream.helpers import FIXTURES, load_jsonl

EVENTS = load_jsonl(FIXTURES / "mixpanel" / "export.jsonl")
FAKE = FakeMixpanel(EVENTS, today=date(2024, 3, 10))
FAKE.start()
FAKE.fail_next(429, {"Retry-After": "1"}, b'{"error": "rate limit exceeded"}')
FAKE.fail_next(503, {"Retry-After": "1"})
FAKE.bad_lines = {1: b'{"event": "Product Viewed", "properties": {"time": 17', 3: b"<html>oops"}

CONFIG = {
    "start_date": "2024-03-01T00:00:00Z",
    "end_date": "2024-03-04T00:00:00Z",
    "mixpanel": {
        "project_id": "1234567",
        "username": "svc-user",
        "secret": "svc-secret",
        "api_url": FAKE.url,
        "window_days": 1,
    },
}


@pytest.fixture(scope="module", autouse=True)
def _fake_server() -> Iterator[FakeMixpanel]:
    yield FAKE
    FAKE.stop()


class TestTapClickstreamMixpanel(
    get_tap_test_class(TapClickstream, config=CONFIG, parse_env_config=False)
):
    """The standard tests, plus checks on what the fake saw and what the sync emitted."""

    def test_every_event_once_despite_the_edge_cases(self, runner: TapTestRunner) -> None:
        records = runner.records["mixpanel_events"]
        ids = [r["event_id"] for r in records]
        expected = {
            e["properties"]["$insert_id"] for e in EVENTS if "$insert_id" in e["properties"]
        }
        assert len(ids) == len(set(ids)) == len(EVENTS)
        assert expected < set(ids)
        assert {r["event_name"] for r in records} == {e["event"] for e in EVENTS}
        # The sync's requests: throttled and failed, then retried; one per day, the empty
        # 2024-03-03 included.
        sync = [r for r in FAKE.requests if r["query"].get("to_date") == "2024-03-04"]
        assert sync, "the last window was never requested"
        statuses = [r["status"] for r in FAKE.requests]
        assert statuses[:2] == [429, 503]
        assert all(r["headers"]["Accept-Encoding"].startswith("gzip") for r in FAKE.requests)
        days = {(r["query"]["from_date"], r["query"]["to_date"]) for r in FAKE.requests}
        assert ("2024-03-03", "2024-03-03") in days

    def test_final_bookmark_is_the_end_of_the_last_window(self, runner: TapTestRunner) -> None:
        final = runner.state_messages[-1]["value"]["bookmarks"]["mixpanel_events"]
        assert final["replication_key"] == "event_ts"
        assert final["replication_key_value"] == "2024-03-05T00:00:00.000000Z"
