"""Amplitude settings (the ``amplitude`` block) and constants: export hosts by region."""

from __future__ import annotations

import typing as t

from singer_sdk import typing as th

from tap_clickstream.source_settings import (
    API_URL_DESCRIPTION,
    SourceSettings,
    whole_number_errors,
)

EXPORT_HOSTS = {
    "us": "https://amplitude.com",
    "eu": "https://analytics.eu.amplitude.com",
}
EXPORT_PATH = "/api/2/export"
HOUR_FORMAT = "%Y%m%dT%H"
#: Amplitude makes events exportable about two hours after it receives them.
SETTLE_HOURS = 2
#: How often one window is re-requested after a dropped download.
WINDOW_ATTEMPTS = 3
#: Spooled downloads stay in memory up to this size, then move to a temporary file.
SPOOL_MEMORY_BYTES = 8 << 20

SCHEMA = th.ObjectType(
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
        allowed_values=list(EXPORT_HOSTS),
        title="Region",
        description="us, or eu for projects in Amplitude's EU data center.",
    ),
    th.Property("api_url", th.StringType, title="API URL", description=API_URL_DESCRIPTION),
    th.Property(
        "window_hours",
        th.IntegerType,
        default=24,
        title="Window (hours)",
        description=(
            "Hours of upload time per export request; halved automatically when Amplitude "
            "says a window is too large."
        ),
    ),
    th.Property(
        "lookback_hours",
        th.IntegerType,
        default=6,
        title="Lookback (hours)",
        description="Hours before the bookmark read again on each sync.",
    ),
    additional_properties=False,
)


def check(block: dict[str, t.Any]) -> list[str]:
    """The Amplitude rules JSON schema cannot express."""
    errors = [
        f"amplitude.{name} is required to read the Amplitude export"
        for name in ("api_key", "secret_key")
        if not block.get(name)
    ]
    errors += whole_number_errors(block, "amplitude", "window_hours", 1)
    errors += whole_number_errors(block, "amplitude", "lookback_hours", 0)
    return errors


SETTINGS = SourceSettings(
    key="amplitude",
    title="Amplitude",
    description="Amplitude Export API (stream amplitude_events).",
    schema=SCHEMA,
    groups=(("api_key", "secret_key"),),
    check=check,
)
