"""A Snowflake warehouse as the event store, or as events mined in place.

``EventStore("snowflake://USER:PASSWORD@ACCOUNT/DATABASE/SCHEMA?warehouse=WH&role=ROLE")``
keeps the store's tables in that schema; with ``events_table="SCHEMA.VIEW"`` it only reads a
canonical view. The engine writes its statements once, in the SQL DuckDB and PostgreSQL
share; here sqlglot transpiles each one from PostgreSQL's dialect to Snowflake's
(``DISTINCT ON``, ``FILTER``, ``MATERIALIZED`` CTEs, ``UNNEST`` and ``%s`` placeholders
included). Only the load's MERGE is written in Snowflake's SQL.

Loads: a batch goes to a temporary table through the connector's ``write_pandas`` (Parquet
files PUT to a stage and COPY INTO), JSON text becomes VARIANT in SQL, and the writes that
follow run in one transaction. Snowflake commits an open transaction before any DDL (a
temporary table or stage included), so inside :meth:`SnowflakeBackend.transaction` staging
runs at once and the writes (INSERT, UPDATE, DELETE, MERGE) are held, then run between one
BEGIN and COMMIT when the block ends (a single write runs alone: a statement is atomic by
itself). A read inside the block sees the store as it was before it.
"""

from __future__ import annotations

import contextlib
import functools
import json
import re
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any

import numpy.typing as npt
import pyarrow as pa
from sqlalchemy.engine import URL

from target_personalize.engine.exceptions import StoreError
from target_personalize.engine.store.backends import Backend
from target_personalize.engine.store.columns import (
    EVENT_COLUMNS,
    ITEM_COLUMNS,
    REJECT_COLUMNS,
    Kind,
)
from target_personalize.engine.store.served import EXPERIMENT_COLUMNS, IMPRESSION_COLUMNS

__all__ = ["SnowflakeBackend", "snowflake_sql"]

#: Snowflake type codes of semi-structured columns, which the connector hands as JSON text.
_SEMI_STRUCTURED = frozenset({5, 9, 10})  # VARIANT, OBJECT, ARRAY
#: Snowflake keeps its statistics itself.
_ANALYZE = re.compile(r"^\s*ANALYZE\b", re.IGNORECASE)
#: Statements held until the end of a transaction (see the module's docstring).
_WRITE = re.compile(r"^\s*(INSERT|UPDATE|DELETE|MERGE)\b", re.IGNORECASE)
_SEMI = frozenset({"json", "items"})
#: The VARIANT columns of the store's tables.
_VARIANT_COLUMNS = {
    table: frozenset(name for name, kind in columns.items() if kind in _SEMI)
    for table, columns in {
        "events": EVENT_COLUMNS, "items": ITEM_COLUMNS, "rejects": REJECT_COLUMNS,
        "experiments": EXPERIMENT_COLUMNS, "impressions": IMPRESSION_COLUMNS,
    }.items()
}  # fmt: skip


@functools.lru_cache(maxsize=512)
def snowflake_sql(sql: str, durations: tuple[int, ...] = ()) -> str:
    """One of the engine's statements (PostgreSQL dialect, ``%s`` placeholders) for Snowflake.

    Args:
        sql: the statement.
        durations: the positions of placeholders bound to a duration (a ``timedelta``), which
            Snowflake cannot add to a time: ``x + %s`` there becomes ``DATEADD(MICROSECOND,
            ?, x)``, bound to the duration's microseconds (see :func:`snowflake_params`).
    """
    import sqlglot  # noqa: PLC0415 - only a Snowflake store needs it

    tree = sqlglot.parse_one(sql, read="postgres")
    tree = tree.transform(_qualify_distinct_on).transform(_scaled_intervals)
    tree = tree.transform(_parsed_json_values)
    if durations:
        _add_durations(tree, durations)
    return str(tree.sql(dialect="snowflake"))


