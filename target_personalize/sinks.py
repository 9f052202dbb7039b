"""Sinks: adapt Singer records to the engine's store."""

from __future__ import annotations

import typing as t

from singer_sdk.sinks import BatchSink
from typing_extensions import override

from target_personalize.engine import EventStore, LoadResult, read_batch_files
from target_personalize.engine.store.records import REQUIRED_EVENT_FIELDS

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

    @override
    def process_batch(self, context: dict[str, t.Any]) -> None:
        records = context.pop("records", [])
        if records:
            self._report(self._load(records))

    @override
    def process_batch_files(self, encoding: BaseBatchFileEncoding, files: t.Sequence[str]) -> None:
        paths = [f.removeprefix("file://") for f in files]
        self._report(self._load_files(paths, str(encoding.format), encoding.compression == "gzip"))

    def _load(self, records: list[dict[str, t.Any]]) -> LoadResult:
        raise NotImplementedError

    def _load_files(self, paths: list[str], file_format: str, gzipped: bool) -> LoadResult:
        raise NotImplementedError

    def _report(self, result: LoadResult) -> None:
        self.loaded += result.loaded
        for reject in result.rejects:
            self.rejected += 1
            if self.rejected <= _LOGGED_REJECTS:
                self.logger.warning(
                    "Rejected a record of stream %s, key %s: %s %s",
                    reject.stream,
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

    def _load(self, records: list[dict[str, t.Any]]) -> LoadResult:
        return self.store.load_events(records, stream=self.stream_name)

    def _load_files(self, paths: list[str], file_format: str, gzipped: bool) -> LoadResult:
        fmt = t.cast("t.Literal['jsonl', 'parquet']", file_format)
        return self.store.load_event_files(paths, fmt, gzipped=gzipped, stream=self.stream_name)


class ItemsSink(_StoreSink):
    """The item catalog (stream ``items``)."""

    def _load(self, records: list[dict[str, t.Any]]) -> LoadResult:
        return self.store.load_items(records, stream=self.stream_name)

    def _load_files(self, paths: list[str], file_format: str, gzipped: bool) -> LoadResult:
        records = read_batch_files(paths, file_format, gzipped=gzipped)
        return self.store.load_items(list(records), stream=self.stream_name)
