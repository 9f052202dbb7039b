"""BATCH files of canonical events, written faster than the SDK's generic batchers.

The generic Parquet batcher infers a schema from each chunk (and cannot write the empty
``user_properties`` objects); the generic JSONL one encodes with the standard library. This one
writes the canonical schema directly: Parquet with fixed column types, where free-form objects
(``properties``, ``filters``...) travel as JSON text, or JSON lines encoded by msgspec.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import gzip
import itertools
import math
import typing as t
from uuid import uuid4

import msgspec
import pyarrow as pa
import pyarrow.parquet as pq
from singer_sdk.contrib.msgspec import enc_hook

from tap_clickstream.events import EVENT_COLUMNS, EVENT_SCHEMA

if t.TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from singer_sdk.helpers._batch import BatchConfig

__all__ = ["ARROW_SCHEMA", "EventBatcher", "records_table"]

# The encoder of the tap's RECORD messages (the SDK's msgspec writer): a free-form object
# reads the same from a BATCH file as from a RECORD message.
_encode = msgspec.json.Encoder(enc_hook=enc_hook, decimal_format="number").encode
_SCALARS = {
    "string": pa.string(),
    "number": pa.float64(),
    "integer": pa.int64(),
    "boolean": pa.bool_(),
}


def _arrow_type(prop: dict[str, t.Any]) -> pa.DataType:
    types = prop.get("type", "string")
    kind = next(k for k in ([types] if isinstance(types, str) else types) if k != "null")
    if kind == "array":
        return pa.list_(_arrow_type(prop["items"]))
    if kind == "object" and prop.get("properties"):
        return pa.struct([pa.field(n, _arrow_type(p)) for n, p in prop["properties"].items()])
    if kind == "object":
        return pa.string()  # free-form: JSON text
    return _SCALARS[kind]


_PROPS = EVENT_SCHEMA["properties"]
ARROW_SCHEMA = pa.schema([pa.field(name, _arrow_type(_PROPS[name])) for name in EVENT_COLUMNS])
_JSON_TEXT = [
    name
    for name in EVENT_COLUMNS
    if ARROW_SCHEMA.field(name).type == pa.string() and "object" in str(_PROPS[name].get("type"))
]


_NUMBERS = [name for name in EVENT_COLUMNS if ARROW_SCHEMA.field(name).type == pa.float64()]
_ITEM_NUMBERS = [
    field.name
    for field in ARROW_SCHEMA.field("items").type.value_type
    if field.type == pa.float64()
]


def _json_text(value: t.Any) -> str | None:
    return None if value is None else _encode(value).decode()


def _finite(value: t.Any) -> t.Any:
    # NaN and infinities travel as null in RECORD messages (msgspec), so in files too.
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _clean_items(items: t.Any) -> t.Any:
    if not items:
        return items
    return [
        {**item, **{k: _finite(item.get(k)) for k in _ITEM_NUMBERS if k in item}}
        if isinstance(item, dict)
        else item
        for item in items
    ]


def records_table(records: list[dict[str, t.Any]]) -> pa.Table:
    """Canonical event records as an Arrow table in the BATCH layout (:data:`ARROW_SCHEMA`)."""
    columns = {name: [record.get(name) for record in records] for name in EVENT_COLUMNS}
    for name in _JSON_TEXT:
        columns[name] = [_json_text(value) for value in columns[name]]
    for name in _NUMBERS:
        columns[name] = [_finite(value) for value in columns[name]]
    columns["items"] = [_clean_items(value) for value in columns["items"]]
    return pa.Table.from_pydict(columns, schema=ARROW_SCHEMA)


class EventBatcher:
    """Write canonical event records to BATCH files, ``batch_config.batch_size`` rows each."""

    def __init__(self, tap_name: str, stream_name: str, batch_config: BatchConfig) -> None:
        self.sync_id = f"{tap_name}--{stream_name}-{uuid4()}"
        self.config = batch_config

    def get_batches(self, records: Iterable[dict[str, t.Any]]) -> Iterator[list[str]]:
        """Yield one manifest (a list of file URLs) per written file."""
        iterator = iter(records)
        storage = self.config.storage
        prefix = storage.prefix or ""
        parquet = self.config.encoding.format == "parquet"
        gzipped = self.config.encoding.compression == "gzip"
        for number in itertools.count(1):
            chunk = list(itertools.islice(iterator, self.config.batch_size))
            if not chunk:
                return
            suffix = ".parquet" if parquet else ".json.gz" if gzipped else ".json"
            filename = f"{prefix}{self.sync_id}-{number}{suffix}"
            with storage.open(filename, "wb") as handle:
                if parquet:
                    pq.write_table(
                        self._table(chunk), handle, compression="gzip" if gzipped else "snappy"
                    )
                elif gzipped:
                    with gzip.GzipFile(fileobj=handle, mode="wb", compresslevel=1) as packed:
                        packed.write(b"\n".join(_encode(r) for r in chunk) + b"\n")
                else:
                    handle.write(b"\n".join(_encode(r) for r in chunk) + b"\n")
            yield [storage.get_url(filename)]

    @staticmethod
    def _table(chunk: list[dict[str, t.Any]]) -> pa.Table:
        return records_table(chunk)


_decode = msgspec.json.Decoder().decode
# Columns with few distinct values: dictionary-encoded in Parquet files (ids, URLs and free
# text would only fill and drop a dictionary, at a cost).
_CATEGORICAL = [
    "source", "event_name", "event_type", "utm_source", "utm_medium", "utm_campaign",
    "currency", "device_category", "os", "browser", "country", "region", "city",
]  # fmt: skip


class TableBatcher:
    """Write Arrow tables of canonical events (:data:`ARROW_SCHEMA`) to BATCH files.

    Tables are added as they come; a file is closed once it holds ``batch_config.batch_size``
    rows (a table may be split across files), and :meth:`add` and :meth:`close` return the
    manifests of the files closed. Parquet files are written a row group at a time, so memory
    holds one table, not one file; the writing happens in a thread (pyarrow frees the GIL)
    while the caller prepares the next table.
    """

    def __init__(self, tap_name: str, stream_name: str, batch_config: BatchConfig) -> None:
        self.sync_id = f"{tap_name}--{stream_name}-{uuid4()}"
        self.config = batch_config
        self.parquet = batch_config.encoding.format == "parquet"
        self.gzipped = batch_config.encoding.compression == "gzip"
        self._number = 0
        self._rows = 0
        self._filename: str | None = None
        self._files = contextlib.ExitStack()
        self._writer: t.Any = None
        self._pool = concurrent.futures.ThreadPoolExecutor(1)
        self._writes: list[concurrent.futures.Future[None]] = []

    def add(self, table: pa.Table) -> list[list[str]]:
        """Add events; return the manifests of the files this filled."""
        done: list[list[str]] = []
        size = self.config.batch_size
        while len(table):
            if self._filename is None:
                self._open()
            room = size - self._rows
            part, table = table.slice(0, room), table.slice(room)
            self._writes.append(self._pool.submit(self._write, part))
            self._rows += len(part)
            if self._rows >= size:
                done.append(self._close())
        return done

    def close(self) -> list[list[str]]:
        """Close the file being filled, if any; return its manifest."""
        try:
            return [self._close()] if self._filename is not None else []
        finally:
            self._pool.shutdown()

    def discard(self) -> None:
        """Stop writing (after a failure, or :meth:`close`): a file being filled is dropped."""
        self._pool.shutdown(cancel_futures=True)
        with contextlib.suppress(Exception):
            self._files.close()

    def _open(self) -> None:
        self._number += 1
        suffix = ".parquet" if self.parquet else ".json.gz" if self.gzipped else ".json"
        self._filename = f"{self.config.storage.prefix or ''}{self.sync_id}-{self._number}{suffix}"
        handle = self._files.enter_context(self.config.storage.open(self._filename, "wb"))
        if self.parquet:
            # The files live only until the target loads them: no min/max statistics, and
            # no compression unless asked for (dictionary encoding keeps them small).
            self._writer = pq.ParquetWriter(
                handle,
                ARROW_SCHEMA,
                compression="gzip" if self.gzipped else "none",
                write_statistics=False,
                use_dictionary=_CATEGORICAL,
            )
            self._files.callback(self._writer.close)
        elif self.gzipped:
            self._writer = self._files.enter_context(
                gzip.GzipFile(fileobj=handle, mode="wb", compresslevel=1)
            )
        else:
            self._writer = handle
        self._rows = 0

    def _write(self, table: pa.Table) -> None:
        if self.parquet:
            self._writer.write_table(table)
            return
        records = table.to_pylist()
        for record in records:
            for name in _JSON_TEXT:
                if record[name] is not None:
                    record[name] = _decode(record[name])
            record["items"] = [
                {k: v for k, v in item.items() if v is not None} for item in record["items"] or []
            ]
        self._writer.write(b"".join(_encode(r) + b"\n" for r in records))

    def _close(self) -> list[str]:
        writes, self._writes = self._writes, []
        for write in writes:
            write.result()  # done, or raise its error here
        self._files.close()  # the writer, then the file
        manifest = [self.config.storage.get_url(str(self._filename))]
        self._filename = self._writer = None
        return manifest
