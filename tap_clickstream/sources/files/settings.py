"""File-source constants."""

from __future__ import annotations

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
