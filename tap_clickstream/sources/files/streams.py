"""File streams: ``file_events``."""

from __future__ import annotations

import csv
import glob
import hashlib
import typing as t
from pathlib import Path

import pyarrow as pa
from typing_extensions import override

from tap_clickstream.events import EventTypeMapper
from tap_clickstream.samples import SAMPLE_EVENT_MAP, SAMPLE_MAPPING, SAMPLE_PATH
from tap_clickstream.sources.files import readers, settings
from tap_clickstream.sources.files.mapping import RowMapper, mtime_iso
from tap_clickstream.streams import EventStream

if t.TYPE_CHECKING:
    from collections.abc import Iterator

    from singer_sdk.helpers.types import Context


#: Errors that make a whole file unreadable (bad gzip, bad Parquet, not UTF-8, bad CSV).
_UNREADABLE = (OSError, EOFError, UnicodeDecodeError, csv.Error, pa.ArrowException)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(settings.HASH_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


class FileEventsStream(EventStream):
    """Events from JSONL, CSV and Parquet files; a file is read again only when it changed.

    With no source configured at all, it reads the bundled REES46 sample.
    """

    name = "file_events"
    settings_key = "files"
    replication_key = "ingested_at"

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

    @override
    def read_events(self, context: Context | None) -> Iterator[dict[str, t.Any]]:
        if self.uses_sample:
            event_map = {**SAMPLE_EVENT_MAP, **(self.config.get("event_map") or {})}
            mapper = RowMapper(SAMPLE_MAPPING, EventTypeMapper(event_map))
        else:
            mapper = RowMapper(self.settings.get("mapping") or {}, self.map_event_type)
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
            digest = _sha256(path)
            if previous and previous.get("sha256") == digest:
                self.logger.info("Skipping %s: touched but its content is unchanged", path)
                # Remember the new time, so the next sync need not hash the file again.
                seen[key] = {**fingerprint, "sha256": digest}
                if newest is not None:
                    self.complete_window(context, newest, files=seen)
                continue
            try:
                kind = readers.detect_format(path, self.settings.get("format", "auto"))
            except ValueError as error:
                self.skip_bad_record(path.name, f"unknown format: {error}")
                continue
            self.logger.info("Reading %s", path)
            ingested_at = mtime_iso(stat.st_mtime_ns)
            try:
                yield from self._read_file(path, kind, mapper, ingested_at)
            except _UNREADABLE as error:
                # Not remembered as read: the next sync tries the file again.
                self.skip_bad_record(path.name, f"unreadable file: {error}")
                continue
            seen[key] = {**fingerprint, "sha256": digest}
            newest = max(newest or ingested_at, ingested_at)
            self.complete_window(context, newest, files=seen)

    def _read_file(
        self, path: Path, kind: str, mapper: RowMapper, ingested_at: str
    ) -> Iterator[dict[str, t.Any]]:
        rows: Iterator[tuple[int, readers.Row]]
        if kind == "jsonl":
            rows = readers.read_jsonl(path)
        elif kind == "csv":
            rows = readers.read_csv(path, self.settings.get("csv_delimiter", ","))
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
