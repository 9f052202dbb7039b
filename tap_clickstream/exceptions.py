"""Exceptions raised by tap-clickstream, each subclassing the SDK error it is handled as."""

from __future__ import annotations

from singer_sdk.exceptions import ConfigValidationError, FatalAPIError

__all__ = ["ClickstreamConfigError", "IncompleteExportError", "WindowTooLargeError"]


class ClickstreamConfigError(ConfigValidationError):
    """The settings are wrong; the message names each wrong setting."""


class IncompleteExportError(FatalAPIError):
    """An export broke off before its end (dropped connection, Mixpanel's 'terminated early')."""


class WindowTooLargeError(FatalAPIError):
    """The API refused a window as too large (Amplitude 400/504): split it and ask again."""
