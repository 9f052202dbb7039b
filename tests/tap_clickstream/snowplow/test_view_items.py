"""The Redshift and BigQuery items SQL, run where they can be, with what is missing stood in.

No Redshift or BigQuery runs here. Redshift has no JSON aggregate, so its items are JSON text assembled from ``OBJECT`` and
``JSON_SERIALIZE`` per field with a value, joined by ``LISTAGG`` and parsed by ``JSON_PARSE``.
That assembly (braces, commas, fields left out, escapes) is what can go wrong, and PostgreSQL
runs it once ``OBJECT``, ``JSON_SERIALIZE``, ``LEN`` and ``JSON_PARSE`` are small SQL
functions, ``LISTAGG ... WITHIN GROUP`` is ``string_agg`` and ``VARCHAR(MAX)`` is ``TEXT``:
its items must be the tap's. The BigQuery items go through sqlglot to DuckDB (the unnest
with offsets, JSON_OBJECT, ARRAY_AGG ... ORDER BY), with GoogleSQL's JSON_STRIP_NULLS as a
DuckDB macro. What neither can prove: the warehouses' own parsing, types and JSON functions.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
import sqlalchemy as sa
import sqlglot

from tap_clickstream.sources.snowplow.view_items import items_relation
from tests.support.postgres import postgres_schema_url
from tests.tap_clickstream.snowplow.test_view import tap_events
from tests.tap_clickstream.snowplow.warehouse import (
    EVENTS,
    ITEM_EVENTS,
    UUID,
    create_shredded,
    create_wide,
    wide_row,
)

#: Redshift's functions as PostgreSQL SQL functions (OBJECT keeps a NULL value, as JSON null).
SHIMS = (
    "CREATE FUNCTION {s}.object(k text, v anyelement) RETURNS jsonb "
    "LANGUAGE sql AS 'SELECT jsonb_build_object(k, v)'",
    "CREATE FUNCTION {s}.json_serialize(v jsonb) RETURNS text LANGUAGE sql AS 'SELECT v::text'",
    "CREATE FUNCTION {s}.len(v text) RETURNS integer LANGUAGE sql AS 'SELECT length(v)'",
    "CREATE FUNCTION {s}.json_parse(v text) RETURNS jsonb LANGUAGE sql AS 'SELECT v::jsonb'",
)


@pytest.fixture
def shredded() -> Iterator[tuple[str, str]]:
    with postgres_schema_url() as url:
        schema = re.search(r"search_path%3D(\w+)", url).group(1)  # type: ignore[union-attr]
        base = url.split("?", 1)[0]
        create_shredded(base, schema, [*EVENTS, *ITEM_EVENTS])
        yield base, schema


def _on_postgres(sql: str) -> str:
    sql = sql.replace("VARCHAR(MAX)", "TEXT")
    listagg = re.compile(r"LISTAGG\((\w+), ','\) WITHIN GROUP \(ORDER BY ([\w, ]+)\)")
    assert listagg.search(sql)
    return listagg.sub(r"string_agg(\1, ',' ORDER BY \2)", sql)


@pytest.mark.postgres
def test_redshift_items_equal_the_taps(shredded: tuple[str, str]) -> None:
    url, schema = shredded
    relation = _on_postgres(
        items_relation("redshift", "shredded", f"{schema}.", "collector_tstamp")
    )
    engine = sa.create_engine(url)
    try:
        with engine.begin() as connection:
            for shim in SHIMS:
                connection.exec_driver_sql(shim.format(s=schema))
            connection.exec_driver_sql(f"SET search_path TO {schema}, public")
            rows = connection.exec_driver_sql(
                f"WITH deduplicated AS (SELECT DISTINCT ON (event_id) * FROM {schema}.events "
                f"ORDER BY event_id, collector_tstamp) "
                f"SELECT item_event_id, CAST(item_list AS TEXT) FROM {relation} vi"
            ).all()
    finally:
        engine.dispose()
    found = {event_id: json.loads(items) for event_id, items in rows}
    emitted = tap_events(url, schema)
    expected = {event_id: event["items"] for event_id, event in emitted.items() if event["items"]}
    assert {event_id: found[event_id] for event_id in found if event_id in emitted} == expected
    # The lines folded into their transactions have their own items too (the view drops them).
    assert set(found) - set(emitted) == {UUID(11), UUID(12), UUID(34)}
    # Quotes and a backslash come back as they were; fields without a value are left out.
    assert found[UUID(36)] == [{"item_id": "E", "name": 'Orphan "mini" \\ cap',
                                "category": "misc", "price": 3.0, "quantity": 4.0}]  # fmt: skip
    assert [item["item_id"] for item in found[UUID(10)]] == ["A", "B"]


#: GoogleSQL's JSON_STRIP_NULLS on an object, as a DuckDB macro.
STRIP_NULLS = """CREATE MACRO json_strip_nulls(j) AS to_json(map_from_entries(list_filter(
    list_transform(json_keys(j), lambda k: {'k': k, 'v': json_extract(j, '$."' || k || '"')}),
    lambda e: json_type(e.v) <> 'NULL')))"""


def test_bigquery_items_equal_the_taps(tmp_path: Path) -> None:
    path = tmp_path / "wide.duckdb"
    create_wide(f"duckdb:///{path}", rows=[wide_row(r) for r in [*EVENTS, *ITEM_EVENTS]])
    relation = items_relation("bigquery", "wide", "atomic.", "load_tstamp")
    query = (
        "WITH deduplicated AS (SELECT * FROM (SELECT *, row_number() OVER (PARTITION BY "
        "event_id ORDER BY load_tstamp) AS copy_no FROM atomic.events) WHERE copy_no = 1) "
        f"SELECT item_event_id, item_list FROM {relation} vi"
    )
    con = duckdb.connect(str(path))
    try:
        con.execute(STRIP_NULLS)
        rows = con.execute(sqlglot.transpile(query, read="bigquery", write="duckdb")[0]).fetchall()
    finally:
        con.close()
    found = {event_id: json.loads(items) for event_id, items in rows}
    emitted = tap_events(f"duckdb:///{path}", "atomic")
    expected = {event_id: event["items"] for event_id, event in emitted.items() if event["items"]}
    assert {event_id: found[event_id] for event_id in found if event_id in emitted} == expected
    # The listing in its array's order, by the offsets UNNEST gives.
    assert [item["item_id"] for item in found[UUID(30)]] == ["7", "42"]
    assert found[UUID(30)][0]["position"] == 2
