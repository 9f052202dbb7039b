"""``amplitude_events`` against the fake export API: normalisation, windows, state and errors."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

from tap_clickstream.exceptions import WindowTooLargeError
from tests.fakes.amplitude import FakeAmplitude
from tests.tap_clickstream.helpers import FIXTURES, load_jsonl, run_tap

STREAM = "amplitude_events"
EVENTS = load_jsonl(FIXTURES / "amplitude" / "events.jsonl")
UUIDS = [e["uuid"] for e in EVENTS]
SECRET = "amp-Secret-Key-That-Must-Not-Leak"


def config(fake: FakeAmplitude, **amplitude: Any) -> dict[str, Any]:
    return {
        "start_date": "2024-03-01T04:00:00Z",
        "end_date": "2024-03-01T12:00:00Z",
        "amplitude": {
            "api_key": "amp-key",
            "secret_key": SECRET,
            "api_url": fake.url,
            "window_hours": 24,
            "lookback_hours": 0,
            **amplitude,
        },
    }


@pytest.fixture
def fake() -> Iterator[FakeAmplitude]:
    with FakeAmplitude(EVENTS, secret_key=SECRET) as server:
        yield server


def test_fields_land_where_they_should(fake: FakeAmplitude) -> None:
    result = run_tap(config(fake))
    assert result.error is None
    events = result.by_id(STREAM)
    assert sorted(events) == UUIDS  # uuid is the event_id

    page = events[UUIDS[0]]
    assert page["source"] == "amplitude"
    assert (page["event_name"], page["event_type"]) == ("[Amplitude] Page Viewed", "page_view")
    assert page["event_ts"] == "2024-03-01T05:00:01.123456Z"
    assert page["ingested_at"] == "2024-03-01T05:00:02.000001Z"  # server_upload_time
    assert (page["user_id"], page["anonymous_id"]) == ("u-1", "dev-a")
    assert page["session_id"] == "1709269200000"
    assert page["page_url"] == "https://shop.example/p/sku-7?ref=x"
    assert page["page_path"] == "/p/sku-7"
    assert page["page_title"] == "Blue Bag"
    assert page["referrer"] == "https://duckduckgo.com/"
    assert (page["utm_source"], page["utm_medium"], page["utm_campaign"]) == (
        "newsletter",
        "email",
        "march",
    )
    # Amplitude's web SDKs report the browser as os_name and the OS as device_model.
    assert (page["browser"], page["os"], page["device_category"]) == ("Chrome", "Mac OS", None)
    assert (page["country"], page["region"], page["city"]) == ("Germany", "Berlin", "Berlin")
    assert page["user_properties"] == {"plan": "free"}
    # Everything else Amplitude sent is kept.
    assert page["properties"]["amplitude_id"] == 900001
    assert page["properties"]["$insert_id"] == "ins-1"
    assert page["properties"]["ip_address"] == "203.0.113.7"
    assert "[Amplitude] Page URL" not in page["properties"]
    assert "groups" not in page["properties"]  # empty objects are dropped

    search = events[UUIDS[1]]
    assert search["event_ts"] == "2024-03-01T05:01:00.000000Z"  # no fraction on the wire
    assert (search["event_type"], search["search_query"]) == ("search", "blue bag")
    assert search["filters"] == {"price_max": 100}

    product = events[UUIDS[2]]
    assert product["items"] == [
        {"item_id": "sku-7", "name": "Blue Bag", "category": "bags", "price": 59.0}
    ]
    assert product["engagement_ms"] == 8000.0

    cart = events[UUIDS[3]]
    assert cart["event_type"] == "add_to_cart"
    assert (cart["os"], cart["browser"], cart["device_category"]) == ("ios", None, "mobile")

    purchase = events[UUIDS[4]]
    assert purchase["event_type"] == "purchase"
    assert purchase["items"] == [{"item_id": "sku-9", "price": 19.5, "quantity": 2.0}]
    assert (purchase["order_id"], purchase["revenue"], purchase["currency"]) == (
        "o-77",
        39.0,
        "EUR",
    )
    assert purchase["properties"]["$revenueType"] == "purchase"

    late = events[UUIDS[5]]
    assert late["session_id"] is None  # -1: no session
    assert late["event_ts"] == "2024-02-29T23:59:59.500000Z"  # ISO form with Z
    assert late["ingested_at"] == "2024-03-01T08:30:00.000000Z"
    assert (late["event_type"], late["media_progress_pct"]) == ("media_progress", 50.0)
    assert events[UUIDS[6]]["event_type"] == "checkout_done"
    assert events[UUIDS[7]]["event_type"] == "follow"


def test_user_event_map_wins(fake: FakeAmplitude) -> None:
    cfg = config(fake)
    cfg["event_map"] = {"Checkout Done": "purchase", "Search": "filter"}
    events = run_tap(cfg).by_id(STREAM)
    assert events[UUIDS[6]]["event_type"] == "purchase"
    assert events[UUIDS[1]]["event_type"] == "filter"
    assert events[UUIDS[3]]["event_type"] == "add_to_cart"


def test_hour_windows_with_inclusive_end_and_state(fake: FakeAmplitude) -> None:
    result = run_tap(config(fake, window_hours=3))
    asked = [(r["query"]["start"], r["query"]["end"], r["status"]) for r in fake.requests]
    # [04, 07) [07, 10) [10, 12): Amplitude's end is the last hour included.
    assert asked == [
        ("20240301T04", "20240301T06", 200),
        ("20240301T07", "20240301T09", 200),
        ("20240301T10", "20240301T11", 200),
    ]
    bookmarks = [s["bookmarks"][STREAM].get("replication_key_value") for s in result.states]
    assert bookmarks[:3] == [
        "2024-03-01T07:00:00.000000Z",
        "2024-03-01T10:00:00.000000Z",
        "2024-03-01T12:00:00.000000Z",
    ]
    assert sorted(result.event_ids()) == UUIDS


def test_hours_without_data_are_empty_windows(fake: FakeAmplitude) -> None:
    cfg = config(fake, window_hours=1)
    cfg["start_date"] = "2024-03-01T00:00:00Z"
    result = run_tap(cfg)
    statuses = {r["query"]["start"]: r["status"] for r in fake.requests}
    assert statuses["20240301T00"] == 404 and statuses["20240301T07"] == 404
    assert statuses["20240301T05"] == 200
    assert result.error is None and sorted(result.event_ids()) == UUIDS
    assert result.bookmark(STREAM) == "2024-03-01T12:00:00.000000Z"


@pytest.mark.parametrize(
    ("limits", "status"), [({"max_hours": 2}, 400), ({"timeout_hours": 2}, 504)]
)
def test_too_large_windows_are_split(limits: dict[str, int], status: int) -> None:
    with FakeAmplitude(EVENTS, secret_key=SECRET, **limits) as fake:
        result = run_tap(config(fake, window_hours=8))
        asked = [(r["query"]["start"], r["query"]["end"], r["status"]) for r in fake.requests]
    assert asked == [
        ("20240301T04", "20240301T11", status),
        ("20240301T04", "20240301T07", status),
        ("20240301T04", "20240301T05", 200),
        ("20240301T06", "20240301T07", 200),
        ("20240301T08", "20240301T11", status),
        ("20240301T08", "20240301T09", 200),
        ("20240301T10", "20240301T11", 200),
    ]
    assert result.error is None and sorted(result.event_ids()) == UUIDS
    # The bookmark moves after each part, so an interrupted sync keeps what it finished.
    bookmarks = [s["bookmarks"][STREAM].get("replication_key_value") for s in result.states]
    assert bookmarks[:4] == [
        "2024-03-01T06:00:00.000000Z",
        "2024-03-01T08:00:00.000000Z",
        "2024-03-01T10:00:00.000000Z",
        "2024-03-01T12:00:00.000000Z",
    ]


def test_a_window_too_large_even_for_one_hour_fails() -> None:
    with FakeAmplitude(EVENTS, secret_key=SECRET, max_hours=0) as fake:
        result = run_tap(config(fake, window_hours=2))
    assert isinstance(result.error, WindowTooLargeError)
    assert "even a one-hour export" in str(result.error)


def test_several_members_per_hour_are_all_read() -> None:
    with FakeAmplitude(EVENTS, secret_key=SECRET, files_per_hour=3) as fake:
        result = run_tap(config(fake))
    assert sorted(result.event_ids()) == sorted(UUIDS)


def test_retry_after_is_honoured(fake: FakeAmplitude) -> None:
    fake.fail_next(429, {"Retry-After": "2"})
    started = time.monotonic()
    result = run_tap(config(fake))
    assert time.monotonic() - started >= 2.0
    assert [r["status"] for r in fake.requests] == [429, 200]
    assert sorted(result.event_ids()) == UUIDS


def test_bad_keys_error_names_the_settings_and_hides_the_secret(fake: FakeAmplitude) -> None:
    fake.secret_key = "another"
    result = run_tap(config(fake))
    message = str(result.error)
    assert "403" in message
    assert "amplitude.api_key" in message and "amplitude.secret_key" in message
    assert SECRET not in message and SECRET not in result.log_text


def test_malformed_and_truncated_lines_are_counted_and_skipped(fake: FakeAmplitude) -> None:
    fake.bad_lines = {
        UUIDS[0]: b"not json",
        UUIDS[3]: b'{"uuid": "x", "event_type": "Add to Ca',
        UUIDS[7]: b'{"uuid": "no-times", "event_type": "Follow"}',
    }
    result = run_tap(config(fake))
    assert result.error is None and sorted(result.event_ids()) == UUIDS
    skipped = [line for line in result.logs if line.startswith("Skipped a malformed record")]
    assert skipped == [
        "Skipped a malformed record in amplitude_events, window 20240301T04..20240301T11, "
        "file 187520/187520_2024-03-01_5#1.json.gz, line 1: malformed JSON",
        "Skipped a malformed record in amplitude_events, window 20240301T04..20240301T11, "
        "file 187520/187520_2024-03-01_6#1.json.gz, line 1: malformed JSON",
        "Skipped a malformed record in amplitude_events, window 20240301T04..20240301T11, "
        "file 187520/187520_2024-03-01_11#1.json.gz, line 1: invalid event: "
        "'event_time' or 'server_upload_time' is missing",
    ]
    assert (
        "Stream amplitude_events emitted 8 events and skipped 3 malformed records "
        "(malformed JSON: 2, invalid event: 1)"
    ) in result.logs


class _DropsOnce(FakeAmplitude):
    """Cuts the first download short: half the zip, then the connection drops."""

    dropped = False

    def handle_request(self, handler: Any) -> None:
        if self.dropped:
            super().handle_request(handler)
            return
        self.dropped = True
        hours = sorted(self._by_hour)
        body = self._archive(hours)
        handler.send_response(200)
        handler.send_header("Content-Type", "application/zip")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body[: len(body) // 2])
        handler.abort()


def test_a_download_cut_short_is_requested_again() -> None:
    with _DropsOnce(EVENTS, secret_key=SECRET) as fake:
        result = run_tap(config(fake))
        assert len(fake.requests) == 2
    assert result.error is None and sorted(result.event_ids()) == UUIDS
    assert "broke off" in result.log_text


class _ForbiddenFrom(FakeAmplitude):
    """Refuses every window that starts at ``forbid_from`` or later."""

    forbid_from: datetime | None = None

    def handle_request(self, handler: Any) -> None:
        start = datetime.strptime(handler.query.get("start", "19700101T00"), "%Y%m%dT%H")
        if self.forbid_from is not None and start >= self.forbid_from:
            handler.send_json(403, {"error": "Invalid API key or secret key"})
            return
        super().handle_request(handler)


def test_an_interrupted_sync_resumes_where_it_stopped() -> None:
    with _ForbiddenFrom(EVENTS, secret_key=SECRET) as fake:
        cfg = config(fake, window_hours=2, lookback_hours=0)
        fake.forbid_from = datetime(2024, 3, 1, 8)
        first = run_tap(cfg)
        assert first.error is not None
        assert first.bookmark(STREAM) == "2024-03-01T08:00:00.000000Z"
        fake.forbid_from = None
        fake.clear_requests()
        second = run_tap(cfg, state=first.states[-1])
        resumed = [r["query"]["start"] for r in fake.requests]
        # With a lookback, the next sync reads that much again.
        fake.clear_requests()
        third = run_tap(
            dict(cfg, amplitude={**cfg["amplitude"], "lookback_hours": 3}), state=second.states[-1]
        )
        looked_back = fake.requests[0]["query"]["start"]
    assert second.error is None
    assert resumed == ["20240301T08", "20240301T10"]
    union = first.event_ids() + second.event_ids()
    assert sorted(union) == sorted(UUIDS)  # each event exactly once, none missing
    assert looked_back == "20240301T09"  # 12:00 minus 3 hours
    assert set(third.event_ids()) == {UUIDS[6], UUIDS[7]}  # uploaded 10:15 and 11:45
