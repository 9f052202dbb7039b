"""File streams: ``file_events``."""

from __future__ import annotations

import glob
import hashlib
import typing as t
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
from typing_extensions import override

from tap_clickstream.batches import TableBatcher
from tap_clickstream.events import EventTypeMapper
from tap_clickstream.samples import SAMPLE_EVENT_MAP, SAMPLE_MAPPING, SAMPLE_PATH
from tap_clickstream.sources.files import readers, settings
from tap_clickstream.sources.files.mapping import RowMapper, mtime_iso
from tap_clickstream.streams import PLAIN_RECORDS, EventStream

if t.TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

    from singer_sdk.helpers._batch import BaseBatchFileEncoding, BatchConfig
    from singer_sdk.helpers.types import Context


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(settings.HASH_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class _Done:
    """A window completed: every event up to ``bookmark`` (and of ``files``) is out."""

    bookmark: str
    files: dict[str, dict[str, t.Any]]


class FileEventsStream(EventStream):
    """Events from JSONL, CSV and Parquet files; a file is read again only when it changed.

    With no source configured at all, it reads the bundled REES46 sample. In BATCH mode the
    files are converted column by column (:mod:`.columnar`) and written to BATCH files
    directly, without the SDK's per-record loop; the events are the same as in RECORD mode.
    """

    name = "file_events"
    source_settings = settings.SETTINGS
    replication_key = "ingested_at"
    TYPE_CONFORMANCE_LEVEL = PLAIN_RECORDS  # the normaliser's records are JSON-ready

    @property
    def uses_sample(self) -> bool:
        """Whether this stream reads the bundled sample (no ``files.paths`` configured)."""
        return not self.settings.get("paths")

    def paths(self) -> list[Path]:
        """The files the configured globs match, sorted, each once."""
        if self.uses_sample:
            return [SAMPLE_PATH]
        found: dict[Path, None] = {}
        for pattern in self.settings["paths"]:
            # glob.glob, not Path.glob: patterns may be absolute and hold ** anywhere.
            expanded = str(Path(pattern).expanduser())
            matches = sorted(glob.glob(expanded, recursive=True))  # noqa: PTH207
            if not matches:
                self.logger.warning("files.paths pattern %r matches no file", pattern)
            for match in matches:
                path = Path(match)
                if path.is_file():
                    found[path.resolve()] = None
        return list(found)

    def row_mapper(self) -> RowMapper:
        """The row mapper of the configured layout (or of the bundled sample)."""
        if self.uses_sample:
            event_map = {**SAMPLE_EVENT_MAP, **(self.config.get("event_map") or {})}
            return RowMapper(SAMPLE_MAPPING, EventTypeMapper(event_map))
        return RowMapper(self.settings.get("mapping") or {}, self.map_event_type)

    def _walk(
        self,
        context: Context | None,
        read: Callable[[Path, str, str, t.Any], Iterator[t.Any]],
        hashes: Callable[[Path, str], bool] = lambda path, kind: False,
    ) -> Iterator[t.Any]:
        """Read each new or changed file with ``read(path, format, ingested_at, digest)``.

        Yields what ``read`` yields, and a :class:`_Done` after each file read whole (or
        skipped as unchanged but touched), for the caller to complete the window. When
        ``hashes(path, format)``, ``read`` feeds ``digest`` the file's bytes (one read less);
        otherwise the file is hashed apart.
        """
        state = self.get_context_state(context)
        seen: dict[str, dict[str, t.Any]] = dict(state.get("files") or {})
        newest = self.bookmark(context)
        for path in self.paths():
            key = str(path)
            stat = path.stat()
            fingerprint = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
            previous = seen.get(key)
            if previous and all(previous.get(k) == v for k, v in fingerprint.items()):
                self.logger.info("Skipping %s: read before and unchanged", path)
                continue
            # A file seen before is hashed first: an identical one need not be read.
            digest = _sha256(path) if previous else None
            if previous and previous.get("sha256") == digest:
                self.logger.info("Skipping %s: touched but its content is unchanged", path)
                # Remember the new time, so the next sync need not hash the file again.
                seen[key] = {**fingerprint, "sha256": digest}
                if newest is not None:
                    yield _Done(newest, dict(seen))
                continue
            try:
                kind = readers.detect_format(path, self.settings["format"])
            except ValueError as error:
                self.skip_bad_record(path.name, f"unknown format: {error}")
                continue
            self.logger.info("Reading %s", path)
            ingested_at = mtime_iso(stat.st_mtime_ns)
            hasher = hashlib.sha256() if digest is None and hashes(path, kind) else None
            try:
                yield from read(path, kind, ingested_at, hasher)
            except readers.UNREADABLE as error:
                # Not remembered as read: the next sync tries the file again.
                self.skip_bad_record(path.name, f"unreadable file: {error}")
                continue
            if digest is None:
                digest = hasher.hexdigest() if hasher is not None else _sha256(path)
            seen[key] = {**fingerprint, "sha256": digest}
            newest = max(newest or ingested_at, ingested_at)
            yield _Done(newest, dict(seen))

    @override
    def read_events(self, context: Context | None) -> Iterator[dict[str, t.Any]]:
        mapper = self.row_mapper()

        def read(
            path: Path, kind: str, ingested_at: str, digest: t.Any
        ) -> Iterator[dict[str, t.Any]]:
            return self._read_file(path, kind, mapper, ingested_at)

        for item in self._walk(context, read):
            if isinstance(item, _Done):
                self.complete_window(context, item.bookmark, files=item.files)
            else:
                yield item

    def _read_file(
        self, path: Path, kind: str, mapper: RowMapper, ingested_at: str
    ) -> Iterator[dict[str, t.Any]]:
        rows: Iterator[tuple[int, readers.Row]]
        if kind == "jsonl":
            rows = readers.read_jsonl(path)
        elif kind == "csv":
            rows = readers.read_csv(path, self.settings["csv_delimiter"])
        else:
            rows = readers.read_parquet(path)
        unit = "row" if kind == "parquet" else "line"
        for number, row in rows:
            if isinstance(row, str):
                self.skip_bad_record(f"{path.name}, {unit} {number}", row)
                continue
            try:
                yield t.cast("dict[str, t.Any]", mapper(row, ingested_at))
            except (ValueError, TypeError, OverflowError) as error:
                self.skip_bad_record(f"{path.name}, {unit} {number}", f"invalid event: {error}")

    @override
    def get_batches(
        self, batch_config: BatchConfig, context: Context | None = None
    ) -> Iterable[tuple[BaseBatchFileEncoding, list[str]]]:
        # Whole chunks of each file go from the converter to the BATCH files; no record
        # passes through the SDK's per-record loop. The STATE the SDK writes after each BATCH
        # message names only files whose events are all in that batch or earlier ones.
        # Imported here: DuckDB is for BATCH mode only (RECORD syncs start faster without it).
        from tap_clickstream.sources.files.columnar import FileConverter  # noqa: PLC0415

        converter = FileConverter(self.row_mapper(), self.settings["csv_delimiter"], self.logger)
        batcher = TableBatcher(self.tap_name, self.name, batch_config)
        self._write_starting_replication_value(context)
        pending: list[_Done] = []
        emitted = 0

        def read(path: Path, kind: str, ingested_at: str, digest: t.Any) -> Iterator[pa.Table]:
            for converted in converter.convert(path, kind, ingested_at, digest):
                for where, reason in converted.bad:
                    self.skip_bad_record(where, reason)
                yield converted.table

        try:
            with self.get_record_counter() as counter, self.get_sync_timer():
                for item in self._walk(context, read, converter.hashes):
                    if isinstance(item, _Done):
                        pending.append(item)
                        continue
                    table = self._drop_repeats(item)
                    emitted += len(table)
                    counter.increment(len(table))
                    ready, pending = pending, []
                    for manifest in batcher.add(table):
                        for done in ready:
                            self.complete_window(context, done.bookmark, files=done.files)
                        ready = []
                        yield batch_config.encoding, manifest
                    pending = ready + pending
                for done in pending:
                    self.complete_window(context, done.bookmark, files=done.files)
                for manifest in batcher.close():
                    yield batch_config.encoding, manifest
            self._finalize_state(self.stream_state)
        finally:
            batcher.discard()
            converter.close()
            self.log_sync_summary(emitted)

    def _drop_repeats(self, table: pa.Table) -> pa.Table:
        """The events not seen shortly before, as :meth:`EventStream.get_records` keeps them."""
        if not len(table):
            return table
        ids = table.column("event_id").to_pylist()
        if len(set(ids)) == len(ids) and self._recent_ids.isdisjoint(ids):
            # No repeat inside the table nor of a recent id: remember these, the newest last.
            self.remember_ids(ids)
            return table
        keep = [self._first_sighting(event_id) for event_id in ids]
        return table.filter(pa.array(np.asarray(keep, dtype=bool)))
