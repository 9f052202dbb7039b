"""Run the tap: ``python -m tap_clickstream``."""

from __future__ import annotations

from tap_clickstream.tap import TapClickstream

TapClickstream.cli()
