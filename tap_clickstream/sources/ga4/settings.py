"""GA4 settings (the ``ga4`` block) and constants: export table names, the Data API's limits."""

from __future__ import annotations

import json
import re
import typing as t
from pathlib import Path

from singer_sdk import typing as th

from tap_clickstream.source_settings import SourceSettings, whole_number_errors

#: Daily export tables (``events_YYYYMMDD``), complete once GA4 stops updating them.
DAILY_TABLE = re.compile(r"^events_(\d{8})$")
#: Streaming export tables, deleted when the day's daily table is complete.
INTRADAY_TABLE = re.compile(r"^events_intraday_(\d{8})$")
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

#: The Data API's default host, and its largest page.
DATA_API_ENDPOINT = "analyticsdata.googleapis.com"
MAX_PAGE_SIZE = 250_000
#: A report's name (it names the report's stream, ``ga4_report_<name>``).
REPORT_NAME = re.compile(r"[a-z][a-z0-9_]*")
#: At most this many dimensions and metrics per report (Data API limits).
MAX_DIMENSIONS = 9
MAX_METRICS = 10
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

SCHEMA = th.ObjectType(
    th.Property(
        "export_url",
        th.StringType,
        secret=True,
        title="Export URL",
        description=(
            "SQLAlchemy URL of the GA4 BigQuery export dataset, e.g. "
            "bigquery://my-project/analytics_123456 (stream ga4_events)."
        ),
    ),
    th.Property(
        "include_intraday",
        th.BooleanType,
        default=False,
        title="Include intraday tables",
        description="Also read events_intraday_* tables for days without a daily table yet.",
    ),
    th.Property(
        "lookback_days",
        th.IntegerType,
        default=3,
        title="Lookback (days)",
        description="Days of tables (and reports) read again on each sync: GA4 updates them late.",
    ),
    th.Property(
        "property_id",
        th.StringType,
        title="Property ID",
        description=(
            "Numeric GA4 property id (Admin > Property details), not the G- measurement id "
            "(Data API: a stream ga4_report_<name> per report)."
        ),
    ),
    th.Property(
        "credentials_json",
        th.StringType,
        secret=True,
        title="Credentials JSON",
        description=(
            "Content of a service-account key (or OAuth authorized_user) JSON file with "
            "read access to the property."
        ),
    ),
    th.Property(
        "credentials_path",
        th.StringType,
        title="Credentials path",
        description="Path of that JSON file, instead of ga4.credentials_json.",
    ),
    th.Property(
        "api_endpoint",
        th.StringType,
        title="API endpoint",
        description=(
            f"Data API host (default {DATA_API_ENDPOINT}); set it for a proxy or a "
            "test server, e.g. http://127.0.0.1:8080."
        ),
    ),
    th.Property(
        "reports",
        th.ArrayType(
            th.ObjectType(
                th.Property("name", th.StringType, required=True),
                th.Property("dimensions", th.ArrayType(th.StringType)),
                th.Property("metrics", th.ArrayType(th.StringType), required=True),
                additional_properties=False,
            )
        ),
        title="Reports",
        description=(
            "Data API reports: name, dimensions (up to 9), metrics (up to 10, eventCount "
            "among them). Default: eventCount by date, eventName, page and session source."
        ),
    ),
    th.Property(
        "page_size",
        th.IntegerType,
        default=10_000,
        title="Page size",
        description=f"Report rows per request (at most {MAX_PAGE_SIZE}).",
    ),
    additional_properties=False,
)


def check(block: dict[str, t.Any]) -> list[str]:
    """The GA4 rules JSON schema cannot express."""
    errors: list[str] = []
    if not block.get("export_url") and not block.get("property_id"):
        errors.append(
            "ga4 needs ga4.export_url (BigQuery export) or ga4.property_id (Data API reports)"
        )
    url = block.get("export_url")
    if url and (not isinstance(url, str) or "://" not in url):
        # The value may carry a password: never shown.
        errors.append("ga4.export_url must be a SQLAlchemy URL such as bigquery://project/dataset")
    errors += whole_number_errors(block, "ga4", "lookback_days", 0)
    if block.get("property_id"):
        errors.extend(_data_api_errors(block))
    return errors


