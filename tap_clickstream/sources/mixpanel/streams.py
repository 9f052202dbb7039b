"""Mixpanel streams: ``mixpanel_events``."""

from __future__ import annotations

import typing as t
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import msgspec
import requests
from typing_extensions import override

from tap_clickstream.events import ClickstreamEvent, format_ts, parse_ts, stable_event_id
from tap_clickstream.exceptions import IncompleteExportError
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
from tap_clickstream.sources.mixpanel import settings
from tap_clickstream.sources.mixpanel.client import MixpanelStream
from tap_clickstream.streams import PLAIN_RECORDS

if t.TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from singer_sdk.helpers.types import Context

_decode = msgspec.json.Decoder().decode
_TERMINATED_EARLY = b"terminated early"
#: Errors that mean the export body broke off mid-way: the window is read again. (Failed
#: requests are retried by the SDK's backoff before a body arrives.)
_BROKEN_OFF = (
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ConnectionError,
    requests.exceptions.ContentDecodingError,
)


def _body_lines(response: requests.Response) -> Iterator[bytes]:
    """The lines of a streamed body; a body that breaks off raises IncompleteExportError."""
    try:
        yield from response.iter_lines(chunk_size=1 << 16)
    except _BROKEN_OFF as error:
        raise IncompleteExportError(f"the export broke off: {error}") from error


class MixpanelEventsStream(MixpanelStream):
    """Raw Mixpanel events, read in day windows and normalised to canonical events."""

    name = "mixpanel_events"
    replication_key = "event_ts"
    TYPE_CONFORMANCE_LEVEL = PLAIN_RECORDS  # the normaliser's records are JSON-ready

    @property
    def timezone(self) -> ZoneInfo:
        """The project's timezone (``mixpanel.project_timezone``), UTC by default."""
        return ZoneInfo(self.settings["project_timezone"])

    def windows(self, context: Context | None) -> list[tuple[date, date]]:
        """Return the inclusive ``(from_date, to_date)`` windows this sync reads."""
        tz = self.timezone
        bookmark = self.bookmark(context)
        if bookmark:
            lookback = timedelta(days=self.settings["lookback_days"])
            start = (parse_ts(bookmark) - lookback).astimezone(tz).date()
        elif self.config.get("start_date"):
            start = parse_ts(self.config["start_date"]).astimezone(tz).date()
        else:
            start = self.sync_started_at.astimezone(tz).date() - timedelta(
                days=DEFAULT_HISTORY_DAYS
            )
        last = self.sync_started_at.astimezone(tz).date()
        if self.config.get("end_date"):
            last = min(last, parse_ts(self.config["end_date"]).astimezone(tz).date())
        days = self.settings["window_days"]
        size = timedelta(days=max(1, int(days)))
        windows = []
        while start <= last:
            end = min(start + size - timedelta(days=1), last)
            windows.append((start, end))
            start = end + timedelta(days=1)
        return windows

    @override
    def read_events(self, context: Context | None) -> Iterator[dict[str, t.Any]]:
        normalise = _Normaliser(self.map_event_type, self.timezone)
        for from_date, to_date in self.windows(context):
            window = {"from_date": from_date.isoformat(), "to_date": to_date.isoformat()}
            label = f"window {window['from_date']}..{window['to_date']}"
            self.logger.info("Reading Mixpanel export, %s", label)
            bad_before = self.bad_records.copy()
            for attempt in range(1, settings.WINDOW_ATTEMPTS + 1):
                try:
                    yield from self._read_window(window, label, normalise)
                    break
                except IncompleteExportError as error:
                    if attempt == settings.WINDOW_ATTEMPTS:
                        raise IncompleteExportError(
                            f"Mixpanel export for {label} broke off {attempt} times: {error}"
                        ) from error
                    self.logger.warning(
                        "Mixpanel export for %s broke off (%s); reading the window again",
                        label,
                        error,
                    )
                    # The window is read again whole: count its bad records once.
                    self.bad_records = bad_before.copy()
            window_end = datetime.combine(to_date + timedelta(days=1), time(), self.timezone)
            self.complete_window(context, format_ts(min(window_end, self.sync_started_at)))

    def _read_window(
        self, window: dict[str, str], label: str, normalise: _Normaliser
    ) -> Iterator[dict[str, t.Any]]:
        with self.fetch(window) as response:
            pending: bytes | None = None
            pending_line = 0
            for line_no, line in enumerate(_body_lines(response), start=1):
                if not line.strip():
                    continue
                if line == _TERMINATED_EARLY:
                    raise IncompleteExportError("the export ended with 'terminated early'")
                if pending is not None:
                    # Some exports split one record across two lines: try them joined first.
                    joined = pending + line
                    pending = None
                    try:
                        raw = _decode(joined)
                    except msgspec.DecodeError:
                        self.skip_bad_record(f"{label}, line {pending_line}", "malformed JSON")
                    else:
                        yield from self._normalised(raw, normalise, label, pending_line)
                        continue
                try:
                    raw = _decode(line)
                except msgspec.DecodeError:
                    pending, pending_line = line, line_no
                    continue
                yield from self._normalised(raw, normalise, label, line_no)
            if pending is not None:
                self.skip_bad_record(f"{label}, line {pending_line}", "malformed JSON")

    def _normalised(
        self, raw: object, normalise: _Normaliser, label: str, line_no: int
    ) -> Iterator[dict[str, t.Any]]:
        try:
            yield t.cast("dict[str, t.Any]", normalise(raw))
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            self.skip_bad_record(f"{label}, line {line_no}", f"invalid event: {error}")


