"""Tap settings: the declarative schema and the rules JSON schema cannot express."""

from __future__ import annotations

import json
import typing as t
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from singer_sdk import typing as th

from tap_clickstream.events import EVENT_COLUMNS, parse_ts
from tap_clickstream.schema_objects import ITEM_FIELDS
from tap_clickstream.sources.amplitude import settings as amplitude
from tap_clickstream.sources.catalog import settings as catalog
from tap_clickstream.sources.files import settings as files
from tap_clickstream.sources.ga4 import settings as ga4
from tap_clickstream.sources.mixpanel import settings as mixpanel
from tap_clickstream.sources.snowplow import settings as snowplow

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

GA4 = th.ObjectType(
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
        default=ga4.DEFAULT_LOOKBACK_DAYS,
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
            "Data API host (default analyticsdata.googleapis.com); set it for a proxy or a "
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
        default=ga4.DEFAULT_PAGE_SIZE,
        title="Page size",
        description="Report rows per request (at most 250000).",
    ),
    additional_properties=False,
)

_SQLALCHEMY_URL = "SQLAlchemy URL of the {what}, e.g. {example}. Secret: it may hold a password."

SNOWPLOW = th.ObjectType(
    th.Property(
        "sqlalchemy_url",
        th.StringType,
        secret=True,
        title="Warehouse URL",
        description=_SQLALCHEMY_URL.format(
            what="warehouse holding the Snowplow events table",
            example="postgresql+psycopg://user:pass@host/db or snowflake://user@account/db",
        ),
    ),
    th.Property(
        "schema",
        th.StringType,
        default=snowplow.DEFAULT_SCHEMA,
        title="Schema",
        description="Schema (BigQuery: dataset) of the events table.",
    ),
    th.Property(
        "layout",
        th.StringType,
        default="auto",
        allowed_values=list(snowplow.LAYOUTS),
        title="Layout",
        description=(
            "wide (entities as contexts_* / unstruct_event_* columns: Snowflake, BigQuery, "
            "Databricks) or shredded (one table per entity: Redshift, Postgres); auto picks "
            "by the URL's dialect."
        ),
    ),
    th.Property(
        "lookback_hours",
        th.IntegerType,
        default=snowplow.DEFAULT_LOOKBACK_HOURS,
        title="Lookback (hours)",
        description="Hours of load time before the bookmark read again on each sync.",
    ),
    th.Property(
        "window_hours",
        th.IntegerType,
        default=snowplow.DEFAULT_WINDOW_HOURS,
        title="Window (hours)",
        description="Hours of load time per query. State is saved after each window.",
    ),
    additional_properties=False,
)

