"""GA4 streams: ``ga4_events`` (BigQuery export) and ``ga4_report_<name>`` (Data API reports)."""

from __future__ import annotations

import functools
import random
import time as clock
import typing as t
import warnings
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import requests
import sqlalchemy as sa
from singer_sdk.exceptions import FatalAPIError
from typing_extensions import override

from tap_clickstream.events import format_ts, parse_ts
from tap_clickstream.redact import redact
from tap_clickstream.source_settings import DEFAULT_HISTORY_DAYS
from tap_clickstream.sources.ga4 import settings
from tap_clickstream.sources.ga4.client import build_client, exhausted_buckets, is_quota_error
from tap_clickstream.sources.ga4.export import normalise_export_row
from tap_clickstream.sources.ga4.reports import RowContext, normalise_report_row
from tap_clickstream.streams import EventStream

if t.TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

    from google.analytics.data_v1beta import BetaAnalyticsDataClient
    from google.analytics.data_v1beta.types import RunReportResponse
    from singer_sdk import Tap
    from singer_sdk.helpers.types import Context

__all__ = [
    "GA4EventsStream",
    "GA4ReportStream",
    "ReportSession",
    "configured_reports",
    "export_tables",
    "ga4_streams",
]

#: ``MetricType.TYPE_INTEGER`` (the REST transport asks for enums as integers).
_TYPE_INTEGER = 1


def export_tables(names: t.Iterable[str], dataset: str | None = None) -> dict[str, dict[date, str]]:
    """Sort table names into ``{"daily": {day: name}, "intraday": {day: name}}``.

    Names may carry a dataset prefix (``analytics_123.events_20240301``, as BigQuery's
    dialect lists tables); with ``dataset`` given, prefixed names of other datasets (another
    property's export) are left out.
    """
    found: dict[str, dict[date, str]] = {"daily": {}, "intraday": {}}
    for name in names:
        prefix, _, last = name.rpartition(".")
        if prefix and dataset and prefix.rsplit(".", 1)[-1] != dataset:
            continue
        for kind, pattern in (
            ("daily", settings.DAILY_TABLE),
            ("intraday", settings.INTRADAY_TABLE),
        ):
            match = pattern.match(last)
            if match:
                try:
                    day = datetime.strptime(match.group(1), "%Y%m%d").date()
                except ValueError:
                    continue
                found[kind][day] = name
    return found


