"""Mixpanel constants: export hosts by data residency, and defaults."""

from __future__ import annotations

#: Raw export hosts by data residency (``mixpanel.region``).
EXPORT_HOSTS = {
    "us": "https://data.mixpanel.com",
    "eu": "https://data-eu.mixpanel.com",
    "in": "https://data-in.mixpanel.com",
}
EXPORT_PATH = "/api/2.0/export"
DEFAULT_WINDOW_DAYS = 7
DEFAULT_LOOKBACK_DAYS = 2
DEFAULT_HISTORY_DAYS = 30
#: Times above this are milliseconds (``time_in_ms``), below it seconds.
MS_THRESHOLD = 100_000_000_000
#: How often one window is re-requested after a dropped or cut-short export.
WINDOW_ATTEMPTS = 3
