"""GA4 Data API client: credentials, the REST client, quota and error handling.

Uses Google's ``google-analytics-data`` client over its REST transport (one code path for
Google's host and for a local test server set with ``ga4.api_endpoint``).
"""

from __future__ import annotations

import json
import typing as t

from singer_sdk.exceptions import FatalAPIError

from tap_clickstream.sources.ga4 import settings

if t.TYPE_CHECKING:
    from google.analytics.data_v1beta import BetaAnalyticsDataClient
    from google.analytics.data_v1beta.types import PropertyQuota

__all__ = ["QUOTA_BUCKETS", "build_client", "exhausted_buckets", "is_quota_error"]

_SCOPES = ["https://www.googleapis.com/auth/analytics.readonly"]
#: The token buckets a request draws on; when one runs dry, no request goes through.
QUOTA_BUCKETS = ("tokens_per_hour", "tokens_per_day", "tokens_per_project_per_hour")
#: Quota messages that mean "wait for the next hour or day", not "retry in a moment".
_TOKEN_QUOTA_WORDS = ("tokens per", "tokens_per", "tokensper")


def _credentials(block: t.Mapping[str, t.Any]) -> t.Any:
    """The credentials of ``ga4.credentials_json`` or ``ga4.credentials_path``.

    A service-account key or an OAuth ``authorized_user`` file; anonymous credentials when
    neither is set (only sensible with ``ga4.api_endpoint`` pointing at a test server).

    Raises:
        FatalAPIError: when the credentials cannot be read (the value is never shown).
    """
    from google.auth.credentials import AnonymousCredentials  # noqa: PLC0415
    from google.oauth2 import credentials as oauth  # noqa: PLC0415
    from google.oauth2 import service_account  # noqa: PLC0415

    raw = block.get("credentials_json")
    try:
        if raw:
            info = json.loads(raw) if isinstance(raw, str) else dict(raw)
        elif block.get("credentials_path"):
            with open(block["credentials_path"], encoding="utf-8") as handle:  # noqa: PTH123
                info = json.load(handle)
        else:
            return AnonymousCredentials()  # type: ignore[no-untyped-call]
        if info.get("type") == "authorized_user":
            return oauth.Credentials.from_authorized_user_info(  # type: ignore[no-untyped-call]
                info, scopes=_SCOPES
            )
        return service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
            info, scopes=_SCOPES
        )
    except (OSError, ValueError, KeyError, TypeError) as error:
        setting = "ga4.credentials_json" if raw else "ga4.credentials_path"
        raise FatalAPIError(
            f"{setting} does not hold a service-account key or an OAuth authorized_user "
            f"file ({type(error).__name__})"
        ) from None


def build_client(block: t.Mapping[str, t.Any]) -> BetaAnalyticsDataClient:
    """A Data API client for the ``ga4`` settings block."""
    from google.analytics.data_v1beta import BetaAnalyticsDataClient  # noqa: PLC0415

    endpoint = block.get("api_endpoint") or settings.DATA_API_ENDPOINT
    return BetaAnalyticsDataClient(
        credentials=_credentials(block),
        transport="rest",
        client_options={"api_endpoint": str(endpoint).rstrip("/")},
    )


def exhausted_buckets(quota: PropertyQuota | None, reserve: int) -> list[str]:
    """The token buckets with fewer than ``reserve`` tokens left, from ``propertyQuota``."""
    if quota is None:
        return []
    low = []
    for bucket in QUOTA_BUCKETS:
        status = getattr(quota, bucket, None)
        # An absent bucket reads as remaining 0 and consumed 0: only a consumed one counts.
        if (
            status is not None
            and (status.consumed or status.remaining)
            and status.remaining < reserve
        ):
            low.append(bucket)
    return low


def is_quota_error(error: BaseException) -> bool:
    """Whether an API error says a token bucket is empty (wait an hour), not a brief limit."""
    from google.api_core import exceptions  # noqa: PLC0415

    if not isinstance(error, exceptions.TooManyRequests | exceptions.ResourceExhausted):
        return False
    text = str(error).lower().replace(" ", "")
    return any(word.replace(" ", "") in text for word in _TOKEN_QUOTA_WORDS)
