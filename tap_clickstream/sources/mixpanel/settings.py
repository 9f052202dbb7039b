"""Mixpanel settings (the ``mixpanel`` block) and constants: export hosts by data residency."""

from __future__ import annotations

import typing as t
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from singer_sdk import typing as th

from tap_clickstream.source_settings import (
    API_URL_DESCRIPTION,
    SourceSettings,
    whole_number_errors,
)

#: Raw export hosts by data residency (``mixpanel.region``).
EXPORT_HOSTS = {
    "us": "https://data.mixpanel.com",
    "eu": "https://data-eu.mixpanel.com",
    "in": "https://data-in.mixpanel.com",
}
EXPORT_PATH = "/api/2.0/export"
#: Times above this are milliseconds (``time_in_ms``), below it seconds.
MS_THRESHOLD = 100_000_000_000
#: How often one window is re-requested after a dropped or cut-short export.
WINDOW_ATTEMPTS = 3

SCHEMA = th.ObjectType(
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
        allowed_values=list(EXPORT_HOSTS),
        title="Data residency",
        description="Where the project's data lives: us, eu or in.",
    ),
    th.Property("api_url", th.StringType, title="API URL", description=API_URL_DESCRIPTION),
    th.Property(
        "window_days",
        th.IntegerType,
        default=7,
        title="Window (days)",
        description="Days per export request. State is saved after each window.",
    ),
    th.Property(
        "lookback_days",
        th.IntegerType,
        default=2,
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


def check(block: dict[str, t.Any]) -> list[str]:
    """The Mixpanel rules JSON schema cannot express."""
    errors = [
        f"mixpanel.{name} is required to read the Mixpanel export"
        for name in ("project_id", "username", "secret")
        if not block.get(name)
    ]
    if block.get("project_id") and not str(block["project_id"]).isdigit():
        errors.append(
            f"mixpanel.project_id must be the numeric project id, not {block['project_id']!r}"
        )
    zone = block.get("project_timezone")
    try:
        ZoneInfo(str(zone))
    except (ZoneInfoNotFoundError, ValueError):
        errors.append(f"mixpanel.project_timezone is not an IANA timezone: {zone!r}")
    errors += whole_number_errors(block, "mixpanel", "window_days", 1)
    errors += whole_number_errors(block, "mixpanel", "lookback_days", 0)
    return errors


SETTINGS = SourceSettings(
    key="mixpanel",
    title="Mixpanel",
    description="Mixpanel raw event export (stream mixpanel_events).",
    schema=SCHEMA,
    groups=(("project_id", "username", "secret"),),
    check=check,
)
