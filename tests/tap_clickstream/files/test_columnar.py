"""The column-wise converter against RowMapper, row for row, on rows of every awkward kind.

BATCH mode converts plain rows in SQL and hands the others to RowMapper (RECORD mode's path).
Random rows (seeded) mix plain values with the ones Python treats in its own way: floats as
text, booleans, objects where text is wanted, timestamps of every form, NaN, repeated and
unmapped keys, malformed lines. Each file is read both ways and must give the same events
and the same skipped rows; a share of the rows must have gone the SQL way.
"""

from __future__ import annotations

import csv
import io
import json
import math
import random
from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from singer_sdk.contrib.msgspec import enc_hook

from tap_clickstream.events import EVENT_COLUMNS, EventTypeMapper
from tap_clickstream.sources.files import columnar, readers
from tap_clickstream.sources.files.columnar import FileConverter
from tap_clickstream.sources.files.mapping import RowMapper

_encode = msgspec.json.Encoder(enc_hook=enc_hook, decimal_format="number").encode
INGESTED = "2024-01-01T00:00:00.000000Z"
EVENT_MAP = EventTypeMapper({"view": "product_view", "x y": "Thing"})
TEXT = ["x", "Product Viewed", "", "é ü", 'a"b', "a\\b", "true", "1", "12.5", " 3 ", "nan", "-0"]
NUMBERS = [0, 1, -1, 7, 1.5, 2.0, -0.0, 1e20, 1e-7, 10**30, 2**53 + 1, 1709283720123, -5]
TIMES = [
    "2024-03-01T09:00:00Z",
    "2024-03-01T09:00:00.000000Z",
    "2024-03-01 09:00:00",
    "2024-03-01T09:00:00.5+01:00",
    "2024-03-01T23:30:00-05:30",
    "2024-03-01 09:00:00 UTC",
    "2024-02-30T00:00:00Z",
    "2024-03-01T24:00:00Z",
    "2024-03-01T09:00:00.1234567Z",
    "2024-03-01",
    " 2024-03-01T09:00:00Z",
    "yesterday",
    "",
    1709283720,
    1709283720123,
    1709283720123456,
    0,
    -1,
    1709283720.5,
    "1709283720",
    "0999-12-31T23:00:00Z",
    "9999-12-31T23:00:00-01:00",
    True,
    None,
]


def normalised_record(record: dict[str, Any]) -> dict[str, Any]:
    """A RowMapper event as the BATCH layout holds it (objects as JSON, NaN as null)."""
    out = {}
    for name in EVENT_COLUMNS:
        value = record.get(name)
        if name in ("filters", "properties", "user_properties"):
            value = None if value is None else json.loads(_encode(value))
        elif name == "items":
            value = [
                {
                    k: v
                    for k, v in item.items()
                    if v is not None and not (isinstance(v, float) and not math.isfinite(v))
                }
                for item in value or []
            ]
        elif isinstance(value, float) and not math.isfinite(value):
            value = None
        out[name] = value
    return out


def normalised_row(row: dict[str, Any]) -> dict[str, Any]:
    out = dict(row)
    for name in ("filters", "properties", "user_properties"):
        out[name] = None if out[name] is None else json.loads(out[name])
    out["items"] = [{k: v for k, v in i.items() if v is not None} for i in out["items"] or []]
    return {name: out[name] for name in EVENT_COLUMNS}


def both_ways(path: Path, kind: str, mapper: RowMapper) -> tuple[Any, Any, int]:
    rows = {
        "jsonl": readers.read_jsonl,
        "csv": lambda p: readers.read_csv(p, ","),
        "parquet": readers.read_parquet,
    }[kind](path)
    unit = "row" if kind == "parquet" else "line"
    records, bad = [], []
    for number, row in rows:
        where = f"{path.name}, {unit} {number}"
        if isinstance(row, str):
            bad.append((where, row))
            continue
        try:
            records.append(normalised_record(dict(mapper(row, INGESTED))))
        except (ValueError, TypeError, OverflowError) as error:
            bad.append((where, f"invalid event: {error}"))
    converter = FileConverter(mapper)
    converted, skipped, in_sql = [], [], 0
    finish = converter._finish

    def counting(fast: pa.Table) -> pa.Table:
        nonlocal in_sql
        in_sql += len(fast)
        return finish(fast)

    converter._finish = counting  # type: ignore[method-assign]
    for chunk in converter.convert(path, kind, INGESTED):
        converted += [normalised_row(r) for r in chunk.table.to_pylist()]
        skipped += chunk.bad
    converter.close()
    return (records, sorted(bad)), (converted, sorted(skipped)), in_sql


