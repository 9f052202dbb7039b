"""Seeded Snowplow warehouses: the Postgres loader's shredded layout and a wide DuckDB file."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import sqlalchemy as sa

from tests.support.postgres import postgres_schema_url
from tests.tap_clickstream.snowplow.warehouse import (
    EVENTS,
    ITEM_EVENTS,
    WIDE_COLUMNS,
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


class ItemsWarehouse(NamedTuple):
    """A seeded warehouse and how to read it (the view's dialect, the tap's layout)."""

    url: str
    schema: str
    dialect: str
    layout: str

    def config(self) -> dict[str, Any]:
        """The tap's settings for it."""
        return snowplow_config(self.url, self.schema, layout=self.layout)


@pytest.fixture(params=["shredded-postgres", "wide-duckdb", "shredded-duckdb", "wide-postgres"])
def items_warehouse(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ItemsWarehouse]:
    """Each layout on DuckDB and PostgreSQL, holding the sessions and the item cases."""
    layout, dialect = str(request.param).split("-")
    events = [*EVENTS, *ITEM_EVENTS]
    if dialect == "duckdb":
        url = f"duckdb:///{tmp_path / 'items.duckdb'}"
        if layout == "wide":
            create_wide(url, rows=[wide_row(r) for r in events])
        else:
            engine = sa.create_engine(url)
            with engine.begin() as connection:
                connection.exec_driver_sql("CREATE SCHEMA atomic")
            engine.dispose()
            create_shredded(url, "atomic", events)
        yield ItemsWarehouse(url, "atomic", dialect, layout)
        return
    with postgres_schema_url() as url:
        schema = re.search(r"search_path%3D(\w+)", url).group(1)  # type: ignore[union-attr]
        base = url.split("?", 1)[0]
        if layout == "wide":
            # JSON columns, as JSON_EXTRACT_PATH_TEXT reads them on PostgreSQL.
            columns = {c: "json" if c.startswith(("contexts_", "unstruct_")) else kind
                       for c, kind in WIDE_COLUMNS.items()}  # fmt: skip
            create_wide(base, schema, [wide_row(r) for r in events], columns)
        else:
            create_shredded(base, schema, events)
        yield ItemsWarehouse(base, schema, "postgres", layout)
