"""Catalog constants."""

from __future__ import annotations

#: Catalog fields a column can be mapped to (the target's item columns but ``properties``).
FIELDS = (
    "item_id",
    "title",
    "category",
    "brand",
    "price",
    "cost",
    "margin",
    "available",
    "updated_at",
)
FORMATS = {".csv": "csv", ".tsv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl",
           ".parquet": "parquet", ".pq": "parquet"}  # fmt: skip
#: Rows per fetch from a SQL catalog; state is saved after each.
FETCH_ROWS = 10_000
#: Values of an availability column that mean "not available" (lower case).
UNAVAILABLE = frozenset(
    {"false", "0", "no", "n", "f", "out_of_stock", "out of stock", "outofstock", "unavailable",
     "discontinued", "sold_out", "sold out", ""}
)  # fmt: skip