class _Normaliser:
    """Turn one raw Mixpanel export object into a canonical event."""

    def __init__(self, map_event_type: Callable[[str], str], tz: ZoneInfo) -> None:
        self.map_event_type = map_event_type
        self.tz = None if tz.key == "UTC" else tz

    def event_time(self, value: object) -> datetime:
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise ValueError(f"'time' is not an epoch number: {value!r}")
        seconds = value / 1000 if value > settings.MS_THRESHOLD else value
        try:
            moment = datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError):
            raise ValueError(f"'time' is out of range: {value!r}") from None
        if self.tz is not None:
            # Older projects store project-local wall-clock time as if it were UTC.
            moment = moment.replace(tzinfo=self.tz).astimezone(UTC)
        return moment

    def __call__(self, raw: object) -> ClickstreamEvent:
        if not isinstance(raw, dict):
            raise TypeError("a line is not a JSON object")
        name = raw.get("event")
        if not isinstance(name, str) or not name:
            raise ValueError("'event' is missing or not a string")
        props = dict(raw.get("properties") or {})
        moment = self.event_time(props.pop("time", None))
        distinct_id = as_str(props.pop("distinct_id", None))
        device_id = as_str(props.pop("$device_id", None))
        user_id = as_str(props.pop("$user_id", None))
        if (
            user_id is None
            and distinct_id
            and distinct_id != device_id
            and not distinct_id.startswith("$device:")
        ):
            user_id = distinct_id
        insert_id = as_str(props.pop("$insert_id", None))
        event_ts = format_ts(moment)
        processed = props.pop("mp_processing_time_ms", None)
        url = as_str(props.pop("$current_url", None))
        order_id, revenue, currency = order_fields(props)
        event_type = self.map_event_type(name)
        experiment_id, variant_id, rec_id = experiment_fields(event_type, props)
        return {
            "source": "mixpanel",
            "event_id": insert_id or stable_event_id(name, distinct_id, event_ts),
            "event_name": name,
            "event_type": event_type,
            "event_ts": event_ts,
            "ingested_at": format_ts(parse_ts(processed)) if processed is not None else None,
            "user_id": user_id,
            "anonymous_id": device_id or (distinct_id if user_id is None else None),
            "session_id": as_str(pop_first(props, "$session_id", "session_id")),
            "page_url": url,
            "page_path": path_of(url),
            "page_title": as_str(pop_first(props, "$title", "title", "page_title")),
            "referrer": as_str(props.pop("$referrer", None)),
            "utm_source": as_str(props.pop("utm_source", None)),
            "utm_medium": as_str(props.pop("utm_medium", None)),
            "utm_campaign": as_str(props.pop("utm_campaign", None)),
            "utm_term": as_str(props.pop("utm_term", None)),
            "utm_content": as_str(props.pop("utm_content", None)),
            "search_query": as_str(pop_first(props, "query", "search_query", "search_term")),
            "filters": as_filters(props),
            "items": items_from_properties(props),
            "order_id": order_id,
            "revenue": revenue,
            "currency": currency,
            "engagement_ms": _ms(pop_first(props, "$duration_s", "$duration")),
            "scroll_depth_pct": as_float(pop_first(props, "scroll_depth", "percent_scrolled")),
            "media_progress_pct": as_float(pop_first(props, "progress", "percent_watched")),
            "event_count": 1,
            "is_aggregate": False,
            "device_category": as_str(props.pop("device_category", None)),
            "os": as_str(props.pop("$os", None)),
            "browser": as_str(props.pop("$browser", None)),
            "country": as_str(props.pop("mp_country_code", None)),
            "region": as_str(props.pop("$region", None)),
            "city": as_str(props.pop("$city", None)),
            "properties": props,
            "user_properties": {},
            "experiment_id": experiment_id,
            "variant_id": variant_id,
            "rec_id": rec_id,
        }


def _ms(seconds: object) -> float | None:
    value = as_float(seconds)
    return None if value is None else value * 1000.0
