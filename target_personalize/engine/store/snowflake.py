"""A Snowflake warehouse as a read-only store: mining a canonical view in place.

``EventStore("snowflake://USER:PASSWORD@ACCOUNT/DATABASE/SCHEMA?warehouse=WH&role=ROLE",
events_table="SCHEMA.VIEW")`` runs the funnel miner's SQL on Snowflake. The engine writes its
statements once, in the SQL DuckDB and PostgreSQL share; here sqlglot transpiles each one
from PostgreSQL's dialect to Snowflake's (``DISTINCT ON``, ``FILTER``, ``MATERIALIZED`` CTEs
and ``%s`` placeholders included). Loads are not done yet: the store refuses them.
"""

from __future__ import annotations

import contextlib
import functools
import json
import re
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy.engine import URL

from target_personalize.engine.exceptions import StoreError
from target_personalize.engine.store.backends import Backend
from target_personalize.engine.store.columns import Kind

__all__ = ["SnowflakeBackend", "snowflake_sql"]

#: Snowflake type codes of semi-structured columns, which the connector hands as JSON text.
_SEMI_STRUCTURED = frozenset({5, 9, 10})  # VARIANT, OBJECT, ARRAY
#: Snowflake keeps its statistics itself.
_ANALYZE = re.compile(r"^\s*ANALYZE\b", re.IGNORECASE)


@functools.lru_cache(maxsize=512)
def snowflake_sql(sql: str) -> str:
    """One of the engine's statements (PostgreSQL dialect, ``%s`` placeholders) for Snowflake."""
    import sqlglot  # noqa: PLC0415 - only a Snowflake store needs it

    return str(sqlglot.transpile(sql, read="postgres", write="snowflake")[0])


class SnowflakeBackend(Backend):
    """A Snowflake session through snowflake-connector-python (the ``snowflake`` extra)."""

    types: dict[Kind, str] = {  # noqa: RUF012
        "str": "VARCHAR",
        "ts": "TIMESTAMP_NTZ",
        "float": "DOUBLE",
        "int": "BIGINT",
        "bool": "BOOLEAN",
        "json": "VARIANT",
        "items": "ARRAY",
    }
    placeholder = "?"

    def __init__(self, url: URL) -> None:
        try:
            import snowflake.connector  # noqa: PLC0415
        except ImportError:
            raise StoreError(
                "a snowflake:// store needs the connector: "
                "pip install 'clickstream-personalize[snowflake]'"
            ) from None
        database, _, schema = (url.database or "").partition("/")
        query = {k: v if isinstance(v, str) else v[0] for k, v in url.query.items()}
        try:
            self.connection = snowflake.connector.connect(
                user=url.username,
                password=url.password,
                account=url.host,
                database=database or None,
                schema=schema or None,
                warehouse=query.get("warehouse"),
                role=query.get("role"),
                paramstyle="qmark",
            )
        except snowflake.connector.Error as error:
            shown = url.render_as_string(hide_password=True)
            raise StoreError(f"cannot connect to the Snowflake store {shown}: {error}") from None

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one statement, transpiled to Snowflake's SQL, and return its rows, if any."""
        if _ANALYZE.match(sql):
            return []
        cursor = self.connection.cursor()
        try:
            cursor.execute(snowflake_sql(sql), list(params) or None)
            if not cursor.description:
                return []
            decode = [d.type_code in _SEMI_STRUCTURED for d in cursor.description]
            return [
                tuple(
                    json.loads(v) if flag and isinstance(v, str) else v
                    for v, flag in zip(row, decode, strict=True)
                )
                for row in cursor.fetchall()
            ]
        finally:
            cursor.close()

    def execute_arrays(self, sql: str, params: Sequence[Any] = ()) -> list[npt.NDArray[Any]]:
        """Run one query and return one array per column."""
        cursor = self.connection.cursor()
        try:
            cursor.execute(snowflake_sql(sql), list(params) or None)
            rows = cursor.fetchall()
            width = len(cursor.description or ())
        finally:
            cursor.close()
        return [np.array([row[i] for row in rows]) for i in range(width)]

    def stage(self, table: str, columns: dict[str, Kind], rows: Sequence[tuple[Any, ...]]) -> None:
        """Not done yet: a Snowflake store only reads."""
        raise StoreError(
            "the Snowflake store only reads events in place (events_table); "
            "load into DuckDB or PostgreSQL"
        )

    def create_tables(self) -> None:
        """Not done yet: a Snowflake store only reads."""
        self.stage("events", {}, [])

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """A Snowflake transaction."""
        self.connection.cursor().execute("BEGIN")
        try:
            yield
        except BaseException:
            self.connection.rollback()
            raise
        self.connection.commit()

    def close(self) -> None:
        """Close the session."""
        self.connection.close()
