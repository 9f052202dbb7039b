"""Fake GA4 Data API v1beta, REST transport: ``POST /v1beta/properties/{id}:runReport``.

Follows the documented REST shapes (https://developers.google.com/analytics/devguides/
reporting/data/v1/rest/v1beta/properties/runReport): the request body is a ``RunReportRequest``
in camelCase JSON (int64 ``offset`` / ``limit`` as strings, defaults omitted), the response a
``RunReportResponse`` with ``dimensionHeaders``, ``metricHeaders``, ``rows`` of string values,
``rowCount`` (total rows, independent of the page), ``metadata`` (``currencyCode``,
``timeZone``) and, when ``returnPropertyQuota`` is set, ``propertyQuota``. Errors use Google's
JSON error body ``{"error": {"code", "message", "status"}}``.

The data is a list of facts: each a dict of dimension values (``date`` as ``YYYYMMDD``, in the
property's time zone) and metric values. A report aggregates them over the requested
dimensions inside the requested date range, as GA4 does.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any, Self
from urllib.parse import parse_qsl, urlsplit

from ._server import FakeHandler, FakeServer, _QuietServer

__all__ = ["FakeGA4"]

_PATH = re.compile(r"^/v1beta/properties/(?P<property>[^/:]+):runReport$")
_INTEGER_METRICS = {"eventCount", "sessions", "activeUsers", "screenPageViews", "addToCarts",
                    "ecommercePurchases", "itemsViewed", "itemsPurchased", "checkouts"}  # fmt: skip
_TIME_DIMENSIONS = {"date", "dateHour", "dateHourMinute"}
#: The API schema's names this fake knows (a subset of developers.google.com/analytics/
#: devguides/reporting/data/v1/api-schema); others get 400 INVALID_ARGUMENT, as from GA4.
_DIMENSIONS = _TIME_DIMENSIONS | {
    "hour", "minute", "eventName", "pagePath", "pageTitle", "pageLocation", "pageReferrer",
    "sessionSource", "sessionMedium", "sessionCampaignName", "deviceCategory", "country",
    "region", "city", "transactionId", "searchTerm", "itemId", "itemName", "percentScrolled",
    "platform", "browser", "operatingSystem", "landingPage", "hostName",
}  # fmt: skip
_METRICS = _INTEGER_METRICS | {"purchaseRevenue", "totalRevenue", "userEngagementDuration"}


def _day(value: str, today: date) -> date:
    if value == "today":
        return today
    if value == "yesterday":
        return date.fromordinal(today.toordinal() - 1)
    match = re.fullmatch(r"(\d+)daysAgo", value)
    if match:
        return date.fromordinal(today.toordinal() - int(match.group(1)))
    return date.fromisoformat(value)


class _Handler(FakeHandler):
    def do_POST(self) -> None:  # noqa: N802 - BaseHTTPRequestHandler's name
        parts = urlsplit(self.path)
        self.route = parts.path
        self.query = dict(parse_qsl(parts.query, keep_blank_values=True))
        length = int(self.headers.get("Content-Length") or 0)
        self.body = self.rfile.read(length)
        self.fake._dispatch(self)


class FakeGA4(FakeServer):
    """Fake ``runReport`` with paging, property quota and Google-style errors.

    Knobs (plain attributes, read on every request):
        tokens_per_hour: tokens left this hour; each request costs ``cost`` tokens, and a
            request with fewer tokens left gets 429 RESOURCE_EXHAUSTED.
        cost: tokens one request consumes.
        max_limit: the largest page the server returns (the API's is 250,000).
        drop_next: how many coming requests get their connection dropped, unanswered.
    """

    def __init__(
        self,
        facts: Sequence[dict[str, Any]],
        property_id: str = "123456789",
        time_zone: str = "America/New_York",
        currency: str = "USD",
        today: date = date(2024, 3, 10),
        tokens_per_hour: int = 40_000,
        cost: int = 5,
    ) -> None:
        super().__init__()
        self.facts = list(facts)
        self.property_id = property_id
        self.time_zone = time_zone
        self.currency = currency
        self.today = today
        self.tokens_per_hour = tokens_per_hour
        self.tokens_per_day = 200_000
        self.cost = cost
        self.max_limit = 250_000
        self.drop_next = 0
        self.bodies: list[dict[str, Any]] = []
        self._quota_lock = threading.Lock()

    def start(self) -> Self:
        """Start serving (with a handler that also accepts POST)."""
        if self._httpd is None:
            handler = type("Handler", (_Handler,), {"fake": self})
            self._httpd = _QuietServer(("127.0.0.1", 0), handler)
            self._thread = threading.Thread(
                target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
            )
            self._thread.start()
        return self

    @staticmethod
    def error(handler: FakeHandler, code: int, status: str, message: str) -> None:
        """Send Google's JSON error body."""
        handler.send_json(code, {"error": {"code": code, "message": message, "status": status}})

    def handle_request(self, handler: FakeHandler) -> None:
        """Serve ``runReport``."""
        if self.drop_next > 0:
            self.drop_next -= 1
            handler.abort()
            return
        match = _PATH.match(handler.route)
        if handler.command != "POST" or not match:
            self.error(handler, 404, "NOT_FOUND", f"unknown path {handler.route}")
            return
        if match.group("property") != self.property_id:
            self.error(handler, 403, "PERMISSION_DENIED",
                       "User does not have sufficient permissions for this property.")  # fmt: skip
            return
        try:
            body = json.loads(getattr(handler, "body", b"") or b"{}")
        except ValueError:
            self.error(handler, 400, "INVALID_ARGUMENT", "Invalid JSON payload received.")
            return
        self.bodies.append(body)
        with self._quota_lock:
            if self.tokens_per_hour < self.cost:
                self.error(handler, 429, "RESOURCE_EXHAUSTED",
                           "Exhausted property tokens per hour. Wait until the next hour.")  # fmt: skip
                return
            self.tokens_per_hour -= self.cost
            self.tokens_per_day -= self.cost
            quota = {
                "tokensPerDay": {"consumed": self.cost, "remaining": self.tokens_per_day},
                "tokensPerHour": {"consumed": self.cost, "remaining": self.tokens_per_hour},
                "concurrentRequests": {"consumed": 0, "remaining": 10},
                "serverErrorsPerProjectPerHour": {"consumed": 0, "remaining": 10},
                "potentiallyThresholdedRequestsPerHour": {"consumed": 0, "remaining": 120},
                "tokensPerProjectPerHour": {"consumed": self.cost, "remaining": self.tokens_per_hour},
            }  # fmt: skip
        try:
            response = self.run_report(body)
        except (KeyError, ValueError) as error:
            self.error(handler, 400, "INVALID_ARGUMENT", str(error))
            return
        if body.get("returnPropertyQuota"):
            response["propertyQuota"] = quota
        handler.send_json(200, response)

    def run_report(self, body: dict[str, Any]) -> dict[str, Any]:
        """The ``RunReportResponse`` JSON of one request."""
        dimensions = [d["name"] for d in body.get("dimensions", [])]
        metrics = [m["name"] for m in body.get("metrics", [])]
        if not metrics:
            raise ValueError("At least one metric is required.")
        for name in dimensions:
            if name not in _DIMENSIONS and not name.startswith(("customEvent:", "customUser:")):
                raise ValueError(f"Field {name} is not a valid dimension.")
        for name in metrics:
            if name not in _METRICS:
                raise ValueError(f"Field {name} is not a valid metric.")
        ranges = body.get("dateRanges") or []
        if not ranges:
            raise ValueError("dateRanges are required.")
        totals: dict[tuple[str, ...], list[float]] = {}
        for fact in self.facts:
            day = datetime.strptime(fact["date"], "%Y%m%d").date()
            if not any(
                _day(r["startDate"], self.today) <= day <= _day(r["endDate"], self.today)
                for r in ranges
            ):
                continue
            key = tuple(self._dimension(fact, name) for name in dimensions)
            sums = totals.setdefault(key, [0.0] * len(metrics))
            for i, name in enumerate(metrics):
                sums[i] += float(fact.get(name, 0))
        keys = sorted(totals)
        offset = int(body.get("offset", "0"))  # int64: a JSON string
        limit = min(int(body.get("limit", "10000")), self.max_limit)
        rows = [
            {
                "dimensionValues": [{"value": v} for v in key],
                "metricValues": [
                    {"value": self._metric(name, value)}
                    for name, value in zip(metrics, totals[key], strict=True)
                ],
            }
            for key in keys[offset : offset + limit]
        ]
        response: dict[str, Any] = {
            "dimensionHeaders": [{"name": n} for n in dimensions],
            "metricHeaders": [
                {"name": n, "type": "TYPE_INTEGER" if n in _INTEGER_METRICS else "TYPE_FLOAT"}
                for n in metrics
            ],
            "metadata": {"currencyCode": self.currency, "timeZone": self.time_zone},
            "kind": "analyticsData#runReport",
        }
        if rows:  # proto3 JSON omits empty fields: no rows, no rowCount
            response["rows"] = rows
            response["rowCount"] = len(keys)
        return response

    @staticmethod
    def _dimension(fact: dict[str, Any], name: str) -> str:
        if name == "dateHour":
            return fact["date"] + f"{fact.get('hour', 0):02d}"
        if name == "dateHourMinute":
            return fact["date"] + f"{fact.get('hour', 0):02d}{fact.get('minute', 0):02d}"
        if name not in fact:
            return "(not set)"
        return str(fact[name])

    @staticmethod
    def _metric(name: str, value: float) -> str:
        return str(int(value)) if name in _INTEGER_METRICS else repr(value)
