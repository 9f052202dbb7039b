"""Mixpanel export client: host, authentication and request parameters."""

from __future__ import annotations

import typing as t

from singer_sdk.authenticators import BasicAuthenticator
from typing_extensions import override

from tap_clickstream.sources.mixpanel import settings
from tap_clickstream.streams import ExportAPIStream

if t.TYPE_CHECKING:
    from singer_sdk.helpers.types import Context


class MixpanelStream(ExportAPIStream):
    """Base stream for Mixpanel's raw export API (service-account Basic auth)."""

    source_settings = settings.SETTINGS
    auth_settings = "mixpanel.username, mixpanel.secret and mixpanel.project_id"
    path = settings.EXPORT_PATH
    export_hosts = settings.EXPORT_HOSTS

    @property
    @override
    def authenticator(self) -> BasicAuthenticator:
        return BasicAuthenticator(
            username=self.settings.get("username", ""),
            password=self.settings.get("secret", ""),
        )

    @property
    @override
    def http_headers(self) -> dict[str, str]:
        return {**super().http_headers, "Accept": "text/plain", "Accept-Encoding": "gzip"}

    @override
    def get_url_params(self, context: Context | None, next_page_token: t.Any) -> dict[str, t.Any]:
        window = context or {}  # always called with a window
        return {
            "project_id": self.settings.get("project_id"),
            "from_date": window["from_date"],
            "to_date": window["to_date"],
        }

    @override
    def settings_hint(self, status: int, detail: str) -> str | None:
        text = detail.lower()
        if "project" in text:
            return "mixpanel.project_id"
        if "date" in text:
            return "start_date, end_date and mixpanel.project_timezone"
        if status == 402:
            return "that the Mixpanel plan of mixpanel.project_id includes the export API"
        if status == 404:
            return "mixpanel.region and mixpanel.api_url"
        return "mixpanel.project_id, mixpanel.region and mixpanel.api_url"