class GA4EventsStream(EventStream):
    """GA4 events from the BigQuery export's day tables, normalised to canonical events.

    The unit of state is the daily table ``events_YYYYMMDD``: the bookmark is the start (UTC
    midnight) of the day after the last daily table read whole. GA4 keeps updating daily
    tables for late events, so each sync reads the last ``ga4.lookback_days`` of them again;
    re-read events keep their id. ``events_intraday_*`` tables (``ga4.include_intraday``) are
    read for days without a daily table and never move the bookmark.
    """

    name = "ga4_events"
    source_settings = settings.SETTINGS
    replication_key = "event_ts"

    def days(self, context: Context | None) -> tuple[date, date]:
        """The first and last day (table suffix) this sync reads, inclusive."""
        bookmark = self.bookmark(context)
        today = self.sync_started_at.date()
        if bookmark:
            lookback = int(self.settings["lookback_days"])
            first = parse_ts(bookmark).date() - timedelta(days=max(0, lookback))
        elif self.config.get("start_date"):
            first = parse_ts(self.config["start_date"]).date()
        else:
            first = today - timedelta(days=DEFAULT_HISTORY_DAYS)
        last = today
        if self.config.get("end_date"):
            last = min(last, parse_ts(self.config["end_date"]).date())
        return first, last

    @override
    def read_events(self, context: Context | None) -> Iterator[dict[str, t.Any]]:
        url = self.settings.get("export_url")
        if not url:
            self.logger.info("ga4.export_url is not set: no GA4 export to read")
            return
        engine = sa.create_engine(str(url))
        try:
            with engine.connect() as connection:
                yield from self._read_tables(connection, context)
        finally:
            engine.dispose()

    def _read_tables(
        self, connection: sa.Connection, context: Context | None
    ) -> Iterator[dict[str, t.Any]]:
        inspector = sa.inspect(connection)
        # Views too: exports are often shared through (authorized) views.
        tables = export_tables(
            [*inspector.get_table_names(), *inspector.get_view_names()],
            connection.engine.url.database,
        )
        first, last = self.days(context)
        daily = {d: n for d, n in sorted(tables["daily"].items()) if first <= d <= last}
        intraday: dict[date, str] = {}
        if self.settings.get("include_intraday"):
            intraday = {
                d: n
                for d, n in sorted(tables["intraday"].items())
                if first <= d <= last and d not in tables["daily"]
            }
        self.logger.info(
            "GA4 export: %d daily and %d intraday tables from %s to %s",
            len(daily),
            len(intraday),
            first,
            last,
        )
        for day, table in daily.items():
            yield from self._read_table(connection, inspector, table)
            next_day = datetime.combine(day + timedelta(days=1), time(), UTC)
            self.complete_window(
                context, format_ts(min(next_day, self.sync_started_at)), last_table=table
            )
        for table in intraday.values():
            yield from self._read_table(connection, inspector, table)

    def _read_table(
        self, connection: sa.Connection, inspector: sa.Inspector, table: str
    ) -> Iterator[dict[str, t.Any]]:
        with warnings.catch_warnings():
            # Only the names are needed; dialects warn about the nested types they cannot map.
            warnings.simplefilter("ignore", sa.exc.SAWarning)
            present = {column["name"] for column in inspector.get_columns(table)}
        columns = [name for name in settings.EXPORT_COLUMNS if name in present]
        missing = {"event_timestamp", "event_name"} - present
        if missing:
            self.skip_bad_record(table, f"not a GA4 export table: no {', '.join(sorted(missing))}")
            return
        query = sa.select(*(sa.column(name) for name in columns)).select_from(sa.table(table))
        self.logger.info("Reading GA4 export table %s", table)
        result = connection.execution_options(yield_per=settings.EXPORT_FETCH_ROWS).execute(query)
        for row_no, row in enumerate(result.mappings(), start=1):
            try:
                event = normalise_export_row(
                    t.cast("Mapping[str, t.Any]", row), self.map_event_type
                )
            except (KeyError, TypeError, ValueError, AttributeError) as error:
                self.skip_bad_record(f"{table}, row {row_no}", f"invalid event: {error}")
                continue
            yield t.cast("dict[str, t.Any]", event)


def configured_reports(block: Mapping[str, t.Any]) -> list[dict[str, t.Any]]:
    """The reports of ``ga4.reports``, or the default event report when none is set."""
    reports = block.get("reports") or settings.DEFAULT_REPORTS
    return [dict(report) for report in reports if isinstance(report, dict)]


def ga4_streams(tap: Tap) -> list[EventStream]:
    """The export stream, and one report stream per configured report (with a property id).

    Reports without a valid, unique name are left out: discovery runs without the config
    check, which names them when the tap syncs.
    """
    block = settings.SETTINGS.with_defaults(tap.config)
    streams: list[EventStream] = [GA4EventsStream(tap=tap)]
    if block.get("property_id"):
        session = ReportSession(block)
        named: dict[str, dict[str, t.Any]] = {}
        for report in configured_reports(block):
            name = report.get("name")
            if isinstance(name, str) and settings.REPORT_NAME.fullmatch(name):
                named.setdefault(name, report)
        streams += [GA4ReportStream(tap, report, session) for report in named.values()]
    return streams


class ReportSession:
    """What the report streams of one run share: the Data API client, and the property's quota.

    Args:
        block: the ``ga4`` settings.
    """

    def __init__(self, block: Mapping[str, t.Any]) -> None:
        self.block = block
        #: Why requests stopped for this run (a token bucket ran low), if they did.
        self.quota_stop: str | None = None

    @functools.cached_property
    def client(self) -> BetaAnalyticsDataClient:
        """The Data API client (REST transport)."""
        return build_client(self.block)


