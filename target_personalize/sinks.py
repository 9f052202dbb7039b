"""Sinks: adapt Singer records to the engine's store."""

from __future__ import annotations

import typing as t

from singer_sdk.sinks import BatchSink
from typing_extensions import override

from target_personalize.engine import EventStore, LoadResult, Reject, read_batch_files
from target_personalize.engine.exceptions import InvalidEventError
from target_personalize.engine.store.records import REQUIRED_EVENT_FIELDS, coerce_event
from target_personalize.engine.store.typed_records import typed_event_row

if t.TYPE_CHECKING:
    from singer_sdk.helpers._batch import BaseBatchFileEncoding

    from target_personalize.target import TargetPersonalize

#: Bad records logged one by one per sink before only the count goes on.
_LOGGED_REJECTS = 20


class _StoreSink(BatchSink):
    """A sink whose batches go to the engine's store in one transaction each."""

    MAX_SIZE_DEFAULT = 20_000

    def __init__(
        self,
        target: TargetPersonalize,
        stream_name: str,
        schema: dict[str, t.Any],
        key_properties: t.Sequence[str] | None,
    ) -> None:
        super().__init__(target, stream_name, schema, key_properties)
        self.store: EventStore = target.store
        self._reader = target.message_reader
        self.loaded = 0
        self.rejected = 0

    @override
    def get_validator(self) -> None:
        # The store checks every record itself and sends bad ones to `rejects` with the field
        # at fault, instead of failing the whole load.
        return None

    @override
    def _parse_timestamps_in_record(
        self, record: dict[str, t.Any], schema: dict[str, t.Any], treatment: t.Any
    ) -> None:
        # Timestamps are parsed by the store, where an unparsable one becomes a reject.
        return

    @override
    def process_record(self, record: dict[str, t.Any], context: dict[str, t.Any]) -> None:
        context.setdefault("records", []).append(record)
        context.setdefault("lines", []).append(getattr(self._reader, "line_number", None))

    @override
    def process_batch(self, context: dict[str, t.Any]) -> None:
        records = context.pop("records", [])
        lines = context.pop("lines", [])
        if records:
            self._report(self._load(records, lines))

    @override
    def process_batch_files(self, encoding: BaseBatchFileEncoding, files: t.Sequence[str]) -> None:
        paths = [f.removeprefix("file://") for f in files]
        self._report(self._load_files(paths, str(encoding.format), encoding.compression == "gzip"))

    def _load(self, records: list[t.Any], lines: list[int | None]) -> LoadResult:
        raise NotImplementedError

    def _load_files(self, paths: list[str], file_format: str, gzipped: bool) -> LoadResult:
        raise NotImplementedError

    def _report(self, result: LoadResult) -> None:
        self.loaded += result.loaded
        for reject in result.rejects:
            self.rejected += 1
            if self.rejected <= _LOGGED_REJECTS:
                self.logger.warning(
                    "Rejected a record of stream %s, line %s, key %s: %s %s",
                    reject.stream,
                    reject.line if reject.line is not None else "-",
                    reject.event_key,
                    reject.field,
                    reject.reason,
                )
        self.logger.info(
            "Stored %d records of stream %s (%d rejected so far)",
            result.loaded,
            self.stream_name,
            self.rejected,
        )


class EventsSink(_StoreSink):
    """Canonical events (every ``*_events`` stream)."""

    def __init__(
        self,
        target: TargetPersonalize,
        stream_name: str,
        schema: dict[str, t.Any],
        key_properties: t.Sequence[str] | None,
    ) -> None:
        super().__init__(target, stream_name, schema, key_properties)
        missing = sorted(set(REQUIRED_EVENT_FIELDS) - set(schema.get("properties", {})))
        if missing:
            self.logger.warning(
                "Stream %s does not carry the canonical event (no %s): its records will be "
                "rejected. Send *_events streams from tap-clickstream, or map this stream to the "
                "canonical fields with stream maps.",
                stream_name,
                ", ".join(missing),
            )

    @property
    def takes_typed_events(self) -> bool:
        """Whether the reader may hand this sink typed events (see :meth:`add_typed_event`).

        True unless the SDK would change or check records beyond what the store does: record
        metadata to add, or key properties other than the canonical key.
        """
        keys = set(self.key_properties)
        return not self.include_sdc_metadata_properties and keys <= {"source", "event_id"}

    def add_typed_event(self, event: t.Any, line: int) -> bool:
        """Take a canonical event the reader decoded into a typed struct, as its store row.

        Returns:
            False when the event needs the SDK's path (its row could not be made here, e.g.
            a value to reject): that path then checks it and names the field at fault.
        """
        row = typed_event_row(event)
        if row is None:
            return False
        context = self._pending_batch or self._get_context({})
        context.setdefault("records", []).append(row)
        context.setdefault("lines", []).append(line)
        self._batch_records_read += 1
        return True

    def _load(self, records: list[t.Any], lines: list[int | None]) -> LoadResult:
        # Rows made by the reader's fast path, and records from the SDK's path, in order.
        rows: list[tuple[t.Any, ...]] = []
        rejects: list[Reject] = []
        typed = 0
        for record, line in zip(records, lines, strict=True):
            if type(record) is tuple:
                rows.append(record)
                typed += 1
                continue
            try:
                rows.append(coerce_event(record))
            except InvalidEventError as error:
                rejects.append(Reject.of_event(self.stream_name, record, error, line))
        # The SDK counts the records of its own path as it reads them.
        self.record_counter_metric.increment(typed)
        return self.store.load_rows(rows, rejects=rejects)

    def _load_files(self, paths: list[str], file_format: str, gzipped: bool) -> LoadResult:
        fmt = t.cast("t.Literal['jsonl', 'parquet']", file_format)
        return self.store.load_event_files(paths, fmt, gzipped=gzipped, stream=self.stream_name)


class ItemsSink(_StoreSink):
    """The item catalog (stream ``items``)."""

    def _load(self, records: list[t.Any], lines: list[int | None]) -> LoadResult:
        return self.store.load_items(records, stream=self.stream_name)

    def _load_files(self, paths: list[str], file_format: str, gzipped: bool) -> LoadResult:
        records = read_batch_files(paths, file_format, gzipped=gzipped)
        return self.store.load_items(list(records), stream=self.stream_name)