def _data_api_errors(block: dict[str, t.Any]) -> list[str]:
    errors: list[str] = []
    pid = str(block["property_id"]).strip()
    if pid.upper().startswith("G-"):
        errors.append(
            f"ga4.property_id must be the numeric property id (Admin > Property details), "
            f"not the measurement id {pid!r}"
        )
    elif not pid.isdigit():
        errors.append(f"ga4.property_id must be the numeric property id, not {pid!r}")
    has_json, has_path = bool(block.get("credentials_json")), bool(block.get("credentials_path"))
    if has_json and has_path:
        errors.append("set ga4.credentials_json or ga4.credentials_path, not both")
    elif not (has_json or has_path or block.get("api_endpoint")):
        errors.append(
            "ga4.credentials_json or ga4.credentials_path is required to read GA4 reports"
        )
    if has_json:
        try:
            info = json.loads(str(block["credentials_json"]))
        except ValueError:
            info = None
        if not isinstance(info, dict) or "type" not in info:
            errors.append(
                "ga4.credentials_json must be the JSON content of a service-account key "
                "(or OAuth authorized_user) file"
            )
    if has_path and not Path(str(block["credentials_path"])).expanduser().is_file():
        errors.append(f"ga4.credentials_path is not a file: {block['credentials_path']!r}")
    errors += whole_number_errors(block, "ga4", "page_size", 1)
    size = block.get("page_size")
    if isinstance(size, int) and size > MAX_PAGE_SIZE:
        errors.append(f"ga4.page_size must be at most {MAX_PAGE_SIZE}, not {size}")
    errors.extend(_report_errors(block.get("reports")))
    return errors


def _report_errors(reports: object) -> list[str]:
    if reports is None:
        return []
    if not isinstance(reports, list):
        return ["ga4.reports must be a list of reports (name, dimensions, metrics)"]
    errors: list[str] = []
    seen: set[str] = set()
    for index, report in enumerate(reports):
        where = f"ga4.reports[{index}]"
        if not isinstance(report, dict):
            errors.append(f"{where} must be an object with name, dimensions and metrics")
            continue
        name = report.get("name")
        if not isinstance(name, str) or not REPORT_NAME.fullmatch(name):
            errors.append(f"{where}.name must be snake_case, not {name!r}")
        elif name in seen:
            errors.append(f"{where}.name {name!r} is used by another report")
        else:
            seen.add(name)
        metrics = report.get("metrics")
        dimensions = report.get("dimensions") or []
        if not isinstance(metrics, list) or not all(isinstance(m, str) for m in metrics):
            errors.append(f"{where}.metrics must be a list of metric names")
        else:
            if len(metrics) > MAX_METRICS:
                errors.append(f"{where}.metrics: at most {MAX_METRICS} per report")
            if "eventCount" not in metrics:
                errors.append(
                    f"{where}.metrics must include eventCount (each row says how many "
                    "events it stands for)"
                )
        if not isinstance(dimensions, list) or not all(isinstance(d, str) for d in dimensions):
            errors.append(f"{where}.dimensions must be a list of dimension names")
        elif len(dimensions) > MAX_DIMENSIONS:
            errors.append(f"{where}.dimensions: at most {MAX_DIMENSIONS} per report")
    return errors


SETTINGS = SourceSettings(
    key="ga4",
    title="Google Analytics 4",
    description=(
        "GA4 BigQuery export (stream ga4_events) and Data API reports (a stream "
        "ga4_report_<name> per report)."
    ),
    schema=SCHEMA,
    groups=(
        ("export_url",),
        ("property_id", "credentials_json"),
        ("property_id", "credentials_path"),
    ),
    check=check,
)
