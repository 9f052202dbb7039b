"""Amplitude streams: ``amplitude_events``."""

from __future__ import annotations

import gzip
import re
import tempfile
import typing as t
import zipfile
from datetime import datetime, timedelta

import msgspec
import requests
from typing_extensions import override

from tap_clickstream.events import ClickstreamEvent, format_ts, parse_ts
from tap_clickstream.exceptions import IncompleteExportError, WindowTooLargeError
from tap_clickstream.normalize import (
    as_filters,
    as_float,
    as_str,
    experiment_fields,
    items_from_properties,
    order_fields,
    path_of,
    pop_first,
)
from tap_clickstream.source_settings import DEFAULT_HISTORY_DAYS
from tap_clickstream.sources.amplitude import settings
from tap_clickstream.sources.amplitude.client import AmplitudeStream
from tap_clickstream.streams import PLAIN_RECORDS

if t.TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from singer_sdk.helpers.types import Context

_decode = msgspec.json.Decoder().decode
_HOUR = timedelta(hours=1)
_DIGITS = re.compile(r"(\d+)")
_DEVICE_CATEGORIES = {"iOS": "mobile", "Android": "mobile"}
#: Errors that mean a download broke off: the window is requested again.
_BROKEN_OFF = (
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ConnectionError,
    requests.exceptions.ContentDecodingError,
    OSError,
)
#: Top-level export fields the canonical event holds already (the rest go to properties).
_CONSUMED = frozenset(
    {
        "uuid", "event_type", "event_time", "client_event_time", "server_upload_time",
        "user_id", "device_id", "session_id", "event_properties", "user_properties",
        "country", "region", "city", "os_name",
    }
)  # fmt: skip


def _natural_key(name: str) -> list[int | str]:
    return [int(part) if part.isdigit() else part for part in _DIGITS.split(name)]


def _floor_hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