CATALOG = th.ObjectType(
    th.Property(
        "sqlalchemy_url",
        th.StringType,
        secret=True,
        title="Catalog database URL",
        description=_SQLALCHEMY_URL.format(
            what="database holding the catalog table", example="postgresql+psycopg://host/db"
        ),
    ),
    th.Property(
        "table",
        th.StringType,
        title="Catalog table",
        description="Table (or schema.table) of the catalog, with catalog.sqlalchemy_url.",
    ),
    th.Property(
        "path",
        th.StringType,
        title="Catalog file",
        description="A CSV, JSON-lines or Parquet catalog file, instead of a table.",
    ),
    th.Property(
        "mapping",
        th.ObjectType(additional_properties=True),
        title="Column mapping",
        description=(
            "Catalog field -> column, for fields whose column has another name, e.g. "
            '{"item_id": "sku", "available": "in_stock"}. Fields: '
            + ", ".join(catalog.FIELDS)
            + ". Unmapped columns go to properties."
        ),
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
        "ga4",
        GA4,
        title="Google Analytics 4",
        description=(
            "GA4 BigQuery export (stream ga4_events) and Data API reports (a stream "
            "ga4_report_<name> per report)."
        ),
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
    th.Property(
        "snowplow",
        SNOWPLOW,
        title="Snowplow",
        description="Snowplow atomic events in a SQL warehouse (stream snowplow_events).",
    ),
    th.Property(
        "catalog",
        CATALOG,
        title="Item catalog",
        description="Item catalog from a SQL table or a file (stream items).",
    ),
).to_dict()

#: Dotted names of the settings whose values must never be shown.
SECRET_SETTINGS: frozenset[str] = frozenset(
    {"mixpanel.secret", "amplitude.secret_key", "ga4.export_url", "ga4.credentials_json"}
)
#: Warehouse and catalog URLs can hold a password.
SECRET_SETTINGS = SECRET_SETTINGS | {"snowplow.sqlalchemy_url", "catalog.sqlalchemy_url"}

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
    sp = _block(config, "snowplow")
    if sp is not None:
        errors.extend(_snowplow_errors(sp))
    cat = _block(config, "catalog")
    if cat is not None:
        errors.extend(_catalog_errors(cat))
    fl = _block(config, "files")
    if fl is not None:
        errors.extend(_files_errors(fl))
    g4 = _block(config, "ga4")
    if g4 is not None:
        errors.extend(_ga4_errors(g4))
    return errors


def _ga4_errors(g4: dict[str, t.Any]) -> list[str]:
    errors: list[str] = []
    if not g4.get("export_url") and not g4.get("property_id"):
        errors.append(
            "ga4 needs ga4.export_url (BigQuery export) or ga4.property_id (Data API reports)"
        )
    url = g4.get("export_url")
    if url and (not isinstance(url, str) or "://" not in url):
        # The value may carry a password: never shown.
        errors.append("ga4.export_url must be a SQLAlchemy URL such as bigquery://project/dataset")
    _whole_number(g4, "ga4", "lookback_days", 0, errors)
    if g4.get("property_id"):
        errors.extend(_ga4_data_api_errors(g4))
    return errors


def _ga4_data_api_errors(g4: dict[str, t.Any]) -> list[str]:
    errors: list[str] = []
    pid = str(g4["property_id"]).strip()
    if pid.upper().startswith("G-"):
        errors.append(
            f"ga4.property_id must be the numeric property id (Admin > Property details), "
            f"not the measurement id {pid!r}"
        )
    elif not pid.isdigit():
        errors.append(f"ga4.property_id must be the numeric property id, not {pid!r}")
    has_json, has_path = bool(g4.get("credentials_json")), bool(g4.get("credentials_path"))
    if has_json and has_path:
        errors.append("set ga4.credentials_json or ga4.credentials_path, not both")
    elif not (has_json or has_path or g4.get("api_endpoint")):
        errors.append(
            "ga4.credentials_json or ga4.credentials_path is required to read GA4 reports"
        )
    if has_json:
        try:
            info = json.loads(str(g4["credentials_json"]))
        except ValueError:
            info = None
        if not isinstance(info, dict) or "type" not in info:
            errors.append(
                "ga4.credentials_json must be the JSON content of a service-account key "
                "(or OAuth authorized_user) file"
            )
    if has_path and not Path(str(g4["credentials_path"])).expanduser().is_file():
        errors.append(f"ga4.credentials_path is not a file: {g4['credentials_path']!r}")
    _whole_number(g4, "ga4", "page_size", 1, errors)
    size = g4.get("page_size")
    if isinstance(size, int) and size > ga4.MAX_PAGE_SIZE:
        errors.append(f"ga4.page_size must be at most {ga4.MAX_PAGE_SIZE}, not {size}")
    errors.extend(_ga4_report_errors(g4.get("reports")))
    return errors


def _ga4_report_errors(reports: object) -> list[str]:
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
        if not isinstance(name, str) or not ga4.REPORT_NAME.fullmatch(name):
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
            if len(metrics) > ga4.MAX_METRICS:
                errors.append(f"{where}.metrics: at most {ga4.MAX_METRICS} per report")
            if "eventCount" not in metrics:
                errors.append(
                    f"{where}.metrics must include eventCount (each row says how many "
                    "events it stands for)"
                )
        if not isinstance(dimensions, list) or not all(isinstance(d, str) for d in dimensions):
            errors.append(f"{where}.dimensions must be a list of dimension names")
        elif len(dimensions) > ga4.MAX_DIMENSIONS:
            errors.append(f"{where}.dimensions: at most {ga4.MAX_DIMENSIONS} per report")
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


def _sqlalchemy_url_errors(block: dict[str, t.Any], prefix: str) -> list[str]:
    value = block.get("sqlalchemy_url")
    if not isinstance(value, str) or "://" not in value:
        # The value may carry a password: never shown.
        return [f"{prefix}.sqlalchemy_url must be a SQLAlchemy URL such as postgresql://host/db"]
    return []


def _snowplow_errors(sp: dict[str, t.Any]) -> list[str]:
    errors: list[str] = []
    if not sp.get("sqlalchemy_url"):
        errors.append("snowplow.sqlalchemy_url is required to read the Snowplow events table")
    else:
        errors.extend(_sqlalchemy_url_errors(sp, "snowplow"))
    schema = sp.get("schema")
    if schema is not None and (not isinstance(schema, str) or not schema.strip()):
        errors.append(f"snowplow.schema must name a schema, not {schema!r}")
    _whole_number(sp, "snowplow", "lookback_hours", 0, errors)
    _whole_number(sp, "snowplow", "window_hours", 1, errors)
    return errors


def _catalog_errors(cat: dict[str, t.Any]) -> list[str]:
    errors: list[str] = []
    has_sql = bool(cat.get("sqlalchemy_url") or cat.get("table"))
    if cat.get("path") and has_sql:
        errors.append(
            "catalog: set catalog.path or catalog.sqlalchemy_url with catalog.table, not both"
        )
    elif cat.get("path"):
        path = str(cat["path"]).lower()
        if not any(path.endswith(suffix) for suffix in catalog.FORMATS):
            errors.append("catalog.path must be a .csv, .tsv, .jsonl or .parquet file")
    elif not cat.get("sqlalchemy_url"):
        errors.append("catalog.sqlalchemy_url (with catalog.table) or catalog.path is required")
    else:
        errors.extend(_sqlalchemy_url_errors(cat, "catalog"))
        if not cat.get("table"):
            errors.append("catalog.table is required with catalog.sqlalchemy_url")
    mapping = cat.get("mapping") or {}
    if isinstance(mapping, dict):
        unknown = sorted(str(k) for k in mapping if k not in catalog.FIELDS)
        if unknown:
            errors.append(
                f"catalog.mapping has keys that are not catalog fields: {', '.join(unknown)}"
            )
        bad = sorted(str(k) for k, v in mapping.items() if not isinstance(v, str) or not v)
        if bad:
            errors.append(f"catalog.mapping must give a column name for: {', '.join(bad)}")
    return errors
