"""The Redshift view calls only functions Redshift has (no Redshift here to run it).

As for BigQuery (test_views_bigquery.py): every called name is checked against Redshift's
SQL function reference (https://docs.aws.amazon.com/redshift/latest/dg/c_SQL_functions.html);
the Snowplow items are built as JSON text from ``OBJECT`` and ``JSON_SERIALIZE`` and parsed
into SUPER by ``JSON_PARSE`` (Redshift has no JSON aggregate).
"""

from __future__ import annotations

import sqlglot

from tap_clickstream.views import emit_view
from tests.tap_clickstream.test_views_bigquery import called

#: Redshift functions the Snowplow view may call, each in Redshift's function reference
#: (VARCHAR is the type in CAST(... AS VARCHAR(MAX)), not a call).
REDSHIFT = frozenset(
    {
        "CAST", "COALESCE", "COUNT", "DATE_PART", "FLOOR", "GREATEST", "JSON_PARSE",
        "JSON_SERIALIZE", "LEAST", "LEN", "LISTAGG", "LOWER", "MAX", "MIN", "NULLIF", "OBJECT",
        "REPLACE", "ROUND", "ROW_NUMBER", "SUBSTRING", "TRIM", "TRUNC", "VARCHAR",
    }
)  # fmt: skip


def test_redshift_view_calls_only_redshift_functions() -> None:
    ddl = emit_view("snowplow", "redshift", event_map={"Saw Test": "experiment_exposure"})
    statement = sqlglot.parse_one(ddl.rstrip().rstrip(";"), read="redshift")
    assert isinstance(statement, sqlglot.exp.Create)
    names = called(ddl)
    assert names - REDSHIFT == set()
    # The items: JSON text per item, aggregated in order, parsed into SUPER ([] when none).
    assert {"OBJECT", "JSON_SERIALIZE", "LISTAGG", "JSON_PARSE"} <= names
    assert "LISTAGG(" in ddl and "WITHIN GROUP (ORDER BY item_ts, item_key, item_index)" in ddl
    assert "COALESCE(vi.item_list, JSON_PARSE('[]')) AS items" in ddl