class AmplitudeEventsStream(AmplitudeStream):
    """Amplitude events, exported in hour windows by upload time and normalised."""

    name = "amplitude_events"
    replication_key = "ingested_at"
    TYPE_CONFORMANCE_LEVEL = PLAIN_RECORDS  # the normaliser's records are JSON-ready

    def windows(self, context: Context | None) -> list[tuple[datetime, datetime]]:
        """Return the ``[start, end)`` hour-aligned windows of upload time this sync reads."""
        bookmark = self.bookmark(context)
        if bookmark:
            lookback = timedelta(hours=self.settings["lookback_hours"])
            start = parse_ts(bookmark) - lookback
        elif self.config.get("start_date"):
            start = parse_ts(self.config["start_date"])
        else:
            start = self.sync_started_at - timedelta(days=DEFAULT_HISTORY_DAYS)
        stop = self.sync_started_at - timedelta(hours=settings.SETTLE_HOURS)
        if self.config.get("end_date"):
            stop = min(stop, parse_ts(self.config["end_date"]))
        start, stop = _floor_hour(start), _floor_hour(stop)
        hours = self.settings["window_hours"]
        size = _HOUR * max(1, int(hours))
        windows = []
        while start < stop:
            end = min(start + size, stop)
            windows.append((start, end))
            start = end
        return windows

    @override
    def read_events(self, context: Context | None) -> Iterator[dict[str, t.Any]]:
        for start, end in self.windows(context):
            yield from self._read_split(context, start, end)

    def _read_split(
        self, context: Context | None, start: datetime, end: datetime
    ) -> Iterator[dict[str, t.Any]]:
        """Read ``[start, end)``, halving the window while Amplitude says it is too large.

        The bookmark moves after each part read, so a sync cut short keeps what it finished.
        """
        pending = [(start, end)]
        while pending:
            start, end = pending.pop(0)
            try:
                yield from self._read_window(start, end)
            except WindowTooLargeError as error:
                hours = int((end - start) / _HOUR)
                if hours <= 1:
                    raise WindowTooLargeError(
                        f"Amplitude refuses even a one-hour export at {start:%Y-%m-%d %H}:00: "
                        f"{error}"
                    ) from error
                middle = start + _HOUR * (hours // 2)
                self.logger.info(
                    "Amplitude export %s..%s too large (%s); splitting it in two",
                    f"{start:%Y-%m-%dT%H}",
                    f"{end:%Y-%m-%dT%H}",
                    error,
                )
                pending[:0] = [(start, middle), (middle, end)]
            else:
                self.complete_window(context, format_ts(end))

    def _read_window(self, start: datetime, end: datetime) -> Iterator[dict[str, t.Any]]:
        # Amplitude's `end` is the last hour included.
        window = {
            "start": start.strftime(settings.HOUR_FORMAT),
            "end": (end - _HOUR).strftime(settings.HOUR_FORMAT),
        }
        label = f"window {window['start']}..{window['end']}"
        self.logger.info("Reading Amplitude export, %s", label)
        normalise = _Normaliser(self.map_event_type)
        with tempfile.SpooledTemporaryFile(max_size=settings.SPOOL_MEMORY_BYTES) as spool:
            for attempt in range(1, settings.WINDOW_ATTEMPTS + 1):
                # Failed requests are retried by the SDK's backoff inside fetch(); here a
                # download that breaks off mid-body is requested again.
                with self.fetch(window) as response:
                    if response.status_code in self.empty_statuses:
                        self.logger.info("Amplitude has no events in %s", label)
                        return
                    spool.seek(0)
                    spool.truncate()
                    try:
                        # iter_content, not response.raw: it turns a connection dropped
                        # mid-body into a requests error.
                        for chunk in response.iter_content(chunk_size=1 << 20):
                            spool.write(chunk)
                        spool.seek(0)
                        archive = zipfile.ZipFile(spool)
                    except (*_BROKEN_OFF, zipfile.BadZipFile) as error:
                        if attempt == settings.WINDOW_ATTEMPTS:
                            raise IncompleteExportError(
                                f"Amplitude download of {label} failed {attempt} times: {error}"
                            ) from error
                        self.logger.warning(
                            "Amplitude download of %s broke off (%s); retrying", label, error
                        )
                        continue
                break
            with archive:
                # In upload-hour order: <app>_<date>_<hour>#<part>.json.gz, numbers compared
                # as numbers.
                for member in sorted(archive.namelist(), key=_natural_key):
                    if member.endswith("/"):
                        continue
                    yield from self._read_member(archive, member, label, normalise)

    def _read_member(
        self, archive: zipfile.ZipFile, member: str, label: str, normalise: _Normaliser
    ) -> Iterator[dict[str, t.Any]]:
        where = f"{label}, file {member}"
        try:
            with archive.open(member) as packed, gzip.open(packed) as lines:
                for line_no, line in enumerate(lines, start=1):
                    if not line.strip():
                        continue
                    try:
                        raw = _decode(line)
                        yield t.cast("dict[str, t.Any]", normalise(raw))
                    except msgspec.DecodeError:
                        self.skip_bad_record(f"{where}, line {line_no}", "malformed JSON")
                    except (KeyError, TypeError, ValueError, AttributeError) as error:
                        self.skip_bad_record(f"{where}, line {line_no}", f"invalid event: {error}")
        except (OSError, EOFError, zipfile.BadZipFile) as error:
            raise IncompleteExportError(f"Amplitude export {where} is damaged: {error}") from error


class _Normaliser:
    """Turn one Amplitude export object into a canonical event."""

    def __init__(self, map_event_type: Callable[[str], str]) -> None:
        self.map_event_type = map_event_type

    def __call__(self, raw: object) -> ClickstreamEvent:
        if not isinstance(raw, dict):
            raise TypeError("a line is not a JSON object")
        name = raw.get("event_type")
        uuid = raw.get("uuid")
        if not isinstance(name, str) or not name or not uuid:
            raise ValueError("'event_type' or 'uuid' is missing")
        happened = raw.get("event_time") or raw.get("client_event_time")
        if not happened or not raw.get("server_upload_time"):
            raise ValueError("'event_time' or 'server_upload_time' is missing")
        props = dict(raw.get("event_properties") or {})
        session = raw.get("session_id")
        url = as_str(pop_first(props, "[Amplitude] Page URL", "page_url", "url"))
        order_id, revenue, currency = order_fields(props)
        if revenue is None:
            revenue = as_float(raw.get("revenue"))
        platform = as_str(raw.get("platform"))
        web = platform == "Web"
        # Amplitude's web SDKs put the browser in os_name and the OS in device_model.
        os_name = as_str(raw.get("device_model") or raw.get("device_family")) if web else None
        # Everything else Amplitude sent is kept; the event's own properties win on a clash.
        properties = {
            key: value
            for key, value in raw.items()
            if key not in _CONSUMED and value not in (None, "", {}, [])
        }
        page_path = as_str(pop_first(props, "[Amplitude] Page Path", "page_path"))
        page_title = as_str(pop_first(props, "[Amplitude] Page Title", "page_title", "title"))
        referrer = as_str(pop_first(props, "[Amplitude] Page Referrer", "referrer", "$referrer"))
        filters = as_filters(props)
        event_type = self.map_event_type(name)
        experiment_id, variant_id, rec_id = experiment_fields(event_type, props)
        event: ClickstreamEvent = {
            "source": "amplitude",
            "event_id": str(uuid),
            "event_name": name,
            "event_type": event_type,
            "event_ts": format_ts(parse_ts(happened)),
            "ingested_at": format_ts(parse_ts(raw["server_upload_time"])),
            "user_id": as_str(raw.get("user_id")),
            "anonymous_id": as_str(raw.get("device_id")),
            "session_id": None if session in (None, -1, "-1") else as_str(session),
            "page_url": url,
            "page_path": page_path or path_of(url),
            "page_title": page_title,
            "referrer": referrer,
            "utm_source": as_str(pop_first(props, "utm_source")),
            "utm_medium": as_str(pop_first(props, "utm_medium")),
            "utm_campaign": as_str(pop_first(props, "utm_campaign")),
            "utm_term": as_str(pop_first(props, "utm_term")),
            "utm_content": as_str(pop_first(props, "utm_content")),
            "search_query": as_str(pop_first(props, "query", "search_query", "search_term")),
            "filters": filters,
            "items": items_from_properties(props),
            "order_id": order_id,
            "revenue": revenue,
            "currency": currency,
            "engagement_ms": as_float(pop_first(props, "engagement_ms", "duration_ms")),
            "scroll_depth_pct": as_float(pop_first(props, "scroll_depth", "percent_scrolled")),
            "media_progress_pct": as_float(pop_first(props, "progress", "percent_watched")),
            "event_count": 1,
            "is_aggregate": False,
            "device_category": _DEVICE_CATEGORIES.get(platform or ""),
            "os": os_name if web else as_str(raw.get("os_name")),
            "browser": as_str(raw.get("os_name")) if web else None,
            "country": as_str(raw.get("country")),
            "region": as_str(raw.get("region")),
            "city": as_str(raw.get("city")),
            "properties": {**properties, **props},
            "user_properties": dict(raw.get("user_properties") or {}),
            "experiment_id": experiment_id,
            "variant_id": variant_id,
            "rec_id": rec_id,
        }
        return event
