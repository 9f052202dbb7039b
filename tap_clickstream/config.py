"""Tap settings: the declarative schema and the rules JSON schema cannot express."""

from __future__ import annotations

import typing as t
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from singer_sdk import typing as th

from tap_clickstream.events import EVENT_COLUMNS, parse_ts
from tap_clickstream.schema_objects import ITEM_FIELDS
from tap_clickstream.sources.amplitude import settings as amplitude
from tap_clickstream.sources.files import settings as files
from tap_clickstream.sources.mixpanel import settings as mixpanel

if t.TYPE_CHECKING:
    from collections.abc import Iterable

    from jsonschema import ValidationError

__all__ = ["CONFIG_SCHEMA", "SECRET_SETTINGS", "format_schema_errors", "validate_config"]

_API_URL = (
    "Base URL of the export API. Leave empty for the region's official host; "
    "set it for a proxy or a test server."
)

MIXPANEL = th.ObjectType(
    th.Property(
        "project_id",
        th.StringType,
        title="Project ID",
        description="Mixpanel project id (required with service accounts).",
    ),
    th.Property(
        "username",
        th.StringType,
        title="Service account username",
        description="Username of a Mixpanel service account with access to the project.",
    ),
    th.Property(
        "secret",
        th.StringType,
        secret=True,
        title="Service account secret",
        description="Secret of the service account.",
    ),
    th.Property(
        "region",
        th.StringType,
        default="us",
        allowed_values=list(mixpanel.EXPORT_HOSTS),
        title="Data residency",
        description="Where the project's data lives: us, eu or in.",
    ),
    th.Property("api_url", th.StringType, title="API URL", description=_API_URL),
    th.Property(
        "window_days",
        th.IntegerType,
        default=mixpanel.DEFAULT_WINDOW_DAYS,
        title="Window (days)",
        description="Days per export request. State is saved after each window.",
    ),
    th.Property(
        "lookback_days",
        th.IntegerType,
        default=mixpanel.DEFAULT_LOOKBACK_DAYS,
        title="Lookback (days)",
        description="Days before the bookmark read again on each sync, for late events.",
    ),
    th.Property(
        "project_timezone",
        th.StringType,
        default="UTC",
        title="Project timezone",
        description=(
            "IANA timezone of projects created before 2023 whose event times are local "
            "(e.g. America/New_York)."
        ),
    ),
    additional_properties=False,
)

AMPLITUDE = th.ObjectType(
    th.Property(
        "api_key", th.StringType, title="API key", description="Amplitude project API key."
    ),
    th.Property(
        "secret_key",
        th.StringType,
        secret=True,
        title="Secret key",
        description="Amplitude project secret key.",
    ),
    th.Property(
        "region",
        th.StringType,
        default="us",
        allowed_values=list(amplitude.EXPORT_HOSTS),
        title="Region",
        description="us, or eu for projects in Amplitude's EU data center.",
    ),
    th.Property("api_url", th.StringType, title="API URL", description=_API_URL),
    th.Property(
        "window_hours",
        th.IntegerType,
        default=amplitude.DEFAULT_WINDOW_HOURS,
        title="Window (hours)",
        description=(
            "Hours of upload time per export request; halved automatically when Amplitude "
            "says a window is too large."
        ),
    ),
    th.Property(
        "lookback_hours",
        th.IntegerType,
        default=amplitude.DEFAULT_LOOKBACK_HOURS,
        title="Lookback (hours)",
        description="Hours before the bookmark read again on each sync.",
    ),
    additional_properties=False,
)

FILES = th.ObjectType(
    th.Property(
        "paths",
        th.ArrayType(th.StringType),
        title="Paths",
        description="Glob patterns of event files (** allowed). Empty: the bundled REES46 sample.",
    ),
    th.Property(
        "format",
        th.StringType,
        default="auto",
        allowed_values=list(files.FORMATS),
        title="Format",
        description=(
            "jsonl, csv or parquet; auto picks by file name (.gz allowed for jsonl and csv)."
        ),
    ),
    th.Property(
        "mapping",
        th.ObjectType(additional_properties=True),
        title="Column mapping",
        description=(
            'Canonical field -> column, e.g. {"event_ts": "time", "items.item_id": "sku"}. '
            "Empty when rows are canonical events already. Unmapped columns go to properties."
        ),
    ),
    th.Property(
        "csv_delimiter",
        th.StringType,
        default=",",
        title="CSV delimiter",
        description="Field separator of CSV files (.tsv files always use tabs).",
    ),
    additional_properties=False,
)

CONFIG_SCHEMA: dict[str, t.Any] = th.PropertiesList(
    th.Property(
        "start_date",
        th.DateTimeType,
        title="Start date",
        description="Earliest event time to sync on the first run (default: 30 days ago).",
    ),
    th.Property(
        "end_date",
        th.DateTimeType,
        title="End date",
        description="Latest event time to sync, for a bounded backfill (default: now).",
    ),
    th.Property(
        "event_map",
        th.ObjectType(additional_properties=True),
        title="Event map",
        description=(
            'Raw event name -> canonical event type, e.g. {"Checkout Done": "purchase"}; '
            "wins over the built-in crosswalk."
        ),
    ),
    th.Property(
        "mixpanel",
        MIXPANEL,
        title="Mixpanel",
        description="Mixpanel raw event export (stream mixpanel_events).",
    ),
    th.Property(
        "amplitude",
        AMPLITUDE,
        title="Amplitude",
        description="Amplitude Export API (stream amplitude_events).",
    ),
    th.Property(
        "files",
        FILES,
        title="Event files",
        description=(
            "Event files (stream file_events). Also the embedded default when no source "
            "is configured."
        ),
    ),
).to_dict()

