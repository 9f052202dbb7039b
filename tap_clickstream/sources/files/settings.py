"""Event-file settings (the ``files`` block) and constants: formats by file name."""

from __future__ import annotations

import typing as t

from singer_sdk import typing as th

from tap_clickstream.events import EVENT_COLUMNS
from tap_clickstream.schema_objects import ITEM_FIELDS
from tap_clickstream.source_settings import SourceSettings

FORMATS = ("auto", "jsonl", "csv", "parquet")
#: File name endings (lower case) that select a format when ``files.format`` is ``auto``.
SUFFIXES = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".jsonl.gz": "jsonl",
    ".ndjson.gz": "jsonl",
    ".json.gz": "jsonl",
    ".csv": "csv",
    ".csv.gz": "csv",
    ".tsv": "csv",
    ".tsv.gz": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
}
PARQUET_BATCH_ROWS = 65_536
HASH_CHUNK_BYTES = 1 << 20
#: Canonical fields a file column can be mapped to.
MAPPABLE = frozenset(EVENT_COLUMNS) | {f"items.{name}" for name in ITEM_FIELDS}

SCHEMA = th.ObjectType(
    th.Property(
        "paths",
        th.ArrayType(th.StringType),
        title="Paths",
        description="Glob patterns of event files (** allowed). Empty: the bundled REES46 sample.",
    ),
    th.Property(
        "format",
        th.StringType,
        default="auto",
        allowed_values=list(FORMATS),
        title="Format",
        description=(
            "jsonl, csv or parquet; auto picks by file name (.gz allowed for jsonl and csv)."
        ),
    ),
    th.Property(
        "mapping",
        th.ObjectType(additional_properties=True),
        title="Column mapping",
        description=(
            'Canonical field -> column, e.g. {"event_ts": "time", "items.item_id": "sku"}. '
            "Empty when rows are canonical events already. Unmapped columns go to properties."
        ),
    ),
    th.Property(
        "csv_delimiter",
        th.StringType,
        default=",",
        title="CSV delimiter",
        description="Field separator of CSV files (.tsv files always use tabs).",
    ),
    additional_properties=False,
)


def check(block: dict[str, t.Any]) -> list[str]:
    """The event-file rules JSON schema cannot express."""
    errors = []
    paths = block.get("paths")
    if paths is None:
        errors.append(
            "files.paths is required to read event files (the bundled sample is read only "
            "when no source is configured)"
        )
    elif not isinstance(paths, list) or not all(isinstance(p, str) and p for p in paths):
        errors.append("files.paths must be a list of glob patterns")
    mapping = block.get("mapping") or {}
    if not isinstance(mapping, dict):
        return errors
    unknown = sorted(str(field) for field in mapping if field not in MAPPABLE)
    if unknown:
        errors.append(f"files.mapping has keys that are not canonical fields: {', '.join(unknown)}")
    not_columns = sorted(str(field) for field, col in mapping.items() if not isinstance(col, str))
    if not_columns:
        errors.append(f"files.mapping must give a column name for: {', '.join(not_columns)}")
    if mapping and "event_ts" not in mapping:
        errors.append("files.mapping must map event_ts to the column holding the event time")
    if mapping and not ({"event_name", "event_type"} & set(mapping)):
        errors.append("files.mapping must map event_name (or event_type) to a column")
    delimiter = block.get("csv_delimiter")
    if not isinstance(delimiter, str) or len(delimiter) != 1:
        errors.append(f"files.csv_delimiter must be one character, not {delimiter!r}")
    return errors


SETTINGS = SourceSettings(
    key="files",
    title="Event files",
    description=(
        "Event files (stream file_events). Also the embedded default when no source is configured."
    ),
    schema=SCHEMA,
    groups=(("paths",),),
    check=check,
)
