"""Amplitude export client: host, authentication, and window-size errors."""

from __future__ import annotations

import typing as t

from singer_sdk.authenticators import BasicAuthenticator
from typing_extensions import override

from tap_clickstream.exceptions import WindowTooLargeError
from tap_clickstream.sources.amplitude import settings
from tap_clickstream.streams import ExportAPIStream

if t.TYPE_CHECKING:
    import requests
    from singer_sdk.helpers.types import Context


class AmplitudeStream(ExportAPIStream):
    """Base stream for Amplitude's Export API (Basic auth with API key and secret key)."""

    source_settings = settings.SETTINGS
    auth_settings = "amplitude.api_key, amplitude.secret_key and amplitude.region"
    path = settings.EXPORT_PATH
    export_hosts = settings.EXPORT_HOSTS
    # 404 is Amplitude's answer for a window without data.
    empty_statuses = frozenset({404})

    @property
    @override
    def authenticator(self) -> BasicAuthenticator:
        return BasicAuthenticator(
            username=self.settings.get("api_key", ""),
            password=self.settings.get("secret_key", ""),
        )

    @override
    def get_url_params(self, context: Context | None, next_page_token: t.Any) -> dict[str, t.Any]:
        window = context or {}  # always called with a window
        return {"start": window["start"], "end": window["end"]}

    @override
    def validate_response(self, response: requests.Response) -> None:
        # 400 means the export would exceed 4 GB, 504 that it timed out: both ask for a
        # smaller window, which the stream does by splitting.
        if response.status_code in {400, 504}:
            raise WindowTooLargeError(self.response_error_message(response))
        super().validate_response(response)

    @override
    def settings_hint(self, status: int, detail: str) -> str | None:
        return "amplitude.region and amplitude.api_url"
