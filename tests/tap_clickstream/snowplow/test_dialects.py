"""The warehouse queries compile for each warehouse's SQLAlchemy dialect.

Postgres (and Redshift, through the Postgres dialect or sqlalchemy-redshift) always; Snowflake
and BigQuery when their dialect packages are installed (optional dependencies).
"""

from __future__ import annotations

import importlib

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect

from tap_clickstream.sources.snowplow.connector import (
    entity_query,
    events_query,
    first_cursor_query,
)
from tests.tap_clickstream.snowplow.warehouse import PRODUCT, SHRED_META, WIDE_COLUMNS

OPTIONAL = {
    "snowflake": ("snowflake.sqlalchemy", "dialect"),
    "bigquery": ("sqlalchemy_bigquery", "BigQueryDialect"),
    "redshift": ("sqlalchemy_redshift.dialect", "RedshiftDialect"),
}


def _dialect(name: str) -> Dialect:
    if name == "postgresql":
        return postgresql.psycopg.dialect()  # type: ignore[no-any-return]
    module_name, attribute = OPTIONAL[name]
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        pytest.skip(f"{module_name} is not installed (optional dependency for {name})")
    return getattr(module, attribute)()  # type: ignore[no-any-return]


def _sql(statement: sa.ClauseElement, dialect: Dialect) -> str:
    return " ".join(str(statement.compile(dialect=dialect)).split())


@pytest.mark.parametrize("name", ["snowflake", "bigquery"])
def test_wide_layout_queries_compile(name: str) -> None:
    dialect = _dialect(name)
    sql = _sql(events_query("atomic", list(WIDE_COLUMNS), "load_tstamp"), dialect)
    assert "contexts_com_snowplowanalytics_snowplow_ecommerce_product_1" in sql.lower()
    assert "load_tstamp >=" in sql.lower()
    assert "order by" in sql.lower()
    assert "min(" in _sql(first_cursor_query("atomic", "load_tstamp"), dialect).lower()


@pytest.mark.parametrize("name", ["postgresql", "redshift"])
def test_shredded_layout_queries_compile(name: str) -> None:
    dialect = _dialect(name)
    columns = [*SHRED_META, "id", "price"]
    sql = _sql(entity_query("atomic", PRODUCT, columns, "collector_tstamp"), dialect)
    assert f"FROM atomic.{PRODUCT}" in sql
    assert "e.event_id = atomic." in sql and ".root_id" in sql
    assert "e.collector_tstamp = atomic." in sql and ".root_tstamp" in sql
    assert "EXISTS" in sql
    events = _sql(
        events_query("atomic", ["event_id", "collector_tstamp", "event"], "collector_tstamp"),
        dialect,
    )
    assert "WHERE atomic.events.collector_tstamp >= %(lo)s" in events