def _parsed_json_values(node: Any) -> Any:
    """``INSERT INTO t (...) VALUES (...)`` as ``INSERT ... SELECT`` with ``PARSE_JSON``.

    For the store's VARIANT columns: Snowflake stores JSON text bound to one as a string, and
    takes no function in a VALUES clause.
    """
    from sqlglot import exp  # noqa: PLC0415

    if not isinstance(node, exp.Insert) or not isinstance(node.expression, exp.Values):
        return node
    target = node.this
    rows = node.expression.expressions
    if not isinstance(target, exp.Schema) or len(rows) != 1:
        return node
    variant = _VARIANT_COLUMNS.get(target.this.name.lower(), frozenset())
    names = [column.name.lower() for column in target.expressions]
    if not variant.intersection(names):
        return node
    values = [
        exp.func("PARSE_JSON", value.copy()) if name in variant else value.copy()
        for name, value in zip(names, rows[0].expressions, strict=True)
    ]
    node.set("expression", exp.select(*values))
    return node


def snowflake_params(sql: str, params: Sequence[Any]) -> tuple[str, list[Any]]:
    """A statement and its parameters for Snowflake (durations as microseconds)."""
    durations = tuple(i for i, value in enumerate(params) if isinstance(value, timedelta))
    bound = [
        value // timedelta(microseconds=1) if isinstance(value, timedelta) else value
        for value in params
    ]
    return snowflake_sql(sql, durations), bound


def _add_durations(tree: Any, durations: tuple[int, ...]) -> None:
    """Rewrite ``x + ?`` and ``x - ?`` for the duration placeholders as ``DATEADD``."""
    from sqlglot import exp  # noqa: PLC0415

    placeholders = list(tree.find_all(exp.Placeholder, bfs=False))
    for position in durations:
        placeholder = placeholders[position]
        parent = placeholder.parent
        if not isinstance(parent, exp.Add | exp.Sub) or parent.expression is not placeholder:
            raise StoreError(f"a duration is bound where Snowflake cannot add it: {parent}")
        amount = placeholder.copy()
        if isinstance(parent, exp.Sub):
            amount = exp.Neg(this=amount)
        parent.replace(
            exp.DateAdd(this=parent.this.copy(), expression=amount, unit=exp.var("MICROSECOND"))
        )


def _scaled_intervals(node: Any) -> Any:
    """``ts + INTERVAL '1 second' * n`` (or ``-``) as ``DATEADD(second, n, ts)``.

    Snowflake has interval constants only: it cannot multiply one (DuckDB, under fakesnow,
    can).
    """
    from sqlglot import exp  # noqa: PLC0415

    if not isinstance(node, exp.Add | exp.Sub) or not isinstance(node.expression, exp.Mul):
        return node
    interval, count = node.expression.this, node.expression.expression
    if isinstance(count, exp.Interval):
        interval, count = count, interval
    if not isinstance(interval, exp.Interval) or interval.this.name.strip() != "1":
        return node
    unit = interval.args.get("unit")
    if unit is None:
        return node
    amount = (
        count.copy() if isinstance(node, exp.Add) else exp.Neg(this=exp.Paren(this=count.copy()))
    )
    return exp.DateAdd(this=node.this.copy(), expression=amount, unit=exp.var(unit.name.upper()))


def _qualify_distinct_on(node: Any) -> Any:
    """``SELECT DISTINCT ON (k) ... ORDER BY k, o`` as ``... QUALIFY row_number() ... = 1``.

    sqlglot's own rewrite wraps the SELECT in ``SELECT * FROM (...) WHERE _row_number = 1``,
    which keeps ``_row_number`` among the columns: a ``DISTINCT ON`` over ``p.*`` of such a
    result then reads the wrong ``_row_number`` (the funnel's chained steps do that).
    """
    from sqlglot import exp  # noqa: PLC0415

    distinct = node.args.get("distinct") if isinstance(node, exp.Select) else None
    if distinct is None or not distinct.args.get("on"):
        return node
    order = node.args.get("order")
    window = exp.Window(
        this=exp.RowNumber(),
        partition_by=[key.copy() for key in distinct.args["on"].expressions],
        order=order.copy() if order else None,
    )
    node.set("distinct", None)
    node.set("qualify", exp.Qualify(this=exp.EQ(this=window, expression=exp.Literal.number(1))))
    return node


