"""The Snowplow canonical view on Snowflake (fakesnow: the connector's API over DuckDB).

The wide layout as the Snowflake loader writes it (entities in VARIANT columns); the view's
rows must be what the tap extracts from the same rows. fakesnow proves the Snowflake SQL the
view is transpiled to parses and runs with Snowflake's semantics as fakesnow emulates them;
docs/warehouse-views.md says what it cannot prove.
"""

from __future__ import annotations

from typing import Any

import fakesnow
import pytest
import snowflake.connector

from tap_clickstream.views import emit_view
from tests.tap_clickstream.snowplow.test_view import COMPARED, _differences, _plain, tap_events
from tests.tap_clickstream.snowplow.warehouse import EMITTED, EVENTS, WIDE_COLUMNS, wide_row

_VARIANT = ("contexts_", "unstruct_event_")


def _create_wide(cursor: Any) -> None:
    columns = [
        f"{name} {'VARIANT' if name.startswith(_VARIANT) else kind.replace('text', 'varchar')}"
        for name, kind in WIDE_COLUMNS.items()
    ]
    cursor.execute("CREATE SCHEMA IF NOT EXISTS atomic")
    cursor.execute(f"CREATE TABLE atomic.events ({', '.join(columns)})")
    values = ", ".join(
        f"PARSE_JSON(%({name})s)" if name.startswith(_VARIANT) else f"%({name})s"
        for name in WIDE_COLUMNS
    )
    for row in EVENTS:
        cursor.execute(
            f"INSERT INTO atomic.events ({', '.join(WIDE_COLUMNS)}) SELECT {values}", wide_row(row)
        )


@pytest.mark.filterwarnings("ignore::UserWarning")  # fakesnow's note on Arrow copies
def test_wide_view_on_snowflake_matches_the_tap(duckdb_url: str) -> None:
    ddl = emit_view("snowplow", "snowflake", events="atomic.events", view="atomic.canonical")
    with fakesnow.patch():
        connection = snowflake.connector.connect(database="analytics", schema="atomic")
        cursor = connection.cursor(snowflake.connector.DictCursor)
        _create_wide(cursor)
        cursor.execute(ddl)
        cursor.execute("SELECT * FROM atomic.canonical")
        rows = [{str(k).lower(): v for k, v in row.items()} for row in cursor.fetchall()]
        connection.close()
    found = {row["event_id"]: {f: _plain(f, row[f]) for f in COMPARED} for row in rows}
    # The same rows in a DuckDB file, as the tap reads them.
    expected = tap_events(duckdb_url, "atomic")
    assert set(found) == set(expected) == EMITTED - {f"00000000-0000-4000-8000-{14:012d}"}
    assert _differences(found, expected) == []
