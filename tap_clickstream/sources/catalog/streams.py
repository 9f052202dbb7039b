"""Catalog streams: ``items``."""

from __future__ import annotations

import csv
import json
import logging
import math
import typing as t
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import sqlalchemy as sa
from singer_sdk import Stream
from singer_sdk import typing as th
from typing_extensions import override

from tap_clickstream.events import format_ts, parse_ts
from tap_clickstream.normalize import as_float, as_str, json_ready
from tap_clickstream.sources.catalog import settings
from tap_clickstream.streams import EventStream

if t.TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from singer_sdk.helpers._batch import BaseBatchFileEncoding, BatchConfig
    from singer_sdk.helpers.types import Context

__all__ = ["ITEM_SCHEMA", "ItemsStream", "to_item"]

ITEM_SCHEMA: dict[str, t.Any] = th.PropertiesList(
    th.Property("item_id", th.StringType, required=True, description="Item id, as events name it"),
    th.Property("title", th.StringType),
    th.Property("category", th.StringType),
    th.Property("brand", th.StringType),
    th.Property("price", th.NumberType),
    th.Property("cost", th.NumberType),
    th.Property("margin", th.NumberType, description="price - cost"),
    th.Property("available", th.BooleanType),
    th.Property("updated_at", th.DateTimeType, description="When the item last changed (UTC)"),
    th.Property("properties", th.ObjectType(additional_properties=True)),
).to_dict()


def _available(value: object) -> bool | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float | Decimal):
        return value > 0  # a stock count
    return str(value).strip().lower() not in settings.UNAVAILABLE


def to_item(row: t.Mapping[str, t.Any], mapping: t.Mapping[str, str]) -> dict[str, t.Any]:
    """The catalog record of one row: mapped fields, the other columns in ``properties``.

    A field the mapping leaves out is read from the column of its own name. A missing margin
    is price - cost, a missing cost price - margin.

    Raises:
        ValueError: when item_id is missing or a number or time does not parse.
    """
    columns = {field: mapping.get(field, field) for field in settings.FIELDS}
    item_id = as_str(row.get(columns["item_id"]))
    if item_id is None:
        raise ValueError(f"item_id (column {columns['item_id']!r}) is missing")
    record: dict[str, t.Any] = {"item_id": item_id}
    for field in ("title", "category", "brand"):
        record[field] = as_str(row.get(columns[field]))
    for field in ("price", "cost", "margin"):
        raw = row.get(columns[field])
        number = as_float(raw)
        if number is None and raw not in (None, ""):
            raise ValueError(f"{field} is not a number: {raw!r}")
        record[field] = None if number is None or not math.isfinite(number) else number
    price, cost, margin = record["price"], record["cost"], record["margin"]
    if margin is None and price is not None and cost is not None:
        record["margin"] = round(price - cost, 6)
    elif cost is None and price is not None and margin is not None:
        record["cost"] = round(price - margin, 6)
    record["available"] = _available(row.get(columns["available"]))
    updated = row.get(columns["updated_at"])
    record["updated_at"] = None if updated in (None, "") else format_ts(parse_ts(updated))
    used = set(columns.values())
    record["properties"] = {
        str(k): json_ready(v) for k, v in row.items() if k not in used and v is not None
    }
    return record


