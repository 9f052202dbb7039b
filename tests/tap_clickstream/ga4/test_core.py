"""The singer-sdk standard tap tests for the GA4 streams.

``ga4_events`` reads a DuckDB file laid out like the BigQuery export (records and repeated
records); the report streams (``ga4_report_events``, ``ga4_report_hourly_sales``) talk to a
local fake of the Data API's REST transport
(``tests/fakes/ga4.py``), paged two rows at a time and failing once with a 503 first. Both
are set up when this module is imported, because the SDK's test factory discovers the streams
at import time and syncs once in a class-scoped fixture.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from singer_sdk.testing import SuiteConfig, get_tap_test_class
from singer_sdk.testing.runners import TapTestRunner

from tap_clickstream.tap import TapClickstream
from tests.fakes.ga4 import FakeGA4
from tests.tap_clickstream.ga4.export_db import sample_tables, write_tables
from tests.tap_clickstream.helpers import FIXTURES, load_jsonl

_DIR = Path(tempfile.mkdtemp(prefix="ga4-export-"))
EXPORT_URL = write_tables(_DIR / "export.duckdb", sample_tables())
FACTS = load_jsonl(FIXTURES / "ga4" / "report_facts.jsonl")
FAKE = FakeGA4(FACTS)
FAKE.start()
FAKE.fail_next(503, {"Content-Type": "application/json"},
               b'{"error": {"code": 503, "message": "The service is currently unavailable.",'
               b' "status": "UNAVAILABLE"}}')  # fmt: skip

CONFIG = {
    "start_date": "2024-03-01T00:00:00Z",
    "end_date": "2024-03-04T12:00:00Z",
    "ga4": {
        "export_url": EXPORT_URL,
        "include_intraday": True,
        "property_id": FAKE.property_id,
        "api_endpoint": FAKE.url,
        "page_size": 2,
        "reports": [
            {
                "name": "events",
                "dimensions": ["date", "eventName", "pagePath", "sessionSource"],
                "metrics": ["eventCount"],
            },
            {
                "name": "hourly_sales",
                "dimensions": ["dateHour", "eventName", "transactionId"],
                "metrics": ["eventCount", "purchaseRevenue"],
            },
        ],
    },
}

# GA4 has no faceted-filter field, so ``filters`` is always null on its streams: the
# per-attribute tests would warn "no records" for it. (That records exist at all is checked
# below, per stream.)
REPORT_STREAMS = ["ga4_report_events", "ga4_report_hourly_sales"]
SUITE = SuiteConfig(ignore_no_records_for_streams=["ga4_events", *REPORT_STREAMS])


@pytest.fixture(scope="module", autouse=True)
def _fake_server() -> Iterator[FakeGA4]:
    yield FAKE
    FAKE.stop()


class TestTapClickstreamGA4(
    get_tap_test_class(TapClickstream, config=CONFIG, parse_env_config=False, suite_config=SUITE)
):
    """The standard tests, plus what each GA4 stream emitted."""

    def test_export_events_once_each(self, runner: TapTestRunner) -> None:
        records = runner.records["ga4_events"]
        ids = [r["event_id"] for r in records]
        assert len(ids) == len(set(ids)) == 10  # 11 rows, one malformed
        assert all(r["source"] == "ga4" and r["is_aggregate"] is False for r in records)

    def test_bookmark_is_the_day_after_the_last_daily_table(self, runner: TapTestRunner) -> None:
        final = runner.state_messages[-1]["value"]["bookmarks"]["ga4_events"]
        assert final["replication_key_value"] == "2024-03-04T00:00:00.000000Z"
        assert final["last_table"] == "events_20240303"

    def test_report_rows_are_aggregates_read_page_by_page(self, runner: TapTestRunner) -> None:
        records = [r for name in REPORT_STREAMS for r in runner.records[name]]
        ids = [r["event_id"] for r in records]
        assert len(ids) == len(set(ids))
        assert all(r["source"] == "ga4_report" and r["is_aggregate"] for r in records)
        events = runner.records["ga4_report_events"]
        assert {r["properties"]["report"] for r in events} == {"events"}
        # 3 days x 5 rows (2024-03-04 has none); event counts add up to the facts'.
        assert len(events) == 15
        assert sum(r["event_count"] for r in events) == sum(f["eventCount"] for f in FACTS)
        runs = [b for b in FAKE.bodies if b["dimensions"][0]["name"] == "date"]
        # Two rows a page: offsets 0 (omitted, proto3 default), "2", "4" for each day.
        assert [b.get("offset") for b in runs[:3]] == [None, "2", "4"]
        assert all(b["limit"] == "2" and b["returnPropertyQuota"] for b in runs)
        assert FAKE.requests[0]["status"] == 503  # retried

    def test_report_bookmarks_per_report(self, runner: TapTestRunner) -> None:
        final = runner.state_messages[-1]["value"]["bookmarks"]
        for name in REPORT_STREAMS:
            assert final[name]["last_date"] == "2024-03-04"
            assert final[name]["time_zone"] == "America/New_York"
            # The end of 2024-03-04 (no data: read whole all the same) in New York, in UTC.
            assert final[name]["replication_key_value"] == "2024-03-05T05:00:00.000000Z"
