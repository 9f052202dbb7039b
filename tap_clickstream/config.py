"""Tap settings: the declarative schema and the rules JSON schema cannot express."""

from __future__ import annotations

import typing as t
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from singer_sdk import typing as th

from tap_clickstream.events import parse_ts
from tap_clickstream.sources.amplitude import settings as amplitude
from tap_clickstream.sources.files import settings as files
from tap_clickstream.sources.mixpanel import settings as mixpanel

__all__ = ["CONFIG_SCHEMA", "validate_config"]

_API_URL = "Base URL of the export API. Leave empty for the region's official host; set it for a proxy or a test server."

MIXPANEL = th.ObjectType(
    th.Property("project_id", th.StringType, title="Project ID", description="Mixpanel project id (required with service accounts)."),
    th.Property("username", th.StringType, title="Service account username", description="Username of a Mixpanel service account with access to the project."),
    th.Property("secret", th.StringType, secret=True, title="Service account secret", description="Secret of the service account."),
    th.Property("region", th.StringType, default="us", allowed_values=list(mixpanel.EXPORT_HOSTS), title="Data residency", description="Where the project's data lives: us, eu or in."),
    th.Property("api_url", th.StringType, title="API URL", description=_API_URL),
    th.Property("window_days", th.IntegerType, default=mixpanel.DEFAULT_WINDOW_DAYS, title="Window (days)", description="Days per export request. State is saved after each window."),
    th.Property("lookback_days", th.IntegerType, default=mixpanel.DEFAULT_LOOKBACK_DAYS, title="Lookback (days)", description="Days before the bookmark read again on each sync, for late events."),
    th.Property("project_timezone", th.StringType, default="UTC", title="Project timezone", description="IANA timezone of projects created before 2023 whose event times are local (e.g. America/New_York)."),
    additional_properties=False,
)

AMPLITUDE = th.ObjectType(
    th.Property("api_key", th.StringType, title="API key", description="Amplitude project API key."),
    th.Property("secret_key", th.StringType, secret=True, title="Secret key", description="Amplitude project secret key."),
    th.Property("region", th.StringType, default="us", allowed_values=list(amplitude.EXPORT_HOSTS), title="Region", description="us, or eu for projects in Amplitude's EU data center."),
    th.Property("api_url", th.StringType, title="API URL", description=_API_URL),
    th.Property("window_hours", th.IntegerType, default=amplitude.DEFAULT_WINDOW_HOURS, title="Window (hours)", description="Hours of upload time per export request; halved automatically when Amplitude says a window is too large."),
    th.Property("lookback_hours", th.IntegerType, default=amplitude.DEFAULT_LOOKBACK_HOURS, title="Lookback (hours)", description="Hours before the bookmark read again on each sync."),
    additional_properties=False,
)

FILES = th.ObjectType(
    th.Property("paths", th.ArrayType(th.StringType), title="Paths", description="Glob patterns of event files (** allowed). Empty: the bundled REES46 sample."),
    th.Property("format", th.StringType, default="auto", allowed_values=list(files.FORMATS), title="Format", description="jsonl, csv or parquet; auto picks by file name (.gz allowed for jsonl and csv)."),
    th.Property("mapping", th.ObjectType(additional_properties=True), title="Column mapping", description="Canonical field -> column, e.g. {\"event_ts\": \"time\", \"items.item_id\": \"sku\"}. Empty when rows are canonical events already. Unmapped columns go to properties."),
    th.Property("csv_delimiter", th.StringType, default=",", title="CSV delimiter", description="Field separator of CSV files (.tsv files always use tabs)."),
    additional_properties=False,
)

CONFIG_SCHEMA: dict[str, t.Any] = th.PropertiesList(
    th.Property("start_date", th.DateTimeType, title="Start date", description="Earliest event time to sync on the first run (default: 30 days ago)."),
    th.Property("end_date", th.DateTimeType, title="End date", description="Latest event time to sync, for a bounded backfill (default: now)."),
    th.Property("event_map", th.ObjectType(additional_properties=True), title="Event map", description="Raw event name -> canonical event type, e.g. {\"Checkout Done\": \"purchase\"}; wins over the built-in crosswalk."),
    th.Property("mixpanel", MIXPANEL, title="Mixpanel", description="Mixpanel raw event export (stream mixpanel_events)."),
    th.Property("amplitude", AMPLITUDE, title="Amplitude", description="Amplitude Export API (stream amplitude_events)."),
    th.Property("files", FILES, title="Event files", description="Event files (stream file_events). Also the embedded default when no source is configured."),
).to_dict()


def _positive(config: dict[str, t.Any], block: str, name: str, errors: list[str]) -> None:
    value = (config.get(block) or {}).get(name)
    if value is not None and (not isinstance(value, int) or value < (0 if "lookback" in name else 1)):
        errors.append(f"{block}.{name} must be a whole number of at least {0 if 'lookback' in name else 1}, not {value!r}")


def validate_config(config: dict[str, t.Any]) -> list[str]:
    """Return one message per wrong setting (empty when the settings are right)."""
    errors: list[str] = []
    for name in ("start_date", "end_date"):
        if config.get(name):
            try:
                parse_ts(config[name])
            except ValueError:
                errors.append(f"{name} must be an ISO-8601 date or time, not {config[name]!r}")
    if not errors and config.get("start_date") and config.get("end_date"):
        if parse_ts(config["start_date"]) > parse_ts(config["end_date"]):
            errors.append("start_date is later than end_date")
    event_map = config.get("event_map") or {}
    for raw, kind in event_map.items():
        if not isinstance(kind, str) or not kind:
            errors.append(f"event_map[{raw!r}] must name a canonical event type, not {kind!r}")
    mp = config.get("mixpanel")
    if mp:
        for name in ("project_id", "username", "secret"):
            if not mp.get(name):
                errors.append(f"mixpanel.{name} is required to read the Mixpanel export")
        if mp.get("project_id") and not str(mp["project_id"]).isdigit():
            errors.append(f"mixpanel.project_id must be the numeric project id, not {mp['project_id']!r}")
        try:
            ZoneInfo(mp.get("project_timezone") or "UTC")
        except (ZoneInfoNotFoundError, ValueError):
            errors.append(f"mixpanel.project_timezone is not an IANA timezone: {mp.get('project_timezone')!r}")
        _positive(config, "mixpanel", "window_days", errors)
        _positive(config, "mixpanel", "lookback_days", errors)
    amp = config.get("amplitude")
    if amp:
        for name in ("api_key", "secret_key"):
            if not amp.get(name):
                errors.append(f"amplitude.{name} is required to read the Amplitude export")
        _positive(config, "amplitude", "window_hours", errors)
        _positive(config, "amplitude", "lookback_hours", errors)
    fl = config.get("files")
    if fl:
        paths = fl.get("paths")
        if paths is not None and (not isinstance(paths, list) or not all(isinstance(p, str) for p in paths)):
            errors.append("files.paths must be a list of glob patterns")
        mapping = fl.get("mapping") or {}
        if mapping and "event_ts" not in mapping:
            errors.append("files.mapping must map event_ts to the column holding the event time")
        if mapping and not ({"event_name", "event_type"} & set(mapping)):
            errors.append("files.mapping must map event_name (or event_type) to a column")
    return errors