def any_value(rng: random.Random, field: str) -> Any:
    if field in ("event_ts", "ingested_at"):
        return rng.choice(TIMES)
    roll = rng.random()
    if roll < 0.45:
        return rng.choice(TEXT)
    if roll < 0.7:
        return rng.choice(NUMBERS)
    if roll < 0.78:
        return rng.choice([True, False, None])
    if roll < 0.9:
        return rng.choice([{}, {"a": 1}, {"k": "v", "n": None}, {"deep": {"x": [1, 2]}}])
    return rng.choice([[], [1], ["a"], [{"item_id": "s"}]])


def plain_value(rng: random.Random, field: str) -> Any:
    """Mostly the values a well-behaved export holds, now and then anything."""
    if rng.random() < 0.05:
        return any_value(rng, field)
    if field in ("event_ts", "ingested_at"):
        return rng.choice([*TIMES[:6], 1709283720, 1709283720123])
    if field in ("revenue", "engagement_ms", "scroll_depth_pct", "media_progress_pct"):
        return rng.choice([1, 2.5, 0, None, 1e20, -3])
    if field == "event_count":
        return rng.choice([1, 2, 0, None])
    if field == "is_aggregate":
        return rng.choice([True, False, None])
    if field == "items":
        return [
            {
                "item_id": rng.choice(["s1", "s2", 7, ""]),
                "price": rng.choice([1, 2.5, None, "3.5"]),
                "quantity": rng.choice([1, None]),
                "position": rng.choice([1, None, 2.5]),
                "name": rng.choice(["n", None, "", True]),
                "extra": 1,
            }
            for _ in range(rng.randint(0, 2))
        ] + rng.choice([[], [], ["notobj"], [None]])
    if field in ("properties", "filters", "user_properties"):
        return rng.choice([{"a": "x"}, {}, {"n": 1, "m": [1, 2]}, None, "s"])
    return rng.choice(["x", "é", 'a"b', "", None, 12, "Product Viewed"])


def canonical_row(rng: random.Random) -> dict[str, Any]:
    value = plain_value if rng.random() < 0.7 else any_value
    row = {name: value(rng, name) for name in EVENT_COLUMNS if rng.random() < 0.4}
    if rng.random() < 0.95:
        row["event_ts"] = rng.choice(TIMES[:6])
    if rng.random() < 0.95:
        row["event_name"] = rng.choice(["Product Viewed", "view", "cart", "x y", 5])
    if rng.random() < 0.05:
        row["campaign"] = "spring"
    return row


def jsonl_text(rng: random.Random, rows: list[dict[str, Any]]) -> str:
    odd = [
        "",
        '{"event_name": "cut", "event_ts": "2024-03-01T00:0',
        "[1, 2]",
        '{"event_name": "x", "event_ts": "2024-03-01T00:00:00Z",}',
        '{"event_name": "x", "event_ts": "2024-03-01T00:00:00Z", "revenue": NaN}',
        '{"event_name": "x", "event_ts": "2024-03-01T00:00:00Z", "properties": {"a": 1e400}}',
        '{"event_name": "x", "event_name": "y", "event_ts": "2024-03-01T00:00:00Z"}',
        '{"event_name": "x", "event_ts": "2024-03-01T00:00:00Z", "items": [{"item_id": "a", "p": nan}]}',
    ]
    lines = [
        rng.choice(odd)
        if rng.random() < 0.08
        else json.dumps(
            row, ensure_ascii=rng.random() < 0.5, separators=rng.choice([(",", ":"), (", ", ": ")])
        )
        for row in rows
    ]
    return "\n".join(lines) + rng.choice(["\n", ""])


def check(path: Path, kind: str, mapper: RowMapper) -> int:
    (records, bad), (converted, skipped), in_sql = both_ways(path, kind, mapper)
    assert skipped == bad
    assert len(converted) == len(records)
    for number, (expected, got) in enumerate(zip(records, converted, strict=True)):
        assert got == expected, f"row {number}"
    return in_sql


