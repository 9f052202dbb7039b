"""Amplitude constants: export hosts by region, and defaults."""

from __future__ import annotations

EXPORT_HOSTS = {
    "us": "https://amplitude.com",
    "eu": "https://analytics.eu.amplitude.com",
}
EXPORT_PATH = "/api/2/export"
HOUR_FORMAT = "%Y%m%dT%H"
DEFAULT_WINDOW_HOURS = 24
DEFAULT_LOOKBACK_HOURS = 6
DEFAULT_HISTORY_DAYS = 30
#: Amplitude makes events exportable about two hours after it receives them.
SETTLE_HOURS = 2
#: How often one window is re-requested after a dropped download.
WINDOW_ATTEMPTS = 3
#: Spooled downloads stay in memory up to this size, then move to a temporary file.
SPOOL_MEMORY_BYTES = 8 << 20
