"""Item-catalog settings (the ``catalog`` block) and constants."""

from __future__ import annotations

import typing as t

from singer_sdk import typing as th

from tap_clickstream.source_settings import (
    SourceSettings,
    sqlalchemy_url_description,
    sqlalchemy_url_errors,
)

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

SCHEMA = th.ObjectType(
    th.Property(
        "sqlalchemy_url",
        th.StringType,
        secret=True,
        title="Catalog database URL",
        description=sqlalchemy_url_description(
            "database holding the catalog table", "postgresql+psycopg://host/db"
        ),
    ),
    th.Property(
        "table",
        th.StringType,
        title="Catalog table",
        description="Table (or schema.table) of the catalog, with catalog.sqlalchemy_url.",
    ),
    th.Property(
        "path",
        th.StringType,
        title="Catalog file",
        description="A CSV, JSON-lines or Parquet catalog file, instead of a table.",
    ),
    th.Property(
        "mapping",
        th.ObjectType(additional_properties=True),
        title="Column mapping",
        description=(
            "Catalog field -> column, for fields whose column has another name, e.g. "
            '{"item_id": "sku", "available": "in_stock"}. Fields: '
            + ", ".join(FIELDS)
            + ". Unmapped columns go to properties."
        ),
    ),
    additional_properties=False,
)


def check(block: dict[str, t.Any]) -> list[str]:
    """The catalog rules JSON schema cannot express."""
    errors: list[str] = []
    has_sql = bool(block.get("sqlalchemy_url") or block.get("table"))
    if block.get("path") and has_sql:
        errors.append(
            "catalog: set catalog.path or catalog.sqlalchemy_url with catalog.table, not both"
        )
    elif block.get("path"):
        path = str(block["path"]).lower()
        if not any(path.endswith(suffix) for suffix in FORMATS):
            errors.append("catalog.path must be a .csv, .tsv, .jsonl or .parquet file")
    elif not block.get("sqlalchemy_url"):
        errors.append("catalog.sqlalchemy_url (with catalog.table) or catalog.path is required")
    else:
        errors += sqlalchemy_url_errors(block, "catalog")
        if not block.get("table"):
            errors.append("catalog.table is required with catalog.sqlalchemy_url")
    mapping = block.get("mapping") or {}
    if isinstance(mapping, dict):
        unknown = sorted(str(k) for k in mapping if k not in FIELDS)
        if unknown:
            errors.append(
                f"catalog.mapping has keys that are not catalog fields: {', '.join(unknown)}"
            )
        bad = sorted(str(k) for k, v in mapping.items() if not isinstance(v, str) or not v)
        if bad:
            errors.append(f"catalog.mapping must give a column name for: {', '.join(bad)}")
    return errors


SETTINGS = SourceSettings(
    key="catalog",
    title="Item catalog",
    description="Item catalog from a SQL table or a file (stream items).",
    schema=SCHEMA,
    groups=(("path",), ("sqlalchemy_url", "table")),
    check=check,
)