def merge_events_sql(staged: str, columns: str, now: datetime) -> str:
    """The MERGE (Snowflake SQL) of staged events by key, stored with ``loaded_at`` ``now``.

    The batch's last version of each key (highest ``_seq``) replaces the stored one or is
    inserted: loading a batch twice stores it once.
    """
    names = list(EVENT_COLUMNS)
    updates = ", ".join(f"{name} = s.{name}" for name in names)
    values = ", ".join(f"s.{name}" for name in names)
    # A literal: the statement has no placeholder (fakesnow splits a MERGE in several).
    loaded_at = f"CAST('{now.isoformat(sep=' ')}' AS TIMESTAMP_NTZ)"
    return (
        f"MERGE INTO events t USING (SELECT {columns} FROM {staged} QUALIFY row_number() "
        "OVER (PARTITION BY source, event_id ORDER BY _seq DESC) = 1) s "
        "ON t.source = s.source AND t.event_id = s.event_id "
        f"WHEN MATCHED THEN UPDATE SET {updates}, loaded_at = {loaded_at} "
        f"WHEN NOT MATCHED THEN INSERT ({', '.join(names)}, loaded_at) VALUES ({values}, {loaded_at})"
    )


def merge_items_sql(staged: str, now: datetime) -> str:
    """The MERGE (Snowflake SQL) of staged catalog items (one per ``item_id``) by ``item_id``.

    A field the staged item leaves empty keeps the stored value.
    """
    fields = [name for name in ITEM_COLUMNS if name != "item_id"]
    updates = ", ".join(f"{name} = coalesce(s.{name}, t.{name})" for name in fields)
    loaded_at = f"CAST('{now.isoformat(sep=' ')}' AS TIMESTAMP_NTZ)"
    return (
        f"MERGE INTO items t USING {staged} s ON t.item_id = s.item_id "
        f"WHEN MATCHED THEN UPDATE SET {updates}, loaded_at = {loaded_at} "
        f"WHEN NOT MATCHED THEN INSERT ({', '.join(ITEM_COLUMNS)}, loaded_at) "
        f"VALUES ({', '.join(f's.{name}' for name in ITEM_COLUMNS)}, {loaded_at})"
    )


