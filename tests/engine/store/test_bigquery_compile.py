"""The store's funnel and experiment-readout statements, transpiled to BigQuery: a compile test.

There is no BigQuery here and no BigQuery backend yet. This records every statement the engine
runs for explicit and discovered funnels and an experiment readout (on a DuckDB store, which
runs the same SQL as PostgreSQL), transpiles each from PostgreSQL's dialect to BigQuery's with
sqlglot (as the Snowflake backend does for Snowflake), and checks what the result is: it parses
as BigQuery, uses BigQuery's constructs for what sqlglot rewrites, and still holds exactly the
constructs BigQuery's reference (GoogleSQL) lacks, listed in :data:`BLOCKERS` and in
docs/store.md. A change to the engine's SQL that adds or removes one fails here, so the list
stays true. Nothing here shows a statement runs on BigQuery or gives the same rows.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from datetime import timedelta
from typing import Any

import pytest
import sqlglot
from sqlglot.errors import ErrorLevel, UnsupportedError

from target_personalize.engine import EventStore, discover_funnel, explicit_funnel
from target_personalize.engine.experiments.report import readout_from_store
from tests.engine.experiments.test_store_readout import _shop
from tests.engine.funnel.test_funnels import BUY, CART, VIEW, generated_records

pytestmark = pytest.mark.filterwarnings("ignore")  # sqlglot logs what it cannot translate

#: What GoogleSQL lacks, as found in sqlglot's BigQuery output (or its refusal to write one).
BLOCKERS: dict[str, Callable[[str, str | None], bool]] = {
    # WITH takes no MATERIALIZED keyword in GoogleSQL (the funnel's chained steps use it).
    "materialized CTE": lambda sql, _: " AS MATERIALIZED (" in sql,
    # GoogleSQL's PERCENTILE_CONT is a window function, PERCENTILE_CONT(x, 0.5) OVER ().
    "PERCENTILE_CONT WITHIN GROUP": lambda sql, _: "WITHIN GROUP" in sql,
    # EXTRACT has no EPOCH part (TIMESTAMP_DIFF or UNIX_MICROS instead).
    "EXTRACT(EPOCH ...)": lambda sql, _: re.search(r"EXTRACT\(EPOCH FROM", sql) is not None,
    # An aggregate's ORDER BY takes no NULLS LAST and puts NULLs first: sqlglot refuses.
    "NULLS LAST in an aggregate's ORDER BY": lambda _, refused: (
        refused is not None and "NULLS LAST" in refused
    ),
    # sqlglot writes DISTINCT ON as a subquery whose _row_number stays among the columns (the
    # Snowflake backend rewrites it as QUALIFY instead).
    "DISTINCT ON's stray _row_number": lambda sql, _: "_row_number" in sql,
    # The readout reads the items JSON column as an array (ARRAY_LENGTH of JSON).
    "items read as an array": lambda sql, _: "ARRAY_LENGTH(items)" in sql,
}


def _record(store: EventStore, statements: list[str]) -> None:
    """Keep each statement the store's backend runs (the real backend still runs it)."""
    backend = store.backend
    execute, execute_arrays = backend.execute, backend.execute_arrays

    def recorded(run: Callable[..., Any]) -> Callable[..., Any]:
        def call(sql: str, params: Sequence[Any] = ()) -> Any:
            statements.append(sql)
            return run(sql, params)

        return call

    backend.execute = recorded(execute)  # type: ignore[method-assign]
    backend.execute_arrays = recorded(execute_arrays)  # type: ignore[method-assign]


@pytest.fixture(scope="module")
def statements() -> Iterator[list[str]]:
    """The distinct statements of funnels (every unit, order, window) and a readout."""
    found: list[str] = []
    with EventStore("duckdb:///:memory:") as store:
        store.load_events(generated_records(sessions=40))
        _record(store, found)
        for unit in ("session", "user"):
            for order in ("loose", "strict"):
                for window in (timedelta(hours=6), None):
                    explicit_funnel(store, [VIEW, CART, BUY], unit=unit, order=order, window=window)
        discover_funnel(store, BUY, min_share=0.2)
    with EventStore("duckdb:///:memory:") as store:
        _shop(store)
        _record(store, found)
        assert readout_from_store(store, "exp", min_sample=1)["variants"]
    yield list(dict.fromkeys(re.sub(r"_funnel_\d+_\d+_", "_funnel_", s) for s in found))


def bigquery(sql: str) -> tuple[str, str | None]:
    """The statement in BigQuery's dialect, and what sqlglot refused to translate, if anything."""
    try:
        sqlglot.transpile(
            sql, read="postgres", write="bigquery", unsupported_level=ErrorLevel.RAISE
        )
    except UnsupportedError as error:
        refused: str | None = str(error)
    else:
        refused = None
    return sqlglot.transpile(sql, read="postgres", write="bigquery")[0], refused


def test_each_statement_parses_as_bigquery(statements: list[str]) -> None:
    assert len(statements) > 20
    for sql in statements:
        text, _ = bigquery(sql)
        parsed = sqlglot.parse_one(text, read="bigquery")
        assert parsed is not None, sql
        # BigQuery's positional parameters; no PostgreSQL-only syntax left.
        assert "%s" not in text
        assert text.count("?") == sql.count("%s"), sql
        assert "DISTINCT ON" not in text
        assert "FILTER(WHERE" not in text.replace(" ", "")
        assert "::" not in text


def test_filter_clauses_become_bigquery_constructs(statements: list[str]) -> None:
    filtered = [s for s in statements if "FILTER (WHERE" in s]
    assert filtered  # the funnels use them
    for sql in filtered:
        text, _ = bigquery(sql)
        # COUNTIF, or ARRAY_AGG(IF(cond, x, NULL) IGNORE NULLS): both GoogleSQL.
        assert "COUNTIF(" in text or "IGNORE NULLS" in text, text


def test_what_bigquery_lacks_is_exactly_the_documented_list(statements: list[str]) -> None:
    found: dict[str, int] = {}
    clean = 0
    for sql in statements:
        text, refused = bigquery(sql)
        hits = [name for name, check in BLOCKERS.items() if check(text, refused)]
        # Whatever sqlglot refuses to translate is one of the listed constructs.
        assert refused is None or "NULLS LAST in an aggregate's ORDER BY" in hits, refused
        for name in hits:
            found[name] = found.get(name, 0) + 1
        clean += not hits
    assert set(found) == set(BLOCKERS), found
    assert clean > 0  # DROP TABLE, the simple reads
