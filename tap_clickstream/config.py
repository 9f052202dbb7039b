"""Tap settings: the shared ones, one block per source, and a table-driven check of them all.

Each source's block (its settings, defaults and rules) lives in ``sources/<name>/settings.py``;
this module assembles them and checks what is shared (the dates, the event map).
"""

from __future__ import annotations

import typing as t

from singer_sdk import typing as th

from tap_clickstream.events import parse_ts
from tap_clickstream.source_settings import DEFAULT_HISTORY_DAYS
from tap_clickstream.sources.amplitude.settings import SETTINGS as AMPLITUDE
from tap_clickstream.sources.catalog.settings import SETTINGS as CATALOG
from tap_clickstream.sources.files.settings import SETTINGS as FILES
from tap_clickstream.sources.ga4.settings import SETTINGS as GA4
from tap_clickstream.sources.mixpanel.settings import SETTINGS as MIXPANEL
from tap_clickstream.sources.snowplow.settings import SETTINGS as SNOWPLOW

if t.TYPE_CHECKING:
    from collections.abc import Iterable

    from jsonschema import ValidationError

    from tap_clickstream.source_settings import SourceSettings

__all__ = [
    "CONFIG_SCHEMA",
    "SECRET_SETTINGS",
    "SOURCES",
    "format_schema_errors",
    "validate_config",
]

#: Every source's settings block, in the order of the settings.
SOURCES: tuple[SourceSettings, ...] = (MIXPANEL, AMPLITUDE, GA4, FILES, SNOWPLOW, CATALOG)

CONFIG_SCHEMA: dict[str, t.Any] = th.PropertiesList(
    th.Property(
        "start_date",
        th.DateTimeType,
        title="Start date",
        description=(
            f"Earliest event time to sync on the first run (default: {DEFAULT_HISTORY_DAYS} "
            "days ago)."
        ),
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
    *(
        th.Property(source.key, source.schema, title=source.title, description=source.description)
        for source in SOURCES
    ),
).to_dict()

#: Dotted names of the settings whose values must never be shown.
SECRET_SETTINGS: frozenset[str] = frozenset().union(*(source.secrets for source in SOURCES))


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


def validate_config(config: t.Mapping[str, t.Any]) -> list[str]:
    """Return one message per wrong setting (empty when the settings are right).

    Covers the rules JSON schema cannot express; it tolerates a config of the wrong shape
    (those errors are the schema's to report). A source's block is checked when it holds
    anything besides its defaults. Secret values never appear in a message.
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
    for source in SOURCES:
        errors += source.errors(config)
    return errors