class SnowflakeBackend(Backend):
    """A Snowflake session through snowflake-connector-python (the ``snowflake`` extra)."""

    types: dict[Kind, str] = {  # noqa: RUF012
        "str": "VARCHAR",
        "ts": "TIMESTAMP_NTZ",
        "float": "DOUBLE",
        "int": "BIGINT",
        "bool": "BOOLEAN",
        "json": "VARIANT",
        "items": "VARIANT",
    }
    placeholder = "?"
    dialect = "snowflake"

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
        #: The URL with its password masked, for messages.
        self.shown = url.render_as_string(hide_password=True)
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
            message = str(error)
            if url.password:
                message = message.replace(str(url.password), "***")
            raise StoreError(
                f"cannot connect to the Snowflake store {self.shown}: {message}"
            ) from None
        #: Writes held by the open transaction (None: none open).
        self._held: list[tuple[str, Sequence[Any]]] | None = None

    def _run(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """Run one statement in Snowflake's SQL; the cursor, to read and close."""
        cursor = self.connection.cursor()
        try:
            cursor.execute(sql, list(params) or None)
        except BaseException:
            cursor.close()
            raise
        return cursor

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one statement, transpiled to Snowflake's SQL, and return its rows, if any."""
        if _ANALYZE.match(sql):
            return []
        return self.execute_native(*snowflake_params(sql, params))

    def execute_native(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one statement already in Snowflake's SQL (``?`` placeholders)."""
        if self._held is not None and _WRITE.match(sql):
            self._held.append((sql, list(params)))
            return []
        cursor = self._run(sql, params)
        try:
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
        """Run one query and return one array per column (fetched as Arrow batches)."""
        cursor = self._run(*snowflake_params(sql, params))
        try:
            frame = cursor.fetch_pandas_all()
        finally:
            cursor.close()
        return [frame[name].to_numpy() for name in frame.columns]

    def stage(self, table: str, columns: dict[str, Kind], rows: Sequence[tuple[Any, ...]]) -> None:
        """Stage ``rows`` through ``write_pandas`` (Parquet, PUT and COPY INTO).

        JSON and item lists travel as JSON text in ``{table}_load``; ``table`` holds them as
        VARIANT, as the store does.
        """
        from snowflake.connector.pandas_tools import write_pandas  # noqa: PLC0415

        semi = any(kind in _SEMI for kind in columns.values())
        loading = f"{table}_load" if semi else table
        text = {name: "str" if kind in _SEMI else kind for name, kind in columns.items()}
        self.execute_native(
            f"CREATE OR REPLACE TEMPORARY TABLE {loading} ({self.column_ddl(text)}, _seq BIGINT)"
        )
        if rows:
            data: dict[str, list[Any]] = {}
            for i, (name, kind) in enumerate(columns.items()):
                values = [row[i] for row in rows]
                if kind == "items":
                    values = [None if v is None else json.dumps(v, default=str) for v in values]
                data[name.upper()] = values
            data["_SEQ"] = list(range(len(rows)))
            frame = pa.Table.from_pydict(data, schema=_arrow_schema(text)).to_pandas()
            write_pandas(
                self.connection, frame, loading.upper(), quote_identifiers=False,
                use_logical_type=True,
            )  # fmt: skip
        if semi:
            select = ", ".join(
                f"PARSE_JSON({name}) AS {name}" if kind in _SEMI else name
                for name, kind in columns.items()
            )
            self.execute_native(
                f"CREATE OR REPLACE TEMPORARY TABLE {table} AS SELECT {select}, _seq FROM {loading}"
            )

    def merge_events(self, staged: str, columns: str, now: datetime) -> None:
        """Merge the staged events into ``events`` by ``(source, event_id)``: one MERGE."""
        self.execute_native(merge_events_sql(staged, columns, now))

    def merge_items(self, staged: str, now: datetime) -> None:
        """Merge the staged items into ``items`` by ``item_id``: one MERGE."""
        self.execute_native(merge_items_sql(staged, now))

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """A block whose writes run in one Snowflake transaction when it ends.

        Staging (DDL) inside the block runs at once, outside the transaction: Snowflake would
        commit an open transaction before it.
        """
        if self._held is not None:  # already inside one
            yield
            return
        self._held = []
        try:
            yield
            held = self._held
        finally:
            self._held = None
        if len(held) == 1:  # one statement is atomic on its own
            self._run(*held[0]).close()
            return
        if not held:
            return
        self._run("BEGIN").close()
        try:
            for sql, params in held:
                self._run(sql, params).close()
        except BaseException:
            self._run("ROLLBACK").close()
            raise
        self._run("COMMIT").close()

    def close(self) -> None:
        """Close the session."""
        self.connection.close()


def _arrow_schema(columns: dict[str, Kind]) -> pa.Schema:
    types = {"str": pa.string(), "ts": pa.timestamp("us"), "float": pa.float64()}
    types |= {"int": pa.int64(), "bool": pa.bool_()}
    fields = [pa.field(name.upper(), types[kind]) for name, kind in columns.items()]
    return pa.schema([*fields, pa.field("_SEQ", pa.int64())])