#: Dotted names of the settings whose values must never be shown.
SECRET_SETTINGS: frozenset[str] = frozenset({"mixpanel.secret", "amplitude.secret_key"})

#: Canonical fields a file column can be mapped to.
_MAPPABLE = frozenset(EVENT_COLUMNS) | {f"items.{name}" for name in ITEM_FIELDS}


def format_schema_errors(errors: Iterable[ValidationError]) -> list[str]:
    """Word JSON-schema errors as one message per setting, never showing a secret's value.

    Args:
        errors: the validator's errors for a config.

    Returns:
        Messages that start with the dotted setting name, e.g. ``mixpanel.region: ...``.
    """
    messages = []
    for error in errors:
        name = ".".join(str(part) for part in error.absolute_path) or "settings"
        if any(name == s or name.startswith(f"{s}.") for s in SECRET_SETTINGS):
            messages.append(f"{name}: the value is not valid ({error.validator} check failed)")
        else:
            messages.append(f"{name}: {error.message}")
    return messages


def _block(config: t.Mapping[str, t.Any], name: str) -> dict[str, t.Any] | None:
    value = config.get(name)
    return value if isinstance(value, dict) and value else None


def _whole_number(
    block: dict[str, t.Any], prefix: str, name: str, minimum: int, errors: list[str]
) -> None:
    value = block.get(name)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        errors.append(
            f"{prefix}.{name} must be a whole number of at least {minimum}, not {value!r}"
        )


def validate_config(config: t.Mapping[str, t.Any]) -> list[str]:
    """Return one message per wrong setting (empty when the settings are right).

    Covers the rules JSON schema cannot express; it tolerates a config of the wrong shape
    (those errors are the schema's to report). Secret values never appear in a message.
    """
    errors: list[str] = []
    dates = {}
    for name in ("start_date", "end_date"):
        if config.get(name):
            try:
                dates[name] = parse_ts(config[name])
            except ValueError:
                errors.append(f"{name} must be an ISO-8601 date or time, not {config[name]!r}")
    if len(dates) == 2 and dates["start_date"] > dates["end_date"]:
        errors.append("start_date is later than end_date")
    event_map = config.get("event_map") or {}
    if isinstance(event_map, dict):
        for raw, kind in event_map.items():
            if not isinstance(kind, str) or not kind.strip():
                errors.append(f"event_map[{raw!r}] must name a canonical event type, not {kind!r}")
    mp = _block(config, "mixpanel")
    if mp is not None:
        for name in ("project_id", "username", "secret"):
            if not mp.get(name):
                errors.append(f"mixpanel.{name} is required to read the Mixpanel export")
        if mp.get("project_id") and not str(mp["project_id"]).isdigit():
            errors.append(
                f"mixpanel.project_id must be the numeric project id, not {mp['project_id']!r}"
            )
        zone = mp.get("project_timezone") or "UTC"
        try:
            ZoneInfo(str(zone))
        except (ZoneInfoNotFoundError, ValueError):
            errors.append(f"mixpanel.project_timezone is not an IANA timezone: {zone!r}")
        _whole_number(mp, "mixpanel", "window_days", 1, errors)
        _whole_number(mp, "mixpanel", "lookback_days", 0, errors)
    amp = _block(config, "amplitude")
    if amp is not None:
        for name in ("api_key", "secret_key"):
            if not amp.get(name):
                errors.append(f"amplitude.{name} is required to read the Amplitude export")
        _whole_number(amp, "amplitude", "window_hours", 1, errors)
        _whole_number(amp, "amplitude", "lookback_hours", 0, errors)
    fl = _block(config, "files")
    if fl is not None:
        errors.extend(_files_errors(fl))
    return errors


def _files_errors(fl: dict[str, t.Any]) -> list[str]:
    errors = []
    paths = fl.get("paths")
    if paths is not None and (
        not isinstance(paths, list) or not all(isinstance(p, str) and p for p in paths)
    ):
        errors.append("files.paths must be a list of glob patterns")
    mapping = fl.get("mapping") or {}
    if not isinstance(mapping, dict):
        return errors
    unknown = sorted(str(field) for field in mapping if field not in _MAPPABLE)
    if unknown:
        errors.append(f"files.mapping has keys that are not canonical fields: {', '.join(unknown)}")
    not_columns = sorted(str(field) for field, col in mapping.items() if not isinstance(col, str))
    if not_columns:
        errors.append(f"files.mapping must give a column name for: {', '.join(not_columns)}")
    if mapping and "event_ts" not in mapping:
        errors.append("files.mapping must map event_ts to the column holding the event time")
    if mapping and not ({"event_name", "event_type"} & set(mapping)):
        errors.append("files.mapping must map event_name (or event_type) to a column")
    delimiter = fl.get("csv_delimiter")
    if delimiter is not None and (not isinstance(delimiter, str) or len(delimiter) != 1):
        errors.append(f"files.csv_delimiter must be one character, not {delimiter!r}")
    return errors
