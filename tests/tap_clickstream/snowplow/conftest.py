"""Seeded Snowplow warehouses: the Postgres loader's shredded layout and a wide DuckDB file."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.postgres import postgres_schema_url
from tests.tap_clickstream.snowplow.warehouse import (
    EVENTS,
    ITEM_EVENTS,
    create_shredded,
    create_wide,
    wide_row,
)

WINDOW = {"start_date": "2024-03-01T00:00:00Z", "end_date": "2024-03-04T00:00:00Z"}


def snowplow_config(url: str, schema: str = "atomic", **settings: Any) -> dict[str, Any]:
    """Tap settings reading the seeded warehouse, with no lookback (each event read once)."""
    return {
        **WINDOW,
        "snowplow": {"sqlalchemy_url": url, "schema": schema, "lookback_hours": 0, **settings},
    }


@pytest.fixture
def duckdb_url(tmp_path: Path) -> str:
    url = f"duckdb:///{tmp_path / 'snowplow.duckdb'}"
    create_wide(url)
    return url


@pytest.fixture
def postgres_warehouse() -> Iterator[tuple[str, str]]:
    """``(url, schema)`` of a throwaway schema holding the shredded layout."""
    with postgres_schema_url() as url:
        schema = re.search(r"search_path%3D(\w+)", url).group(1)  # type: ignore[union-attr]
        base = url.split("?", 1)[0]
        create_shredded(base, schema)
        yield base, schema


@pytest.fixture(params=["shredded-postgres", "wide-duckdb"])
def warehouse_config(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    """Settings for each layout: shredded on PostgreSQL, wide in a DuckDB file."""
    if request.param == "wide-duckdb":
        url = request.getfixturevalue("duckdb_url")
        return snowplow_config(url)
    url, schema = request.getfixturevalue("postgres_warehouse")
    return snowplow_config(url, schema)


@pytest.fixture(params=["shredded-postgres", "wide-duckdb"])
def items_warehouse(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """``(url, schema)`` of each layout holding the sessions and the item cases."""
    if request.param == "wide-duckdb":
        url = f"duckdb:///{tmp_path / 'items.duckdb'}"
        create_wide(url, rows=[wide_row(r) for r in [*EVENTS, *ITEM_EVENTS]])
        yield url, "atomic"
        return
    with postgres_schema_url() as url:
        schema = re.search(r"search_path%3D(\w+)", url).group(1)  # type: ignore[union-attr]
        base = url.split("?", 1)[0]
        create_shredded(base, schema, [*EVENTS, *ITEM_EVENTS])
        yield base, schema
