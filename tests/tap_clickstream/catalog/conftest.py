"""Catalog fixtures: the same six items as a CSV, JSON-lines and Parquet file or a SQL table."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import sqlalchemy as sa

from tap_clickstream.events import parse_ts

#: Rows as a shop's catalog export names its columns.
ROWS: list[dict[str, Any]] = [
    {"sku": "42", "name": "Red shoes", "cat": "shoes", "maker": "Acme", "price": 19.99,
     "cost": 12.0, "stock": "in_stock", "modified": "2024-03-01T10:00:00Z", "color": "red"},
    {"sku": "43", "name": "Blue shoes", "cat": "shoes", "maker": "Acme", "price": 24.5,
     "cost": 15.5, "stock": "out_of_stock", "modified": "2024-03-02T10:00:00Z", "color": "blue"},
    {"sku": "A", "name": "Socks", "cat": "socks", "maker": None, "price": 20.0, "cost": None,
     "stock": "in_stock", "modified": "2024-03-03T10:00:00Z", "color": None},
    {"sku": "B", "name": "Laces", "cat": "laces", "maker": "Knot", "price": 15.0, "cost": 3.0,
     "stock": "in_stock", "modified": "2024-03-04T10:00:00Z", "color": "black"},
]  # fmt: skip
MAPPING = {
    "item_id": "sku",
    "title": "name",
    "category": "cat",
    "brand": "maker",
    "available": "stock",
    "updated_at": "modified",
}


def write_csv(path: Path, rows: list[dict[str, Any]] = ROWS) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows([{k: "" if v is None else v for k, v in r.items()} for r in rows])
    return path


def write_parquet(path: Path, rows: list[dict[str, Any]] = ROWS) -> Path:
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def create_table(url: str, table: str, rows: list[dict[str, Any]] = ROWS) -> None:
    """A catalog table with typed columns (numeric prices, a timestamp ``modified``)."""
    schema, _, name = table.rpartition(".")
    engine = sa.create_engine(url)
    metadata = sa.MetaData()
    catalog = sa.Table(
        name,
        metadata,
        sa.Column("sku", sa.String, primary_key=True),
        sa.Column("name", sa.String),
        sa.Column("cat", sa.String),
        sa.Column("maker", sa.String),
        sa.Column("price", sa.Numeric(12, 2)),
        sa.Column("cost", sa.Numeric(12, 2)),
        sa.Column("stock", sa.String),
        sa.Column("modified", sa.DateTime),
        sa.Column("color", sa.String),
        schema=schema or None,
    )
    with engine.begin() as connection:
        metadata.create_all(connection)
        connection.execute(
            sa.insert(catalog),
            [{**r, "modified": parse_ts(r["modified"]).replace(tzinfo=None)} for r in rows],
        )
    engine.dispose()
