"""GA4 constants: export table names, defaults and the Data API's limits."""

from __future__ import annotations

import re

#: Daily export tables (``events_YYYYMMDD``), complete once GA4 stops updating them.
DAILY_TABLE = re.compile(r"^events_(\d{8})$")
#: Streaming export tables, deleted when the day's daily table is complete.
INTRADAY_TABLE = re.compile(r"^events_intraday_(\d{8})$")
#: Days of daily tables read again on each sync: GA4 updates them for late events.
DEFAULT_LOOKBACK_DAYS = 3
#: Days read on a first sync without ``start_date``.
DEFAULT_HISTORY_DAYS = 30
#: Rows fetched from the warehouse at a time.
EXPORT_FETCH_ROWS = 5_000

#: The export columns the stream reads (those a table has; older exports lack a few).
EXPORT_COLUMNS = (
    "event_date", "event_timestamp", "event_name", "event_params", "event_previous_timestamp",
    "event_value_in_usd", "event_bundle_sequence_id", "event_server_timestamp_offset",
    "user_id", "user_pseudo_id", "privacy_info", "user_properties",
    "user_first_touch_timestamp", "user_ltv", "device", "geo", "app_info", "traffic_source",
    "stream_id", "platform", "event_dimensions", "ecommerce", "items",
    "collected_traffic_source", "session_traffic_source_last_click", "is_active_user",
    "batch_event_index", "batch_page_id", "batch_ordering_id",
)  # fmt: skip

#: The Data API's default host, page size and its largest page.
DATA_API_ENDPOINT = "analyticsdata.googleapis.com"
DEFAULT_PAGE_SIZE = 10_000
MAX_PAGE_SIZE = 250_000
#: A report's name (it names the report's stream, ``ga4_report_<name>``).
REPORT_NAME = re.compile(r"[a-z][a-z0-9_]*")
#: At most this many dimensions and metrics per report (Data API limits).
MAX_DIMENSIONS = 9
MAX_METRICS = 10
#: Days of reports read again on each sync (GA4 restates recent days).
DEFAULT_REPORT_LOOKBACK_DAYS = 3
#: The report synced when ``ga4.reports`` is empty: event counts by day, page and source.
DEFAULT_REPORTS: tuple[dict[str, object], ...] = (
    {
        "name": "events",
        "dimensions": [
            "date", "eventName", "pagePath", "pageTitle", "sessionSource", "sessionMedium",
            "sessionCampaignName", "deviceCategory", "country",
        ],
        "metrics": ["eventCount"],
    },
)  # fmt: skip
#: Stop for the sync (and resume next run) when fewer tokens than this remain in a bucket.
QUOTA_RESERVE_TOKENS = 10
