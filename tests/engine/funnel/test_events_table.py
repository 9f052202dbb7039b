"""Funnels and reports mined in place: ``--events-table`` over a canonical Snowplow view.

The same funnel must come out of the view (created in the warehouse, nothing copied) as out
of a store loaded with what the tap extracts from the same warehouse.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from tap_clickstream.views import emit_view
from target_personalize.commands.funnel import funnel
from target_personalize.commands.report import report
from target_personalize.engine import EventStore, StoreError
from tests.support.postgres import postgres_schema_url
from tests.tap_clickstream.helpers import run_tap
from tests.tap_clickstream.snowplow.conftest import snowplow_config
from tests.tap_clickstream.snowplow.warehouse import create_shredded, create_wide

FUNNELS = (
    ("--conversion", "purchase", "--min-share", "0.1"),
    ("--conversion", "purchase", "--steps", "page_view,add_to_cart", "--window", "none"),
    ("--conversion", "purchase", "--unit", "user", "--min-share", "0.1"),
)


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def warehouse(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str, str]]:
    """``(url, schema, view)``: a Snowplow warehouse holding the canonical view."""
    if request.param == "duckdb":
        url = f"duckdb:///{tmp_path / 'warehouse.duckdb'}"
        create_wide(url)
        yield url, "atomic", _create_view(url, "duckdb", "atomic")
        return
    with postgres_schema_url() as schema_url:
        schema = re.search(r"search_path%3D(\w+)", schema_url).group(1)  # type: ignore[union-attr]
        url = schema_url.split("?", 1)[0]
        create_shredded(url, schema)
        yield url, schema, _create_view(url, "postgres", schema)


def _create_view(url: str, dialect: str, schema: str) -> str:
    view = f"{schema}.canonical_events"
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.exec_driver_sql(
            emit_view("snowplow", dialect, events=f"{schema}.events", view=view)
        )
    engine.dispose()
    return view


def run(command: click.Command, *args: str) -> str:
    result = CliRunner().invoke(command, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture
def loaded_store(tmp_path: Path, warehouse: tuple[str, str, str]) -> str:
    """A DuckDB store loaded with what the tap extracts from the warehouse (one window)."""
    url, schema, _view = warehouse
    result = run_tap(snowplow_config(url, schema, window_hours=24 * 7))
    assert result.error is None
    store_url = f"duckdb:///{tmp_path / 'store.duckdb'}"
    with EventStore(store_url) as store:
        loaded = store.load_events(result.by_id("snowplow_events").values())
    assert loaded.rejected == 0
    return store_url


@pytest.mark.parametrize("options", FUNNELS, ids=["discovered", "explicit", "per-user"])
def test_funnel_of_the_view_equals_the_loaded_store(
    warehouse: tuple[str, str, str], loaded_store: str, options: tuple[str, ...]
) -> None:
    url, _schema, view = warehouse
    in_place = json.loads(
        run(funnel, "--database-url", url, "--events-table", view, *options, "--format", "json")
    )
    loaded = json.loads(run(funnel, "--database-url", loaded_store, *options, "--format", "json"))
    assert in_place == loaded
    assert in_place.get("units", in_place.get("entered"))  # not an empty funnel


def test_report_of_the_view(warehouse: tuple[str, str, str], tmp_path: Path) -> None:
    url, _schema, view = warehouse
    out = tmp_path / "report.html"
    run(report, "--database-url", url, "--events-table", view, "--conversion", "purchase",
        "--out", str(out))  # fmt: skip
    assert "purchase" in out.read_text(encoding="utf-8")


def test_a_store_over_a_view_creates_nothing_and_loads_nothing(
    warehouse: tuple[str, str, str],
) -> None:
    url, schema, view = warehouse
    with EventStore(url, events_table=view) as store:
        assert store.query(f"SELECT count(*) FROM {view}")[0][0] == 8
        with pytest.raises(StoreError, match="loads nothing"):
            store.load_events([])
    tables = sa.inspect(sa.create_engine(url)).get_table_names(schema=schema)
    assert "rejects" not in tables


@pytest.mark.parametrize("name", ["events; DROP TABLE x", "a.b.c.d", '"quoted"', ""])
def test_events_table_must_be_a_plain_name(name: str) -> None:
    result = CliRunner().invoke(
        funnel, ["--database-url", "duckdb:///:memory:", "--events-table", name,
                 "--conversion", "purchase"],
    )  # fmt: skip
    assert result.exit_code == 2
    assert "--events-table" in result.output
