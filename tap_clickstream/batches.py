"""BATCH files of canonical events, written faster than the SDK's generic batchers.

The generic Parquet batcher infers a schema from each chunk (and cannot write the empty
``user_properties`` objects); the generic JSONL one encodes with the standard library. This one
writes the canonical schema directly: Parquet with fixed column types, where free-form objects
(``properties``, ``filters``...) travel as JSON text, or JSON lines encoded by msgspec.
"""

from __future__ import annotations

import gzip
import itertools
import typing as t
from uuid import uuid4

import msgspec
import pyarrow as pa
import pyarrow.parquet as pq

from tap_clickstream.events import EVENT_COLUMNS, EVENT_SCHEMA

if t.TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from singer_sdk.helpers._batch import BatchConfig

__all__ = ["EventBatcher"]

_encode = msgspec.json.Encoder().encode
_SCALARS = {"string": pa.string(), "number": pa.float64(), "integer": pa.int64(), "boolean": pa.bool_()}


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
    name for name in EVENT_COLUMNS if ARROW_SCHEMA.field(name).type == pa.string() and "object" in str(_PROPS[name].get("type"))
]


def _json_text(value: t.Any) -> str | None:
    return None if value is None else _encode(value).decode()


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
                    pq.write_table(self._table(chunk), handle, compression="gzip" if gzipped else "snappy")
                elif gzipped:
                    with gzip.GzipFile(fileobj=handle, mode="wb", compresslevel=1) as packed:
                        packed.write(b"\n".join(_encode(r) for r in chunk) + b"\n")
                else:
                    handle.write(b"\n".join(_encode(r) for r in chunk) + b"\n")
            yield [storage.get_url(filename)]

    @staticmethod
    def _table(chunk: list[dict[str, t.Any]]) -> pa.Table:
        columns = {name: [record.get(name) for record in chunk] for name in EVENT_COLUMNS}
        for name in _JSON_TEXT:
            columns[name] = [_json_text(value) for value in columns[name]]
        return pa.Table.from_pydict(columns, schema=ARROW_SCHEMA)
