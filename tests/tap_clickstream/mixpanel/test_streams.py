"""``mixpanel_events`` against the fake export API: normalisation, windows, state and errors."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

import pytest

from tap_clickstream.events import stable_event_id
from tap_clickstream.exceptions import IncompleteExportError
from tests.fakes.mixpanel import FakeMixpanel
from tests.tap_clickstream.helpers import (
    FIXTURES,
    TAP_EXECUTABLE,
    load_jsonl,
    parse_messages,
    run_cli,
    run_tap,
    write_json,
)

STREAM = "mixpanel_events"
EVENTS = load_jsonl(FIXTURES / "mixpanel" / "export.jsonl")
TODAY = date(2024, 3, 10)
SECRET = "s3cr3t-Value-That-Must-Not-Leak"


def _ts(*args: int) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp())  # type: ignore[arg-type]


def config(fake: FakeMixpanel, **mixpanel: Any) -> dict[str, Any]:
    return {
        "start_date": "2024-03-01T00:00:00Z",
        "end_date": "2024-03-04T12:00:00Z",
        "mixpanel": {
            "project_id": "1234567",
            "username": "svc-user",
            "secret": SECRET,
            "api_url": fake.url,
            "window_days": 1,
            "lookback_days": 0,
            **mixpanel,
        },
    }


@pytest.fixture(scope="module")
def all_ids() -> set[str]:
    """The event ids of one uninterrupted sync of the fixture."""
    with FakeMixpanel(EVENTS, today=TODAY) as server:
        cfg = config(server)
        cfg["mixpanel"]["secret"] = "svc-secret"
        return {r["event_id"] for r in run_tap(cfg).records()}


@pytest.fixture
def fake() -> Iterator[FakeMixpanel]:
    with FakeMixpanel(EVENTS, secret=SECRET, today=TODAY) as server:
        yield server


def test_fields_land_where_they_should(fake: FakeMixpanel) -> None:
    result = run_tap(config(fake))
    assert result.error is None
    events = result.by_id(STREAM)

    view = events["mp-ins-001"]
    assert view["source"] == "mixpanel"
    assert view["event_name"] == "$mp_web_page_view"
    assert view["event_type"] == "page_view"
    assert view["event_ts"] == "2024-03-01T09:00:00.000000Z"
    assert view["ingested_at"] == "2024-03-01T09:00:02.250000Z"  # mp_processing_time_ms
    assert (view["user_id"], view["anonymous_id"]) == ("user-1", "dev-1")
    assert view["page_url"] == "https://shop.example/shoes?color=red"
    assert view["page_path"] == "/shoes"
    assert view["page_title"] == "Shoes | Shop"
    assert view["referrer"] == "https://www.google.com/"
    utm = [view[f"utm_{k}"] for k in ("source", "medium", "campaign", "term", "content")]
    assert utm == ["google", "cpc", "spring", "red shoes", "ad-1"]
    assert (view["browser"], view["os"]) == ("Chrome", "Mac OS X")
    assert (view["country"], view["region"], view["city"]) == ("DE", "Berlin", "Berlin")
    assert view["event_count"] == 1 and view["is_aggregate"] is False
    # What has no canonical field is kept, under its own name; what was used is not repeated.
    assert view["properties"]["$browser_version"] == 122
    assert view["properties"]["mp_lib"] == "web"
    assert not {"time", "distinct_id", "$insert_id", "$current_url", "utm_source"} & set(
        view["properties"]
    )

    search = events["mp-ins-002"]
    assert search["event_type"] == "search"
    assert search["search_query"] == "red shoes"
    assert search["filters"] == {"size": "42", "color": "red"}

    product = events["mp-ins-003"]
    assert product["event_type"] == "product_view"
    assert product["event_ts"] == "2024-03-01T09:01:00.123000Z"  # time in milliseconds
    assert product["items"] == [
        {
            "item_id": "sku-42",
            "name": "Red Runner",
            "category": "shoes",
            "brand": "Acme",
            "variant": "42",
            "price": 89.9,
        }
    ]
    assert product["engagement_ms"] == 12500.0  # $duration_s
    assert product["scroll_depth_pct"] == 75.0

    cart = events["mp-ins-004"]
    assert cart["event_type"] == "add_to_cart"
    assert cart["items"] == [{"item_id": "sku-42", "price": 89.9, "quantity": 1.0}]

    anonymous = events["mp-ins-006"]
    assert anonymous["user_id"] is None
    assert anonymous["anonymous_id"] == "dev-9"
    assert anonymous["event_type"] == "page_view"

    media = events["mp-ins-007"]
    assert (media["event_type"], media["media_progress_pct"]) == ("video_watched_25", 25.0)
    assert events["mp-ins-009"]["event_type"] == "follow"
    assert events["mp-ins-008"]["event_type"] == "checkout_done"  # unmapped: snake_case


def test_event_without_insert_id_gets_a_stable_hash(fake: FakeMixpanel) -> None:
    first = run_tap(config(fake))
    second = run_tap(config(fake))
    (order,) = [r for r in first.records() if r["event_name"] == "Order Completed"]
    expected = stable_event_id("Order Completed", "user-1", "2024-03-02T10:00:00.000000Z")
    assert order["event_id"] == expected
    assert second.event_ids() == first.event_ids()
    assert (order["order_id"], order["revenue"], order["currency"]) == ("ord-1001", 179.8, "EUR")
    assert order["items"] == [
        {"item_id": "sku-42", "name": "Red Runner", "price": 89.9, "quantity": 2.0, "position": 1}
    ]
    assert order["user_id"] == "user-1"


def test_user_event_map_wins_over_the_crosswalk(fake: FakeMixpanel) -> None:
    cfg = config(fake)
    cfg["event_map"] = {"Product Viewed": "add_to_wishlist", "Checkout Done": "purchase"}
    events = run_tap(cfg).by_id(STREAM)
    assert events["mp-ins-003"]["event_type"] == "add_to_wishlist"
    assert events["mp-ins-008"]["event_type"] == "purchase"
    assert events["mp-ins-004"]["event_type"] == "add_to_cart"  # crosswalk still applies


def test_windows_state_and_empty_window(fake: FakeMixpanel) -> None:
    result = run_tap(config(fake, window_days=2))
    asked = [(r["query"]["from_date"], r["query"]["to_date"]) for r in fake.requests]
    assert asked == [("2024-03-01", "2024-03-02"), ("2024-03-03", "2024-03-04")]
    bookmarks = [s["bookmarks"][STREAM].get("replication_key_value") for s in result.states]
    assert bookmarks == [
        "2024-03-03T00:00:00.000000Z",
        "2024-03-05T00:00:00.000000Z",
        "2024-03-05T00:00:00.000000Z",
    ]
    # STATE comes after the records of its window.
    kinds = [m["type"] for m in result.messages if m["type"] != "SCHEMA"]
    assert kinds.index("STATE") == 7  # the 7 events of 2024-03-01..02 first
    fake.clear_requests()
    one_day = run_tap(config(fake, window_days=1))
    asked = [r["query"]["from_date"] for r in fake.requests]
    assert asked == ["2024-03-01", "2024-03-02", "2024-03-03", "2024-03-04"]
    assert len(one_day.records()) == len(EVENTS)


def test_project_timezone_shifts_times_and_windows() -> None:
    # A pre-2023 project in New York: "time" holds local wall-clock time as if it were UTC.
    local_nine_am = _ts(2024, 3, 1, 9)
    event = {"event": "Page View", "properties": {"time": local_nine_am, "distinct_id": "u"}}
    with FakeMixpanel([event], today=TODAY) as fake:
        cfg = config(fake, project_timezone="America/New_York")
        cfg["mixpanel"]["secret"] = "svc-secret"
        # start_date and end_date are instants: 00:00 and 18:00 on 2024-03-01 in New York.
        cfg["start_date"] = "2024-03-01T05:00:00Z"
        cfg["end_date"] = "2024-03-01T23:00:00Z"
        result = run_tap(cfg)
        (record,) = result.records()
        assert record["event_ts"] == "2024-03-01T14:00:00.000000Z"
        # The window is the project's local day; its end is local midnight, in UTC.
        asked = [(r["query"]["from_date"], r["query"]["to_date"]) for r in fake.requests]
        assert asked == [("2024-03-01", "2024-03-01")]
        assert result.bookmark(STREAM) == "2024-03-02T05:00:00.000000Z"


def test_gzipped_body_is_streamed_and_decoded() -> None:
    events = [
        {
            "event": "Page View",
            "properties": {
                "time": _ts(2024, 3, 1) + i,
                "distinct_id": f"u{i}",
                "$insert_id": f"g{i}",
            },
        }
        for i in range(3000)
    ]
    with FakeMixpanel(events, today=TODAY) as fake:
        cfg = config(fake)
        cfg["mixpanel"]["secret"] = "svc-secret"
        cfg["end_date"] = "2024-03-01T12:00:00Z"
        result = run_tap(cfg)
        assert fake.requests[0]["headers"]["Accept-Encoding"].startswith("gzip")
    assert result.error is None
    assert result.event_ids() == [f"g{i}" for i in range(3000)]


def test_retry_after_is_honoured(fake: FakeMixpanel) -> None:
    # The default first wait is 1 s; the header asks for 2.
    fake.fail_next(429, {"Retry-After": "2"}, b'{"error": "too many requests"}')
    started = time.monotonic()
    result = run_tap(config(fake, window_days=7))
    elapsed = time.monotonic() - started
    assert elapsed >= 2.0
    assert [r["status"] for r in fake.requests] == [429, 200]
    assert len(result.records()) == len(EVENTS)
    assert "Retrying mixpanel in 2." in result.log_text


def test_server_errors_are_retried_with_backoff(fake: FakeMixpanel) -> None:
    # (That the waits grow is tested on the wait generator, in tests/tap_clickstream.)
    fake.fail_next(503)
    started = time.monotonic()
    result = run_tap(config(fake, window_days=7))
    assert time.monotonic() - started >= 1.0  # the first wait, with no Retry-After
    assert [r["status"] for r in fake.requests] == [503, 200]
    assert result.error is None and len(result.records()) == len(EVENTS)


def test_bad_credentials_error_names_the_settings_and_hides_the_secret(
    fake: FakeMixpanel, tmp_path: Any
) -> None:
    cfg = config(fake)
    fake.secret = "the-right-one"
    result = run_tap(cfg)
    message = str(result.error)
    assert "401" in message
    assert "mixpanel.username" in message and "mixpanel.secret" in message
    assert SECRET not in message and SECRET not in result.log_text
    assert result.records() == []
    # The same through the executable: exit code, and nothing secret on stderr or stdout.
    proc = run_cli(cfg, tmp_path)
    assert proc.returncode != 0
    assert "mixpanel.username" in proc.stderr and "mixpanel.secret" in proc.stderr
    assert SECRET not in proc.stderr + proc.stdout


@pytest.mark.parametrize(
    ("change", "setting"),
    [
        ({"project_id": "7654321"}, "mixpanel.project_id"),
        # A window past the project's today: "to_date cannot be later than today".
        ({"start_date": "2024-03-11T00:00:00Z"}, "mixpanel.project_timezone"),
    ],
)
def test_rejected_request_names_the_setting(
    fake: FakeMixpanel, change: dict[str, str], setting: str
) -> None:
    cfg = config(fake, **{k: v for k, v in change.items() if k != "start_date"})
    if "start_date" in change:
        cfg["start_date"] = change["start_date"]
        del cfg["end_date"]
    result = run_tap(cfg)
    assert result.error is not None
    assert "400" in str(result.error) and setting in str(result.error)
    assert SECRET not in str(result.error)


def test_malformed_and_truncated_lines_are_counted_and_skipped(fake: FakeMixpanel) -> None:
    # Inserted before the 1st, 2nd and 3rd event line of every non-empty window.
    fake.bad_lines = {
        0: b"not json at all",
        1: b'{"event": "No Time", "properties": {"distinct_id": "u"}}',
        2: b'{"event": "Cut", "properties": {"ti',
    }
    result = run_tap(config(fake))
    assert result.error is None
    assert len(result.records()) == len(EVENTS)  # every good event, none of the bad
    lines = [line for line in result.logs if line.startswith("Skipped a malformed record")]
    # Each names the stream, the window and the line number.
    assert lines[:3] == [
        "Skipped a malformed record in mixpanel_events, window 2024-03-01..2024-03-01, "
        "line 1: malformed JSON",
        "Skipped a malformed record in mixpanel_events, window 2024-03-01..2024-03-01, "
        "line 3: invalid event: 'time' is not an epoch number: None",
        "Skipped a malformed record in mixpanel_events, window 2024-03-01..2024-03-01, "
        "line 5: malformed JSON",
    ]
    summary = [line for line in result.logs if "malformed records" in line]
    # Three windows hold events (2024-03-03 is empty): three bad lines each.
    assert summary == [
        "Stream mixpanel_events emitted 10 events and skipped 9 malformed records "
        "(malformed JSON: 6, invalid event: 3)"
    ]


def test_a_record_split_across_two_lines_is_joined() -> None:
    whole = json.dumps(
        {"event": "Split", "properties": {"time": _ts(2024, 3, 1), "$insert_id": "s"}}
    )
    cut = len(whole) // 2

    def lines(start: date, end: date) -> Iterator[bytes]:
        yield whole[:cut].encode()
        yield whole[cut:].encode()
        yield json.dumps({"event": "After", "properties": {"time": _ts(2024, 3, 1)}}).encode()

    with FakeMixpanel(lines, today=TODAY) as fake:
        cfg = config(fake)
        cfg["mixpanel"]["secret"] = "svc-secret"
        cfg["end_date"] = "2024-03-01T01:00:00Z"
        result = run_tap(cfg)
    assert [r["event_name"] for r in result.records()] == ["Split", "After"]
    assert "Stream mixpanel_events emitted 2 events, no malformed records" in result.logs


def test_a_dropped_export_is_read_again_and_emitted_once(fake: FakeMixpanel) -> None:
    fake.drop_after = 2  # the first response breaks off after two events
    fake.drop_times = 1
    fake.bad_lines = {1: b"{bad"}
    result = run_tap(config(fake))
    assert result.error is None
    ids = result.event_ids()
    assert len(ids) == len(set(ids)) == len(EVENTS)
    day_one = [r for r in fake.requests if r["query"]["from_date"] == "2024-03-01"]
    assert len(day_one) == 2  # read again after the drop
    assert "broke off" in result.log_text
    # The bad line of the window read twice counts once, not once per attempt: one per
    # window with events (2024-03-03 has none). The two events sent before the drop went
    # out once.
    assert (
        "Stream mixpanel_events emitted 10 events and skipped 3 malformed records "
        "(malformed JSON: 3), 2 repeated events emitted once"
    ) in result.logs


def test_an_export_that_keeps_breaking_off_fails_the_sync(fake: FakeMixpanel) -> None:
    fake.terminated_early = True
    result = run_tap(config(fake))
    assert isinstance(result.error, IncompleteExportError)
    assert "terminated early" in str(result.error)
    assert len(fake.requests) == 3  # three attempts at the first window
    # What each attempt streamed went out once; the window is not marked done.
    assert result.event_ids() == ["mp-ins-001", "mp-ins-002", "mp-ins-003", "mp-ins-004"]
    assert not any(s["bookmarks"][STREAM].get("replication_key_value") for s in result.states)


class _FailingFrom(FakeMixpanel):
    """Breaks off every export from ``fail_from`` on, after the first event."""

    fail_from: str | None = None

    def handle_request(self, handler: Any) -> None:
        failing = self.fail_from and handler.query.get("from_date", "") >= self.fail_from
        self.drop_after = 1 if failing else None
        super().handle_request(handler)


def test_an_interrupted_sync_resumes_where_it_stopped(all_ids: set[str]) -> None:
    with _FailingFrom(EVENTS, today=TODAY) as fake:
        cfg = config(fake, lookback_days=0)
        cfg["mixpanel"]["secret"] = "svc-secret"
        fake.fail_from = "2024-03-02"
        first = run_tap(cfg)
        assert first.error is not None  # the tap exits non-zero
        assert first.bookmark(STREAM) == "2024-03-02T00:00:00.000000Z"
        fake.fail_from = None
        fake.clear_requests()
        second = run_tap(cfg, state=first.states[-1])
    assert second.error is None
    assert fake.requests[0]["query"]["from_date"] == "2024-03-02"
    union = first.event_ids() + second.event_ids()
    assert set(union) == all_ids  # nothing missing
    # Only the partly read window was read twice, and only its events repeat.
    repeated = {i for i in union if union.count(i) > 1}
    day_two = {r["event_id"] for r in second.records() if r["event_ts"].startswith("2024-03-02")}
    assert repeated <= day_two
    assert len(repeated) == 1  # the one event of 2024-03-02 sent before each break


def test_subprocess_killed_mid_sync_resumes_from_its_last_state(
    tmp_path: Any, all_ids: set[str]
) -> None:
    release = threading.Event()
    by_day: dict[date, list[bytes]] = {}
    for event in EVENTS:
        moment = event["properties"]["time"]
        seconds = moment / 1000 if moment > 1e11 else moment
        by_day.setdefault(datetime.fromtimestamp(seconds, UTC).date(), []).append(
            json.dumps(event).encode()
        )

    def lines(start: date, end: date) -> Iterator[bytes]:
        if start >= date(2024, 3, 3):
            release.wait(30)  # hold the third window until the tap has been killed
        for day, day_lines in sorted(by_day.items()):
            if start <= day <= end:
                yield from day_lines

    with FakeMixpanel(lines, today=TODAY) as fake:
        cfg = config(fake, lookback_days=1)
        cfg["mixpanel"]["secret"] = "svc-secret"
        args = [str(TAP_EXECUTABLE), "--config", str(write_json(tmp_path / "c.json", cfg))]
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        first: list[dict[str, Any]] = []
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                first.append(json.loads(line))
                bookmark = (
                    first[-1]["value"]["bookmarks"][STREAM].get("replication_key_value")
                    if first[-1]["type"] == "STATE"
                    else None
                )
                if bookmark == "2024-03-03T00:00:00.000000Z":
                    proc.kill()
                    break
        finally:
            proc.kill()
            proc.wait(10)
            release.set()
        assert proc.returncode != 0
        state = [m["value"] for m in first if m["type"] == "STATE"][-1]
        fake.clear_requests()
        second_proc = subprocess.run(
            [*args, "--state", str(write_json(tmp_path / "s.json", state))],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        second = parse_messages(second_proc.stdout)
        # The killed run's held request may be logged late, after clear_requests(): the
        # earliest window asked for is where the second run resumed.
        resumed_from = min(r["query"]["from_date"] for r in fake.requests)

    ids_first = [m["record"]["event_id"] for m in first if m["type"] == "RECORD"]
    ids_second = [m["record"]["event_id"] for m in second if m["type"] == "RECORD"]
    assert set(ids_first) | set(ids_second) == all_ids  # nothing missing
    assert len(ids_first) == len(set(ids_first)) and len(ids_second) == len(set(ids_second))
    # Resumed at the bookmark minus the one-day lookback, not at start_date; so only
    # 2024-03-02's events (the lookback) are read twice.
    assert resumed_from == "2024-03-02"
    day_two = {
        m["record"]["event_id"]
        for m in first
        if m["type"] == "RECORD" and m["record"]["event_ts"].startswith("2024-03-02")
    }
    assert set(ids_first) & set(ids_second) == day_two
    assert day_two  # the lookback overlap is real, and harmless: same event_ids


def test_an_upstream_error_body_is_cut_and_its_credentials_masked(fake: FakeMixpanel) -> None:
    # A proxy or API that echoes what it was sent: once logged and raised verbatim.
    echoed = (
        '{"error": "denied for Authorization: Basic dXNlcjpodW50ZXIy, '
        'api_secret=s3cr3tValue123, https://svc:hunter2pass@mixpanel.example/x" ' + "x" * 5000 + "}"
    )
    fake.fail_next(400, body=echoed.encode())
    result = run_tap(config(fake))
    message = str(result.error)
    assert "400" in message
    for secret in ("dXNlcjpodW50ZXIy", "s3cr3tValue123", "hunter2pass"):
        assert secret not in message
        assert secret not in result.log_text
    assert len(message) < 1000
