"""The BigQuery views call only functions GoogleSQL has (no BigQuery here to run them).

sqlglot parses back whatever it writes, including names BigQuery lacks (``TIME_TO_UNIX`` for
DuckDB's ``epoch``, ``CONCAT_WS``): so every called name is checked against BigQuery's function
reference (https://cloud.google.com/bigquery/docs/reference/standard-sql/functions-and-operators).
"""

from __future__ import annotations

import re

import pytest
import sqlglot

from tap_clickstream.views import emit_view

#: GoogleSQL functions the views may call, each in BigQuery's function reference.
GOOGLESQL = frozenset(
    {
        "ARRAY_AGG", "CAST", "CHR", "COALESCE", "COUNT", "FLOOR", "GREATEST", "IF",
        "JSON_EXTRACT_ARRAY", "JSON_EXTRACT_SCALAR", "JSON_OBJECT", "JSON_STRIP_NULLS", "LEAST", "LOWER", "MAX", "MD5", "MIN", "NULLIF", "PARSE_JSON",
        "REGEXP_EXTRACT", "REPLACE", "ROUND", "ROW_NUMBER", "SAFE_CAST", "STRING_AGG",
        "STRUCT", "TIMESTAMP_MICROS", "TO_HEX", "TO_JSON", "TRIM", "TRUNC", "UNIX_MICROS",
        "UNNEST",
    }
)  # fmt: skip
#: Words followed by "(" that are not calls.
_KEYWORDS = frozenset({"AND", "AS", "ELSE", "EXISTS", "FROM", "GROUP", "IN", "JOIN", "NOT", "OR",
                       "OVER", "THEN", "WHEN"})  # fmt: skip


def called(ddl: str) -> set[str]:
    """The names called in a statement (string literals and comment lines left out)."""
    body = "\n".join(line for line in ddl.splitlines() if not line.startswith("--"))
    body = re.sub(r"'(?:[^']|'')*'", "''", body)
    names = {name.upper() for name in re.findall(r"\b([A-Za-z_]\w*)\s*\(", body)}
    return names - _KEYWORDS


@pytest.mark.parametrize("source", ["snowplow", "ga4"])
def test_bigquery_views_call_only_googlesql_functions(source: str) -> None:
    ddl = emit_view(source, "bigquery", event_map={"Saw Test": "experiment_exposure"})
    sqlglot.parse_one(ddl.rstrip().rstrip(";"), read="bigquery")
    names = called(ddl)
    assert names - GOOGLESQL == set()
    # The rewrites that make it so: ids as hex text, engaged-time slots from UNIX_MICROS.
    assert ("TO_HEX" in names) == (source == "ga4")
    assert ("UNIX_MICROS" in names) == (source == "snowplow")
    # Snowplow's items, built in GoogleSQL (not transpiled): objects without NULL fields.
    assert ({"JSON_EXTRACT_ARRAY", "JSON_STRIP_NULLS"} <= names) == (source == "snowplow")


def test_the_check_catches_a_missing_function() -> None:
    assert called("SELECT CONCAT_WS(CHR(31), a) , 'x(' FROM t WHERE a IN (1)") == {
        "CONCAT_WS",
        "CHR",
    }
