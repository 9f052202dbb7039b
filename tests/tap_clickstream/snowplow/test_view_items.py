"""The Redshift items SQL, run on PostgreSQL with Redshift's few missing functions stood in.

Redshift has no JSON aggregate, so its items are JSON text assembled from ``OBJECT`` and
``JSON_SERIALIZE`` per field with a value, joined by ``LISTAGG`` and parsed by ``JSON_PARSE``.
That assembly (braces, commas, fields left out, escapes) is what can go wrong, and PostgreSQL
runs it once ``OBJECT``, ``JSON_SERIALIZE``, ``LEN`` and ``JSON_PARSE`` are small SQL
functions, ``LISTAGG ... WITHIN GROUP`` is ``string_agg`` and ``VARCHAR(MAX)`` is ``TEXT``:
its items must be the tap's. What it cannot prove: Redshift's own parsing and types.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from tap_clickstream.sources.snowplow.view_items import items_relation
from tests.support.postgres import postgres_schema_url
from tests.tap_clickstream.snowplow.test_view import tap_events
from tests.tap_clickstream.snowplow.warehouse import EVENTS, ITEM_EVENTS, UUID, create_shredded

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
