"""Base classes shared by every source's event stream.

Event streams move through time in windows (days for Mixpanel, hours for Amplitude, files for
the file source). Their state advances once per completed window, never per record: a source's
records are not sorted inside a window, so a per-record bookmark could skip events when a sync
is interrupted. With a bookmark per completed window an interrupted sync resumes at the first
unfinished window, and the target's key on ``(source, event_id)`` absorbs the re-read.

Each source implements :meth:`EventStream.read_events`; the base class passes each event on
once (an event seen again shortly after, such as an exact duplicate row or a window read a
second time after a dropped download, is not emitted twice) and logs the counts at the end.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import random
import typing as t
from collections import Counter, deque
from datetime import UTC, datetime

import requests
from singer_sdk import RESTStream, Stream
from singer_sdk.exceptions import FatalAPIError, RetriableAPIError
from singer_sdk.helpers.conform import TypeConformanceLevel
from singer_sdk.mapper import SameRecordTransform
from singer_sdk.singerlib import RecordMessage
from typing_extensions import override

from tap_clickstream.batches import EventBatcher
from tap_clickstream.events import EVENT_SCHEMA, EventTypeMapper
from tap_clickstream.redact import MAX_CHARS, redact

if t.TYPE_CHECKING:
    from collections.abc import Generator, Iterable, Iterator, Sequence

    from singer_sdk.helpers._batch import BaseBatchFileEncoding, BatchConfig
    from singer_sdk.helpers.types import Context

    from tap_clickstream.source_settings import SourceSettings

__all__ = ["PLAIN_RECORDS", "EventStream", "ExportAPIStream"]

#: The conformance level of streams whose records are built to the schema already (only its
#: properties; strings, floats, ints, booleans, and dicts and lists of them: JSON-ready): it
#: skips the SDK's per-record conformance walk, the largest cost of a RECORD sync (NaN then
#: travels as null through the msgspec writer, as conformed).
PLAIN_RECORDS = TypeConformanceLevel.NONE

#: How many bad records are logged one by one before only the count goes on.
_LOGGED_BAD_RECORDS = 20
#: How many recent event ids a stream remembers to drop repeats (bounded memory).
_RECENT_EVENT_IDS = 100_000


class EventStream(Stream):
    """A stream of canonical clickstream events, with windowed state and bad-record accounting."""

    schema: t.ClassVar[dict[str, t.Any]] = EVENT_SCHEMA
    primary_keys: t.ClassVar[list[str]] = ["source", "event_id"]
    #: This source's settings block (``mixpanel``, ``amplitude``...).
    source_settings: t.ClassVar[SourceSettings]

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        super().__init__(*args, **kwargs)
        self.bad_records: Counter[str] = Counter()
        self.duplicates = 0
        self._recent_ids: set[str] = set()
        self._recent_order: deque[str] = deque()
        self.map_event_type = EventTypeMapper(self.config.get("event_map"))

    def read_events(self, context: Context | None) -> Iterator[dict[str, t.Any]]:
        """Yield this source's canonical events, calling :meth:`complete_window` as it goes.

        Raises:
            NotImplementedError: in the base class.
        """
        raise NotImplementedError

    @override
    def get_records(self, context: Context | None) -> Iterable[dict[str, t.Any]]:
        emitted = 0
        try:
            for record in self.read_events(context):
                if self._first_sighting(record["event_id"]):
                    emitted += 1
                    yield record
        finally:
            # Also when the sync fails or is cut short: the counts so far are still news.
            self.log_sync_summary(emitted)

    @functools.cached_property
    def _plain_records(self) -> bool:
        """Whether records go out as they are: no conformance, every property selected, no map."""
        maps = self.stream_maps
        return (
            self.TYPE_CONFORMANCE_LEVEL == TypeConformanceLevel.NONE
            and len(maps) == 1
            and type(maps[0]) is SameRecordTransform
            and not maps[0].flattening_enabled
            and maps[0].stream_alias == self.name
            and all(self.mask[("properties", name)] for name in self.schema["properties"])
        )

    @override
    def _generate_record_messages(
        self, record: dict[str, t.Any]
    ) -> Generator[RecordMessage, None, None]:
        # With no conformance, nothing deselected and no stream map, the SDK's walks over the
        # record return it unchanged: build the message directly.
        if self._plain_records:
            yield RecordMessage(
                stream=self.name,
                record=record,
                version=self._stream_version,
                time_extracted=datetime.now(UTC),
            )
            return
        yield from super()._generate_record_messages(record)

    #: How many recent event ids a stream remembers to drop repeats (bounded memory).
    recent_limit: t.ClassVar[int] = _RECENT_EVENT_IDS

    def _first_sighting(self, event_id: str) -> bool:
        if event_id in self._recent_ids:
            self.duplicates += 1
            return False
        self.remember_ids([event_id])
        return True

    def remember_ids(self, event_ids: Sequence[str]) -> None:
        """Remember ids as recently emitted, forgetting the oldest beyond :attr:`recent_limit`."""
        limit = self.recent_limit
        if len(event_ids) >= limit:
            # All the remembered ids are among these.
            kept = event_ids[-limit:]
            self._recent_ids = set(kept)
            self._recent_order = deque(kept)
            return
        recent, order = self._recent_ids, self._recent_order
        recent.update(event_ids)
        order.extend(event_ids)
        # A deque and a set: forgetting the oldest id costs O(1) (deleting a dict's first key
        # again and again makes each next lookup of the first key slower).
        while len(order) > limit:
            recent.discard(order.popleft())

    @property
    def settings_key(self) -> str:
        """The name of this source's settings block."""
        return self.source_settings.key

    @property
    def settings(self) -> dict[str, t.Any]:
        """This source's settings, each one it lacks at its default."""
        return self.source_settings.with_defaults(self.config)

    @property
    def sync_started_at(self) -> datetime:
        """When this tap run started (UTC): windows and bookmarks never pass it."""
        return datetime.fromtimestamp(self._tap.initialized_at / 1000, tz=UTC)

    @override
    def _increment_stream_state(
        self,
        latest_record: dict[str, t.Any],
        *,
        context: Context | None = None,
    ) -> None:
        # Bookmarks advance per completed window (see the module docstring), not per record.
        return

    @override
    def get_replication_key_signpost(self, context: Context | None = None) -> None:
        # Window bookmarks are capped at the sync start already.
        return None

    def bookmark(self, context: Context | None) -> str | None:
        """The bookmark saved by an earlier sync, if any."""
        value = self.get_context_state(context).get("replication_key_value")
        return str(value) if value is not None else None

    def complete_window(
        self,
        context: Context | None,
        bookmark: str,
        **extra: t.Any,
    ) -> None:
        """Record that every event up to ``bookmark`` has been emitted, and emit STATE.

        In BATCH mode the STATE message is left to the SDK, which writes it after the BATCH
        message that holds this window's last records.
        """
        state = self.get_context_state(context)
        state["replication_key"] = self.replication_key
        state["replication_key_value"] = bookmark
        state.update(extra)
        self.state_manager.is_flushed = False
        if self.get_batch_config(self.config) is None:
            self._write_state_message()

    @override
    def get_batches(
        self, batch_config: BatchConfig, context: Context | None = None
    ) -> Iterable[tuple[BaseBatchFileEncoding, list[str]]]:
        batcher = EventBatcher(self.tap_name, self.name, batch_config)
        records = self._sync_records(context, write_messages=False)
        for manifest in batcher.get_batches(records):
            yield batch_config.encoding, manifest

    def skip_bad_record(self, where: str, reason: str) -> None:
        """Count a malformed record, log it (the first few one by one), and go on."""
        self.bad_records[reason.split(":", 1)[0]] += 1
        total = sum(self.bad_records.values())
        if total <= _LOGGED_BAD_RECORDS:
            self.logger.warning(
                "Skipped a malformed record in %s, %s: %s", self.name, where, reason
            )
        elif total == _LOGGED_BAD_RECORDS + 1:
            self.logger.warning(
                "More malformed records in %s: counting them without logging each one", self.name
            )

    def log_sync_summary(self, emitted: int) -> None:
        """Log the records emitted and the malformed ones skipped, at the end of the sync."""
        skipped = sum(self.bad_records.values())
        repeats = f", {self.duplicates} repeated events emitted once" if self.duplicates else ""
        if skipped:
            detail = ", ".join(f"{reason}: {n}" for reason, n in self.bad_records.most_common())
            self.logger.warning(
                "Stream %s emitted %d events and skipped %d malformed records (%s)%s",
                self.name,
                emitted,
                skipped,
                detail,
                repeats,
            )
        else:
            self.logger.info(
                "Stream %s emitted %d events, no malformed records%s", self.name, emitted, repeats
            )