class GA4ReportStream(EventStream):
    """Aggregate rows of one GA4 Data API report (``runReport``): stream ``ga4_report_<name>``.

    Each configured report (``ga4.reports``; by default ``events``: event counts per day,
    event, page and session source) is its own stream, so it can be selected on its own and
    keeps its own state. It is requested one property-local day at a time, paged by ``offset``
    up to the response's ``rowCount``; the bookmark advances once a day is read whole, and the
    last ``ga4.lookback_days`` days are read again, as GA4 restates them. Quota is read from
    every response (``returnPropertyQuota``) and shared by the report streams: when a token
    bucket runs low, or GA4 answers RESOURCE_EXHAUSTED for tokens, requests stop cleanly at
    the last whole day of each report and the next run resumes there.

    Args:
        tap: the tap.
        report: the report (name, dimensions, metrics).
        session: the client and quota shared with the other report streams.
    """

    source_settings = settings.SETTINGS
    replication_key = "event_ts"
    #: Tries per request on server errors and brief (concurrency) limits.
    max_tries: t.ClassVar[int] = 5
    #: First wait between tries, doubled each time (seconds).
    retry_wait: t.ClassVar[float] = 1.0

    def __init__(self, tap: Tap, report: Mapping[str, t.Any], session: ReportSession) -> None:
        self.report = dict(report)
        self.session = session
        super().__init__(tap=tap, name=f"ga4_report_{self.report['name']}")

    def days(self, saved: Mapping[str, t.Any], tz: ZoneInfo) -> list[date]:
        """The property-local days this sync requests for a report, oldest first.

        Args:
            saved: the report's state (``last_date``: the last day read whole).
            tz: the property's time zone.
        """
        today = self.sync_started_at.astimezone(tz).date()
        if saved.get("last_date"):
            lookback = int(self.settings["lookback_days"])
            first = date.fromisoformat(saved["last_date"]) + timedelta(days=1 - max(0, lookback))
        elif self.config.get("start_date"):
            first = parse_ts(self.config["start_date"]).astimezone(tz).date()
        else:
            first = today - timedelta(days=DEFAULT_HISTORY_DAYS)
        last = today
        if self.config.get("end_date"):
            last = min(last, parse_ts(self.config["end_date"]).astimezone(tz).date())
        return [first + timedelta(days=n) for n in range((last - first).days + 1)]

    @override
    def read_events(self, context: Context | None) -> Iterator[dict[str, t.Any]]:
        report = self.report
        if self.session.quota_stop:
            self.logger.warning(
                "GA4 report %s not read this run: %s", report["name"], self.session.quota_stop
            )
            return
        saved = self.get_context_state(context)
        tz = _zone(saved.get("time_zone"))
        for day in self.days(saved, tz):
            for response in self._pages(report, day):
                if response is None:
                    return  # quota: this day stays unfinished, the next run reads it again
                if response.metadata.time_zone:
                    tz = _zone(response.metadata.time_zone)
                yield from self._rows(report, day, tz, response)
            end = datetime.combine(day + timedelta(days=1), time(), tz).astimezone(UTC)
            self.complete_window(
                context,
                format_ts(min(end, self.sync_started_at)),
                last_date=day.isoformat(),
                time_zone=tz.key,
            )

    def _pages(self, report: dict[str, t.Any], day: date) -> Iterator[RunReportResponse | None]:
        """The responses for one report and day, page by page; None when quota stops us."""
        from google.analytics.data_v1beta.types import (  # noqa: PLC0415
            DateRange,
            Dimension,
            Metric,
            RunReportRequest,
        )

        page_size = int(self.settings["page_size"])
        offset = 0
        while True:
            if self.session.quota_stop:
                yield None
                return
            request = RunReportRequest(
                property=f"properties/{self.settings['property_id']}",
                date_ranges=[DateRange(start_date=day.isoformat(), end_date=day.isoformat())],
                dimensions=[Dimension(name=n) for n in report.get("dimensions") or []],
                metrics=[Metric(name=n) for n in report["metrics"]],
                offset=offset,
                limit=page_size,
                return_property_quota=True,
            )
            response = self._run(request, report["name"], day)
            if response is None:
                yield None
                return
            self._check_quota(response)
            yield response
            offset += len(response.rows)
            if not response.rows or offset >= response.row_count:
                return

    def _run(self, request: t.Any, report: str, day: date) -> RunReportResponse | None:
        from google.api_core import exceptions  # noqa: PLC0415

        where = f"report {report}, {day}"
        for attempt in range(1, self.max_tries + 1):
            try:
                return self.session.client.run_report(request, retry=None, timeout=120.0)
            except (exceptions.Unauthorized, exceptions.Forbidden) as error:
                raise FatalAPIError(
                    f"GA4 refused the request for {where}: check ga4.property_id and "
                    f"ga4.credentials_json / ga4.credentials_path ({error.message})"
                ) from None
            except exceptions.BadRequest as error:
                raise FatalAPIError(
                    f"GA4 rejected {where}: {redact(str(error.message))}. Check the dimensions and "
                    f"metrics of ga4.reports ({report})"
                ) from None
            except (
                exceptions.TooManyRequests,
                exceptions.ServerError,
                requests.exceptions.ConnectionError,
                requests.exceptions.Timeout,
            ) as error:
                message = redact(str(getattr(error, "message", None) or error))
                if is_quota_error(error):
                    self.session.quota_stop = f"GA4 quota exhausted ({message})"
                    self.logger.warning(
                        "%s at %s: stopping; the next run resumes at this day",
                        self.session.quota_stop,
                        where,
                    )
                    return None
                if attempt == self.max_tries:
                    raise FatalAPIError(
                        f"GA4 failed {attempt} times for {where}: {message}"
                    ) from None
                wait = min(self.retry_wait * 2 ** (attempt - 1), 60.0)
                self.logger.warning(
                    "Retrying GA4 %s in %.1f s (attempt %d): %s",
                    where,
                    wait,
                    attempt,
                    message,
                )
                clock.sleep(wait + random.uniform(0.0, wait / 4))
            except exceptions.GoogleAPICallError as error:
                raise FatalAPIError(f"GA4 failed for {where}: {redact(str(error))}") from None
        return None  # pragma: no cover - the loop returns or raises

    def _check_quota(self, response: RunReportResponse) -> None:
        low = exhausted_buckets(response.property_quota, settings.QUOTA_RESERVE_TOKENS)
        if low:
            self.session.quota_stop = f"GA4 quota nearly exhausted ({', '.join(low)})"
            self.logger.warning("%s: no more requests this run", self.session.quota_stop)

    def _rows(
        self, report: dict[str, t.Any], day: date, tz: ZoneInfo, response: RunReportResponse
    ) -> Iterator[dict[str, t.Any]]:
        metadata = response.metadata
        if metadata.data_loss_from_other_row or metadata.subject_to_thresholding:
            self.logger.warning(
                "GA4 report %s for %s is %s",
                report["name"],
                day,
                "rolled up into an (other) row"
                if metadata.data_loss_from_other_row
                else "subject to thresholding",
            )
        dim_names = [h.name for h in response.dimension_headers]
        metric_types = [(h.name, int(h.type_)) for h in response.metric_headers]
        ctx = RowContext(
            str(self.settings["property_id"]),
            report["name"],
            day,
            tz,
            metadata.currency_code or None,
        )
        for row_no, row in enumerate(response.rows, start=1):
            try:
                dims = {n: v.value for n, v in zip(dim_names, row.dimension_values, strict=True)}
                metrics: dict[str, float | int] = {
                    n: int(v.value) if kind == _TYPE_INTEGER else float(v.value)
                    for (n, kind), v in zip(metric_types, row.metric_values, strict=True)
                }
                event = normalise_report_row(dims, metrics, ctx, self.map_event_type)
            except (KeyError, TypeError, ValueError) as error:
                self.skip_bad_record(
                    f"report {report['name']}, {day}, row {row_no}", f"invalid row: {error}"
                )
                continue
            yield t.cast("dict[str, t.Any]", event)


def _zone(name: object) -> ZoneInfo:
    try:
        return ZoneInfo(str(name)) if name else ZoneInfo("UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")
