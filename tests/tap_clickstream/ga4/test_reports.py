"""``ga4_report_<name>`` streams against the fake Data API: fields, time zones, paging, quota,
resume."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from singer_sdk.exceptions import FatalAPIError

from tap_clickstream.config import validate_config
from tap_clickstream.sources.ga4.client import build_client
from tap_clickstream.sources.ga4.streams import GA4ReportStream
from tap_clickstream.tap import TapClickstream
from tests.fakes.ga4 import FakeGA4
from tests.tap_clickstream.helpers import FIXTURES, load_jsonl, run_tap

STREAM = "ga4_report_events"  # the default report's stream
HOURLY_STREAM = "ga4_report_hourly"
FACTS = load_jsonl(FIXTURES / "ga4" / "report_facts.jsonl")
HOURLY = {
    "name": "hourly",
    "dimensions": ["dateHour", "eventName", "pagePath", "pageTitle", "transactionId",
                   "searchTerm", "sessionSource", "sessionMedium", "country"],
    "metrics": ["eventCount", "purchaseRevenue"],
}  # fmt: skip


@pytest.fixture
def fake() -> Iterator[FakeGA4]:
    with FakeGA4(FACTS) as server:
        yield server


@pytest.fixture(autouse=True)
def _no_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    # Retries against the fake need not wait out a real backoff.
    monkeypatch.setattr(GA4ReportStream, "retry_wait", 0.0)


def config(fake: FakeGA4, **ga4: Any) -> dict[str, Any]:
    return {
        "start_date": "2024-03-01T00:00:00Z",
        "end_date": "2024-03-03T23:00:00Z",
        "ga4": {"property_id": fake.property_id, "api_endpoint": fake.url, **ga4},
    }


def test_default_report_and_fields(fake: FakeGA4) -> None:
    result = run_tap(config(fake))
    assert result.error is None
    rows = result.records(STREAM)
    assert len(rows) == 15  # 5 dimension combinations a day, 3 days
    body = fake.bodies[0]
    assert [d["name"] for d in body["dimensions"]][:3] == ["date", "eventName", "pagePath"]
    assert [m["name"] for m in body["metrics"]] == ["eventCount"]
    assert body["dateRanges"] == [{"startDate": "2024-03-01", "endDate": "2024-03-01"}]
    search = next(r for r in rows if r["event_name"] == "view_search_results")
    assert search["event_type"] == "search"
    assert (search["is_aggregate"], search["event_count"]) == (True, 4)
    # date 20240301 is a New York day: it starts at 05:00 UTC.
    assert search["event_ts"] == "2024-03-01T05:00:00.000000Z"
    assert (search["page_path"], search["page_title"]) == ("/search", "Search")
    assert (search["utm_source"], search["utm_medium"]) == ("google", "organic")
    assert search["utm_campaign"] is None  # "(not set)"
    assert (search["device_category"], search["country"]) == ("mobile", "United States")
    assert search["properties"]["report"] == "events"
    home = next(r for r in rows if r["page_path"] == "/" and r["event_ts"].startswith("2024-03-01"))
    assert home["utm_source"] is None  # "(direct)"


def test_each_report_is_a_stream_that_can_be_selected_alone(fake: FakeGA4) -> None:
    cfg = config(fake, reports=[HOURLY, {**HOURLY, "name": "second"}])
    catalog = TapClickstream(config=cfg, parse_env_config=False).catalog_dict
    names = [entry["tap_stream_id"] for entry in catalog["streams"]]
    assert names == ["ga4_events", HOURLY_STREAM, "ga4_report_second"]
    for entry in catalog["streams"]:
        for meta in entry["metadata"]:
            if not meta["breadcrumb"]:
                meta["metadata"]["selected"] = entry["tap_stream_id"] == "ga4_report_second"
    result = run_tap(cfg, catalog=catalog)
    assert result.error is None
    assert {m["stream"] for m in result.messages if m["type"] == "RECORD"} == {"ga4_report_second"}
    assert set(result.states[-1]["bookmarks"]) == {"ga4_report_second"}
    assert len(fake.bodies) == 3  # one request a day, for the selected report only
    assert {r["properties"]["report"] for r in result.records("ga4_report_second")} == {"second"}


def test_discovery_leaves_out_reports_that_cannot_name_a_stream(fake: FakeGA4) -> None:
    # Discovery runs without the config check (which names these reports when syncing).
    cfg = config(
        fake,
        reports=[
            {"metrics": ["eventCount"]},
            {"name": "My Report", "metrics": ["eventCount"]},
            {"name": "ok", "metrics": ["eventCount"]},
            {"name": "ok", "metrics": ["sessions"]},
        ],
    )
    tap = TapClickstream(config=cfg, parse_env_config=False, validate_config=False)
    assert sorted(tap.streams) == ["ga4_events", "ga4_report_ok"]
    assert tap.streams["ga4_report_ok"].report["metrics"] == ["eventCount"]  # the first "ok"


def test_hourly_report_times_revenue_and_search(fake: FakeGA4) -> None:
    result = run_tap(config(fake, reports=[HOURLY]))
    assert result.error is None
    assert result.records(STREAM) == []  # configured reports replace the default one
    rows = result.records(HOURLY_STREAM)
    purchase = next(r for r in rows if r["order_id"] == "T-20240302")
    # dateHour 2024030223 in New York (EST, UTC-5) is 04:00 UTC the next day.
    assert purchase["event_ts"] == "2024-03-03T04:00:00.000000Z"
    assert (purchase["revenue"], purchase["currency"]) == (85.0, "USD")
    assert (purchase["event_type"], purchase["event_count"]) == ("purchase", 2)
    assert purchase["utm_campaign"] is None and purchase["utm_source"] == "newsletter"
    search = next(r for r in rows if r["search_query"] == "red boots")
    assert search["event_ts"] == "2024-03-01T15:00:00.000000Z"  # 10:00 New York
    ids = [r["event_id"] for r in rows]
    assert len(ids) == len(set(ids))
    assert ids == [r["event_id"] for r in run_tap(config(fake, reports=[HOURLY])).records()]


def test_paging_reads_every_row_once(fake: FakeGA4) -> None:
    whole = run_tap(config(fake)).records(STREAM)
    fake.bodies.clear()
    paged = run_tap(config(fake, page_size=2)).records(STREAM)
    assert sorted(r["event_id"] for r in paged) == sorted(r["event_id"] for r in whole)
    day_one = [b for b in fake.bodies if b["dateRanges"][0]["startDate"] == "2024-03-01"]
    assert [(b.get("offset"), b["limit"]) for b in day_one] == [(None, "2"), ("2", "2"), ("4", "2")]


def test_quota_running_low_stops_cleanly_and_the_next_run_resumes(fake: FakeGA4) -> None:
    # 5 tokens a request; the stream stops once fewer than 10 are left: after 5 requests
    # (day 1 in three pages, day 2's first two), with day 2 unfinished.
    fake.tokens_per_hour = 30
    first = run_tap(config(fake, page_size=2, lookback_days=0))
    assert first.error is None
    assert "GA4 quota nearly exhausted (tokens_per_hour" in first.log_text
    assert len(fake.bodies) == 5
    state = first.states[-1]
    assert state["bookmarks"][STREAM]["last_date"] == "2024-03-01"

    fake.tokens_per_hour = 40_000  # the next hour
    second = run_tap(config(fake, page_size=2, lookback_days=0), state=state)
    assert second.error is None
    days = {r["properties"]["report_date"] for r in second.records(STREAM)}
    assert days == {"2024-03-02", "2024-03-03"}
    ids = {r["event_id"] for r in first.records(STREAM) + second.records(STREAM)}
    assert len(ids) == 15
    assert second.states[-1]["bookmarks"][STREAM]["last_date"] == "2024-03-03"


def test_resource_exhausted_stops_cleanly_at_the_last_whole_day(fake: FakeGA4) -> None:
    # Requests dearer than the reserve the stream keeps: two go through, the third finds too
    # few tokens and gets 429 RESOURCE_EXHAUSTED.
    fake.tokens_per_hour, fake.cost = 50, 20
    # Streams sync in name order: ga4_report_hourly, then ga4_report_later.
    reports = [HOURLY, {**HOURLY, "name": "later"}]
    result = run_tap(config(fake, lookback_days=0, reports=reports))
    assert result.error is None
    assert "GA4 quota" in result.log_text
    assert "GA4 report later not read this run" in result.log_text
    assert [r["status"] for r in fake.requests] == [200, 200, 429]
    saved = result.states[-1]["bookmarks"]
    assert saved[HOURLY_STREAM]["last_date"] == "2024-03-02"
    assert not saved.get("ga4_report_later")  # nothing read: no bookmark


def test_lookback_reads_recent_days_again(fake: FakeGA4) -> None:
    state = run_tap(config(fake)).states[-1]
    fake.bodies.clear()
    again = run_tap(config(fake, lookback_days=2), state=state)
    assert {r["properties"]["report_date"] for r in again.records(STREAM)} == {
        "2024-03-02", "2024-03-03",
    }  # fmt: skip


def test_server_errors_are_retried_then_fail_with_state_kept(fake: FakeGA4) -> None:
    unavailable = b'{"error": {"code": 503, "message": "Unavailable", "status": "UNAVAILABLE"}}'
    fake.fail_next(503, {"Content-Type": "application/json"}, unavailable)
    ok = run_tap(config(fake, lookback_days=0))
    assert ok.error is None and len(ok.records(STREAM)) == 15
    for _ in range(GA4ReportStream.max_tries):
        fake.fail_next(503, {"Content-Type": "application/json"}, unavailable)
    failed = run_tap(config(fake, lookback_days=1), state=ok.states[-1])
    assert failed.error is not None and "failed 5 times" in str(failed.error)


def test_wrong_property_and_bad_report_name_the_settings(fake: FakeGA4) -> None:
    cfg = config(fake)
    cfg["ga4"]["property_id"] = "987654321"
    denied = run_tap(cfg)
    assert denied.error is not None and "ga4.property_id" in str(denied.error)
    bad = {"name": "bad", "dimensions": ["noSuchDimension"], "metrics": ["eventCount"]}
    rejected = run_tap(config(fake, reports=[bad]))
    assert rejected.error is not None
    assert "ga4.reports (bad)" in str(rejected.error)
    assert "noSuchDimension" in str(rejected.error)


SERVICE_ACCOUNT = json.dumps({"type": "service_account", "project_id": "p"})


@pytest.mark.parametrize(
    ("ga4", "expected"),
    [
        ({"property_id": "123456789", "credentials_json": SERVICE_ACCOUNT}, []),
        ({"property_id": "123456789", "api_endpoint": "http://127.0.0.1:1"}, []),
        (
            {"property_id": "G-ABC123XYZ", "api_endpoint": "http://x"},
            [
                "ga4.property_id must be the numeric property id (Admin > Property details), not "
                "the measurement id 'G-ABC123XYZ'"
            ],
        ),
        (
            {"property_id": "properties/1", "api_endpoint": "http://x"},
            ["ga4.property_id must be the numeric property id, not 'properties/1'"],
        ),
        (
            {"property_id": "1"},
            ["ga4.credentials_json or ga4.credentials_path is required to read GA4 reports"],
        ),
        (
            {
                "property_id": "1",
                "credentials_json": SERVICE_ACCOUNT,
                "credentials_path": str(FIXTURES / "ga4" / "report_facts.jsonl"),
            },
            ["set ga4.credentials_json or ga4.credentials_path, not both"],
        ),
        (
            {"property_id": "1", "credentials_json": "not json at all"},
            ["ga4.credentials_json must be the JSON content of a service-account key"],
        ),
        (
            {"property_id": "1", "credentials_path": "/no/such/key.json"},
            ["ga4.credentials_path is not a file: '/no/such/key.json'"],
        ),
        (
            {"property_id": "1", "api_endpoint": "http://x", "page_size": 300_000},
            ["ga4.page_size must be at most 250000"],
        ),
        (
            {
                "property_id": "1",
                "api_endpoint": "http://x",
                "reports": [
                    {"name": "a", "metrics": ["sessions"]},
                    {"name": "a", "metrics": ["eventCount"], "dimensions": ["d"] * 10},
                    {"name": "Bad Name", "metrics": "eventCount"},
                ],
            },
            [
                "ga4.reports[0].metrics must include eventCount",
                "ga4.reports[1].name 'a' is used by another report",
                "ga4.reports[1].dimensions: at most 9 per report",
                "ga4.reports[2].name must be snake_case, not 'Bad Name'",
                "ga4.reports[2].metrics must be a list of metric names",
            ],
        ),
    ],
)
def test_data_api_settings_rules(ga4: dict[str, Any], expected: list[str]) -> None:
    errors = validate_config({"ga4": ga4})
    assert len(errors) == len(expected), errors
    for error, start in zip(errors, expected, strict=True):
        assert error.startswith(start)
    assert not any("not json at all" in e for e in errors)  # a secret is never shown


def test_unreadable_credentials_fail_without_showing_them() -> None:
    with pytest.raises(FatalAPIError, match=r"ga4\.credentials_json does not hold") as caught:
        build_client({"credentials_json": '{"type": "service_account", "secret": "hush-42"}'})
    assert "hush-42" not in str(caught.value)


def test_a_dropped_connection_is_retried(fake: FakeGA4) -> None:
    fake.drop_next = 2
    result = run_tap(config(fake))
    assert result.error is None and len(result.records(STREAM)) == 15
    assert result.log_text.count("Retrying GA4 report events, 2024-03-01") == 2