class ExportAPIStream(EventStream, RESTStream[t.Any]):
    """An event stream read from a SaaS export API: streamed bodies, retries and clear errors."""

    #: Settings a user should check when the API refuses the credentials or the request.
    auth_settings: t.ClassVar[str]
    #: HTTP statuses that mean "no data in this window".
    empty_statuses: t.ClassVar[frozenset[int]] = frozenset()
    #: The longest wait honoured from a Retry-After header, in seconds.
    max_retry_after: t.ClassVar[float] = 3600.0
    #: The API's host per data-residency region (the settings block's ``region``).
    export_hosts: t.ClassVar[t.Mapping[str, str]]

    @property
    @override
    def url_base(self) -> str:
        """``<block>.api_url`` when set (a proxy or a test server), else the region's host."""
        custom = self.settings.get("api_url")
        if custom:
            return str(custom).rstrip("/")
        return self.export_hosts[self.settings["region"]]

    @property
    @override
    def requests_session(self) -> requests.Session:
        session = super().requests_session
        # Read bodies as they arrive instead of loading them whole into memory.
        session.stream = True
        return session

    def fetch(self, window: dict[str, str]) -> requests.Response:
        """Request one window, with retries, and return the response unread (streamed)."""
        prepared = self.build_prepared_request(
            method="GET",
            url=self.get_url(window),
            params=self.get_url_params(window, None),
            headers=self.http_headers,
        )
        response: requests.Response = self.request_decorator(self._request)(prepared, window)
        return response

    @override
    def validate_response(self, response: requests.Response) -> None:
        status = response.status_code
        if status in self.empty_statuses:
            return
        if status == 429 or status >= 500:
            raise RetriableAPIError(self.response_error_message(response), response)
        if status in {401, 403}:
            raise FatalAPIError(
                f"{self.settings_key} refused the request ({status} {response.reason}): "
                f"check the settings {self.auth_settings}. {self._error_detail(response)}"
            )
        if status >= 400:
            detail = self._error_detail(response)
            hint = self.settings_hint(status, detail)
            raise FatalAPIError(
                f"{self.settings_key} rejected the request ({status} {response.reason}) for "
                f"{self.path}: {detail}" + (f". Check {hint}." if hint else "")
            )

    def settings_hint(self, status: int, detail: str) -> str | None:
        """Name the settings to check when the API rejects a request (4xx other than auth).

        Args:
            status: the HTTP status.
            detail: the error the API sent.

        Returns:
            A phrase naming the settings, or None when no setting is to blame.
        """
        return None

    @override
    def response_error_message(self, response: requests.Response) -> str:
        # The path only: query strings can carry identifiers, and headers carry credentials.
        return (
            f"{response.status_code} {response.reason} from {self.settings_key} for {self.path}: "
            f"{self._error_detail(response)}"
        )

    @staticmethod
    def _error_detail(response: requests.Response) -> str:
        """The API's error, cut short and with credential-like strings masked."""
        try:
            body = response.content[: MAX_CHARS * 4].decode("utf-8", "replace")
        except requests.RequestException:
            return ""
        try:
            payload = response.json()
        except ValueError:
            return redact(body)
        if isinstance(payload, dict) and "error" in payload:
            return redact(str(payload["error"]))
        return redact(body)

    @override
    def backoff_wait_generator(self) -> Generator[float, t.Any, None]:
        """Wait what the server asks for in Retry-After, else back off exponentially."""
        attempt = 0
        exception = yield 0.0
        while True:
            attempt += 1
            wait = min(2.0 ** (attempt - 1), 60.0)
            response = getattr(exception, "response", None)
            header = response.headers.get("Retry-After") if response is not None else None
            if header:
                with contextlib.suppress(ValueError):
                    wait = max(0.0, min(float(header), self.max_retry_after))
            exception = yield wait

    @override
    def backoff_jitter(self, value: float) -> float:
        return value + random.uniform(0.0, min(1.0, value / 4))

    @override
    def backoff_max_tries(self) -> int:
        return 8

    @override
    def backoff_handler(self, details: t.Any) -> None:
        exception = details.get("exception")
        self.logger.log(
            logging.WARNING,
            "Retrying %s in %.1f s (attempt %d): %s",
            self.settings_key,
            details.get("wait", 0.0),
            details.get("tries", 0),
            exception,
        )