class ItemsStream(EventStream):
    """The item catalog (price, cost or margin, category, brand, availability), by update time.

    From a SQL table (``catalog.sqlalchemy_url`` + ``catalog.table``, read in update-time order
    with state saved every few thousand rows) or a CSV, JSON-lines or Parquet file
    (``catalog.path``). Rows updated at or after the bookmark are read again on the next sync;
    the target replaces items by ``item_id``, so a re-read changes nothing.
    """

    name = "items"
    source_settings = settings.SETTINGS
    schema: t.ClassVar[dict[str, t.Any]] = ITEM_SCHEMA
    primary_keys: t.ClassVar[list[str]] = ["item_id"]
    replication_key = "updated_at"

    @property
    def mapping(self) -> dict[str, str]:
        """Catalog field -> column."""
        return {str(k): str(v) for k, v in (self.settings.get("mapping") or {}).items()}

    @override
    def get_records(self, context: Context | None) -> Iterable[dict[str, t.Any]]:
        emitted = 0
        try:
            for record in self.read_events(context):
                emitted += 1
                yield record
        finally:
            self.log_sync_summary(emitted)

    @override
    def log_sync_summary(self, emitted: int) -> None:
        skipped = sum(self.bad_records.values())
        detail = ", ".join(f"{reason}: {n}" for reason, n in self.bad_records.most_common())
        self.logger.log(
            logging.WARNING if skipped else logging.INFO,
            "Stream %s emitted %d items and skipped %d malformed records%s",
            self.name,
            emitted,
            skipped,
            f" ({detail})" if detail else "",
        )

    @override
    def get_batches(
        self, batch_config: BatchConfig, context: Context | None = None
    ) -> Iterable[tuple[BaseBatchFileEncoding, list[str]]]:
        # The SDK's batcher: the event batcher writes the canonical event schema.
        return Stream.get_batches(self, batch_config, context)

    @override
    def read_events(self, context: Context | None) -> Iterator[dict[str, t.Any]]:
        bookmark = self.bookmark(context)
        since = parse_ts(bookmark) if bookmark else None
        if self.settings.get("path"):
            yield from self._read_file(context, Path(self.settings["path"]).expanduser(), since)
        else:
            yield from self._read_table(context, since)

    def _emit(
        self, rows: Iterable[tuple[str, t.Mapping[str, t.Any]]], since: datetime | None
    ) -> Iterator[dict[str, t.Any]]:
        mapping = self.mapping
        for where, row in rows:
            try:
                record = to_item(row, mapping)
            except (ValueError, TypeError, OverflowError) as error:
                self.skip_bad_record(where, f"invalid item: {error}")
                continue
            if (
                since is not None
                and record["updated_at"]
                and parse_ts(record["updated_at"]) < since
            ):
                continue
            yield record

    def _read_file(
        self, context: Context | None, path: Path, since: datetime | None
    ) -> Iterator[dict[str, t.Any]]:
        suffix = path.suffix.lower()
        kind = settings.FORMATS.get(suffix)
        if kind is None:
            raise ValueError(f"catalog.path {path.name}: not a .csv, .jsonl or .parquet file")
        newest: str | None = None
        for record in self._emit(self._file_rows(path, kind), since):
            if record["updated_at"]:
                newest = max(newest or record["updated_at"], record["updated_at"])
            yield record
        bookmark = self.bookmark(context)
        if newest and (bookmark is None or parse_ts(newest) > parse_ts(bookmark)):
            self.complete_window(context, newest)

    def _file_rows(self, path: Path, kind: str) -> Iterator[tuple[str, t.Mapping[str, t.Any]]]:
        if kind == "parquet":
            import pyarrow.parquet as pq  # noqa: PLC0415 (only parquet catalogs need it)

            number = 0
            for batch in pq.ParquetFile(path).iter_batches():
                for row in batch.to_pylist():
                    number += 1
                    yield f"{path.name}, row {number}", row
            return
        with path.open(newline="", encoding="utf-8") as handle:
            if kind == "csv":
                delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
                for number, row in enumerate(csv.DictReader(handle, delimiter=delimiter), 2):
                    yield f"{path.name}, line {number}", row
                return
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except ValueError:
                    self.skip_bad_record(f"{path.name}, line {number}", "malformed JSON")
                    continue
                if not isinstance(row, dict):
                    self.skip_bad_record(f"{path.name}, line {number}", "not a JSON object")
                    continue
                yield f"{path.name}, line {number}", row

    def _read_table(
        self, context: Context | None, since: datetime | None
    ) -> Iterator[dict[str, t.Any]]:
        schema, _, name = str(self.settings["table"]).rpartition(".")
        engine = sa.create_engine(str(self.settings["sqlalchemy_url"]))
        try:
            with engine.connect() as connection:
                probe = sa.select(sa.text("*")).select_from(sa.table(name, schema=schema or None))
                columns = list(connection.execute(probe.limit(0)).keys())
                table = sa.table(name, *(sa.column(c) for c in columns), schema=schema or None)
                updated = self.mapping.get("updated_at", "updated_at")
                query = sa.select(*table.c)
                if updated in table.c:
                    if since is not None:
                        query = query.where(table.c[updated] >= since.replace(tzinfo=None))
                    query = query.order_by(table.c[updated])
                else:
                    updated = ""
                result = connection.execution_options(stream_results=True).execute(query)
                number = 0
                name = self.settings["table"]
                for chunk in result.mappings().partitions(settings.FETCH_ROWS):
                    rows: list[tuple[str, t.Mapping[str, t.Any]]] = []
                    for row in chunk:
                        number += 1
                        rows.append((f"{name}, row {number}", dict(row)))
                    newest = None
                    for record in self._emit(rows, since):
                        newest = record["updated_at"] or newest
                        yield record
                    if updated and newest:
                        self.complete_window(context, newest)
        finally:
            engine.dispose()
