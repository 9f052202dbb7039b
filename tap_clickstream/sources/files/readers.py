"""Row readers per file format: each yields ``(row_number, row_or_error)`` pairs."""

from __future__ import annotations

import csv
import gzip
import io
import typing as t
import zlib
from pathlib import Path

import msgspec
import pyarrow as pa
import pyarrow.parquet as pq

from tap_clickstream.sources.files import settings

if t.TYPE_CHECKING:
    from collections.abc import Iterator

#: A row, or the reason it could not be read.
Row = dict[str, t.Any] | str
#: Errors that make the rest of a file unreadable (bad gzip, bad Parquet, not UTF-8, bad CSV).
#: A gzip file cut short raises EOFError; one whose deflate data is corrupt, zlib.error.
UNREADABLE = (OSError, EOFError, zlib.error, UnicodeDecodeError, csv.Error, pa.ArrowException)

_decode = msgspec.json.Decoder().decode


def detect_format(path: Path, configured: str) -> str:
    """Return the format of ``path``: the configured one, or the one its name ends with.

    Raises:
        ValueError: if the format is ``auto`` and the name ends with no known suffix.
    """
    if configured != "auto":
        return configured
    name = path.name.lower()
    for suffix, kind in sorted(settings.SUFFIXES.items(), key=lambda pair: -len(pair[0])):
        if name.endswith(suffix):
            return kind
    raise ValueError(
        f"cannot tell the format of {path} from its name; set files.format to jsonl, csv or parquet"
    )


def open_text(path: Path) -> t.IO[str]:
    """Open a text file (UTF-8, optionally gzipped) for the csv module."""
    if path.name.lower().endswith(".gz"):
        return io.TextIOWrapper(gzip.open(path), encoding="utf-8", newline="")
    return path.open(encoding="utf-8", newline="")


def decode_jsonl_line(line: bytes) -> Row | None:
    """The object of one JSON line, the reason it is not one, or None for a blank line."""
    if not line.strip():
        return None
    try:
        row = _decode(line)
    except msgspec.DecodeError as error:
        return f"malformed JSON: {error}"
    return row if isinstance(row, dict) else "malformed JSON: not an object"


def read_jsonl(path: Path) -> Iterator[tuple[int, Row]]:
    """Yield each JSON object of a JSON-lines file (optionally gzipped)."""
    opener = gzip.open if path.name.lower().endswith(".gz") else Path.open
    with opener(path, "rb") as lines:
        for number, line in enumerate(lines, start=1):
            row = decode_jsonl_line(line)
            if row is not None:
                yield number, row


def read_csv(path: Path, delimiter: str) -> Iterator[tuple[int, Row]]:
    """Yield each row of a CSV file as a dict; rows with the wrong field count are errors."""
    if path.name.lower().endswith((".tsv", ".tsv.gz")):
        delimiter = "\t"
    with open_text(path) as handle:
        reader = csv.reader(handle, delimiter=delimiter)
        header = next(reader, None)
        if header is None:
            return
        width = len(header)
        for row in reader:
            number = reader.line_num
            if len(row) != width:
                if not row:
                    continue
                yield number, f"truncated row: {len(row)} of {width} fields"
                continue
            yield (
                number,
                {name: value for name, value in zip(header, row, strict=True) if value != ""},
            )


def read_parquet(path: Path) -> Iterator[tuple[int, Row]]:
    """Yield each row of a Parquet file, reading it batch by batch."""
    number = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=settings.PARQUET_BATCH_ROWS):
        for row in batch.to_pylist():
            number += 1
            yield number, {key: value for key, value in row.items() if value is not None}
