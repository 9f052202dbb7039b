"""``items``: the catalog from files and SQL tables, mapping, incremental state and bad rows."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path
from typing import Any

import pytest

from tap_clickstream.sources.catalog import settings as catalog_settings
from tap_clickstream.sources.catalog.streams import to_item
from tests.support.postgres import postgres_schema_url
from tests.tap_clickstream.catalog.conftest import (
    MAPPING,
    ROWS,
    create_table,
    write_csv,
    write_parquet,
)
from tests.tap_clickstream.helpers import run_tap

STREAM = "items"
ITEM_COLUMNS = {"item_id", "title", "category", "brand", "price", "cost", "margin", "available",
                "updated_at", "properties"}  # fmt: skip


def _check_items(records: list[dict[str, Any]]) -> None:
    items = {r["item_id"]: r for r in records}
    assert list(items) == ["42", "43", "A", "B"]
    for record in records:
        assert set(record) == ITEM_COLUMNS
    red = items["42"]
    assert (red["title"], red["category"], red["brand"]) == ("Red shoes", "shoes", "Acme")
    assert (red["price"], red["cost"], red["margin"]) == (19.99, 12.0, 7.99)
    assert red["available"] is True
    assert red["updated_at"] == "2024-03-01T10:00:00.000000Z"
    assert red["properties"] == {"color": "red"}
    assert items["43"]["available"] is False  # out_of_stock
    socks = items["A"]
    assert (socks["brand"], socks["cost"], socks["margin"]) == (None, None, None)


def test_csv_catalog_with_a_mapping(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "catalog.csv")
    result = run_tap({"catalog": {"path": str(path), "mapping": MAPPING}})
    assert result.error is None
    _check_items(result.records(STREAM))
    assert result.bookmark(STREAM) == "2024-03-04T10:00:00.000000Z"


def test_parquet_catalog(tmp_path: Path) -> None:
    path = write_parquet(tmp_path / "catalog.parquet")
    result = run_tap({"catalog": {"path": str(path), "mapping": MAPPING}})
    assert result.error is None
    _check_items(result.records(STREAM))


def test_jsonl_catalog_counts_bad_rows(tmp_path: Path) -> None:
    path = tmp_path / "catalog.jsonl"
    lines = [json.dumps(r) for r in ROWS]
    lines.insert(1, '{"sku": "broken"')  # malformed JSON
    lines.insert(2, json.dumps({"name": "no id"}))
    lines.insert(3, json.dumps({"sku": "X", "price": "call us"}))
    path.write_text("\n".join(lines) + "\n")
    result = run_tap({"catalog": {"path": str(path), "mapping": MAPPING}})
    assert result.error is None
    _check_items(result.records(STREAM))
    assert "skipped 3 malformed records" in result.log_text
    assert "price is not a number: 'call us'" in result.log_text


def test_file_catalog_is_incremental_on_updated_time(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "catalog.csv")
    config = {"catalog": {"path": str(path), "mapping": MAPPING}}
    first = run_tap(config)
    state = first.states[-1]
    changed = [*ROWS, {**ROWS[0], "price": 17.5, "modified": "2024-03-05T08:00:00Z"}]
    write_csv(path, changed)
    again = run_tap(config, state=state)
    # Items updated at or after the bookmark: B (at it) and the repriced 42.
    assert [(r["item_id"], r["price"]) for r in again.records(STREAM)] == [
        ("B", 15.0),
        ("42", 17.5),
    ]
    assert again.bookmark(STREAM) == "2024-03-05T08:00:00.000000Z"


def test_canonical_column_names_need_no_mapping() -> None:
    row = {"item_id": 7, "title": "Hat", "price": "10", "margin": "4", "available": 3,
           "updated_at": "2024-03-01 12:00:00", "extra": 1}  # fmt: skip
    assert to_item(row, {}) == {
        "item_id": "7", "title": "Hat", "category": None, "brand": None, "price": 10.0,
        "cost": 6.0, "margin": 4.0, "available": True,
        "updated_at": "2024-03-01T12:00:00.000000Z", "properties": {"extra": 1},
    }  # fmt: skip
    assert to_item({"item_id": "x", "available": 0}, {})["available"] is False


@pytest.fixture(params=["postgres", "duckdb"])
def sql_catalog(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if request.param == "duckdb":
        url = f"duckdb:///{tmp_path / 'catalog.duckdb'}"
        create_table(url, "products")
        yield url, "products"
        return
    with postgres_schema_url() as url:
        schema = re.search(r"search_path%3D(\w+)", url).group(1)  # type: ignore[union-attr]
        base = url.split("?", 1)[0]
        create_table(base, f"{schema}.products")
        yield base, f"{schema}.products"


def test_sql_catalog_saves_state_as_it_reads_and_resumes(
    sql_catalog: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, table = sql_catalog
    monkeypatch.setattr(catalog_settings, "FETCH_ROWS", 2)
    config = {"catalog": {"sqlalchemy_url": url, "table": table, "mapping": MAPPING}}
    result = run_tap(config)
    assert result.error is None
    _check_items(result.records(STREAM))
    bookmarks = [
        s["bookmarks"][STREAM].get("replication_key_value")
        for s in result.states
        if STREAM in s.get("bookmarks", {})
    ]
    # State after each fetch of two rows, in update-time order.
    assert "2024-03-02T10:00:00.000000Z" in bookmarks
    assert bookmarks[-1] == "2024-03-04T10:00:00.000000Z"
    # Resuming from the mid-sync state reads the rest (the bookmark's own row again).
    mid = next(
        s for s in result.states
        if s["bookmarks"].get(STREAM, {}).get("replication_key_value") == "2024-03-02T10:00:00.000000Z"
    )  # fmt: skip
    resumed = run_tap(config, state=mid)
    assert [r["item_id"] for r in resumed.records(STREAM)] == ["43", "A", "B"]


def test_batch_mode_writes_the_items(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "catalog.csv")
    batches = tmp_path / "batches"
    batches.mkdir()
    config = {
        "catalog": {"path": str(path), "mapping": MAPPING},
        "batch_config": {
            "encoding": {"format": "jsonl", "compression": "gzip"},
            "storage": {"root": f"file://{batches}", "prefix": "items-"},
        },
    }
    result = run_tap(config)
    assert result.error is None
    manifests = [m for m in result.messages if m["type"] == "BATCH"]
    assert manifests and manifests[0]["stream"] == STREAM
    records = [
        json.loads(line)
        for file in sorted(batches.iterdir())
        for line in gzip.decompress(file.read_bytes()).decode().splitlines()
    ]
    _check_items(records)