@pytest.mark.parametrize("seed", [1, 2])
def test_json_lines_convert_as_row_mapper_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    rng = random.Random(seed)
    monkeypatch.setattr(columnar, "CHUNK_BYTES", 20_000)  # lines cut at block boundaries
    path = tmp_path / "events.jsonl"
    path.write_text(jsonl_text(rng, [canonical_row(rng) for _ in range(600)]))
    assert check(path, "jsonl", RowMapper({}, EVENT_MAP)) > 120  # rows on the SQL path
    mapping = {
        "event_ts": "event_ts",
        "event_name": "event_name",
        "user_id": "user_id",
        "items.item_id": "event_id",
        "items.price": "revenue",
        "items.position": "event_count",
        "revenue": "revenue",
        "session_id": "is_aggregate",
    }
    mapped_rows = [
        {k: v for k, v in canonical_row(rng).items() if k in mapping.values()} for _ in range(300)
    ]
    path.write_text(jsonl_text(rng, mapped_rows))
    assert check(path, "jsonl", RowMapper(mapping, EVENT_MAP)) > 30


@pytest.mark.parametrize("seed", [1, 2])
def test_csv_converts_as_row_mapper_does(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    header = ["ts", "action", "user", "sku", "price", "extra", "event_id", "is_aggregate"]
    header += ["event_count", "revenue", "items", "properties"]
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    for _ in range(400):
        values = [
            str(rng.choice([*TIMES[:6], "", "yesterday", 1709283720])),
            rng.choice(["view", "Order Completed", "", "x y"]),
            rng.choice(["u1", "", "12", "é"]),
            rng.choice(["s1", "", "7"]),
            rng.choice(["12.00", "", "abc", "1e3", " 2", "-0", "1_0"]),
            rng.choice(["x", "", "y,z", 'q"q']),
            rng.choice(["", "", "id1", "id2"]),
            rng.choice(["", "true", "1", "TRUE", "no"]),
            rng.choice(["", "2", "0", "2.5", "x"]),
            rng.choice(["", "9.5"]),
            rng.choice(["", "abc"]),
            rng.choice(["", "", "", "{}"]),
        ]
        writer.writerow(values[:5] if rng.random() < 0.03 else values)
    path = tmp_path / "events.csv"
    path.write_text(buffer.getvalue())
    mapping = {
        "event_ts": "ts",
        "event_name": "action",
        "user_id": "user",
        "items.item_id": "sku",
        "items.price": "price",
        "event_id": "event_id",
        "event_count": "event_count",
    }
    assert check(path, "csv", RowMapper(mapping, EVENT_MAP)) > 100
    assert check(path, "csv", RowMapper({}, EVENT_MAP)) >= 0  # no event_ts column: Python


def test_parquet_converts_as_row_mapper_does(tmp_path: Path) -> None:
    rng = random.Random(3)
    rows = [
        {
            "event_ts": rng.choice([datetime(2024, 3, 1, 9, 0, rng.randint(0, 59)), None]),
            "event_name": rng.choice(["view", "Order Completed", None, ""]),
            "user_id": rng.choice([1, 2, None, -3]),
            "sku": rng.choice(["a", None, ""]),
            "price": rng.choice([1.5, float("nan"), None, 2.0, float("inf")]),
            "flag": rng.choice([True, False, None]),
            "event_id": rng.choice([None, "x1", "x2"]),
            "n": rng.choice([1, None]),
        }
        for _ in range(300)
    ]
    schema = pa.schema(
        [
            ("event_ts", pa.timestamp("us")),
            ("event_name", pa.string()),
            ("user_id", pa.int64()),
            ("sku", pa.string()),
            ("price", pa.float64()),
            ("flag", pa.bool_()),
            ("event_id", pa.string()),
            ("n", pa.int32()),
        ]
    )
    path = tmp_path / "events.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)
    mapping = {
        "event_ts": "event_ts",
        "event_name": "event_name",
        "user_id": "user_id",
        "items.item_id": "sku",
        "items.price": "price",
        "event_id": "event_id",
    }
    assert check(path, "parquet", RowMapper(mapping, EVENT_MAP)) > 50
    assert check(path, "parquet", RowMapper({}, EVENT_MAP)) > 30
