"""Database backends of the event store: DuckDB (embedded default) and PostgreSQL.

Both hold the same tables and run the same SQL; they differ in column types, in how a batch
reaches a staging table (Arrow for DuckDB, COPY for PostgreSQL), and in placeholders.
"""

from __future__ import annotations

import abc
import contextlib
import json
import logging
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pyarrow as pa
from sqlalchemy.engine import URL, make_url

from target_personalize.engine.exceptions import StoreError, UnsupportedDatabaseError
from target_personalize.engine.store.columns import (
    EVENT_COLUMNS,
    ITEM_COLUMNS,
    ITEM_FIELDS,
    REJECT_COLUMNS,
    Kind,
)

__all__ = ["Backend", "open_backend"]

logger = logging.getLogger(__name__)

_EVENT_LIST = ", ".join(EVENT_COLUMNS)
_ITEM_LIST = ", ".join(ITEM_COLUMNS)
_ITEM_FIELDS = [name for name in ITEM_COLUMNS if name != "item_id"]

#: DuckDB's memory bound while loading (see :meth:`Backend.bounded_memory`).
LOAD_MEMORY_LIMIT = "256MB"

_ITEM_ARROW = {"str": pa.string(), "float": pa.float64(), "int": pa.int64()}
_ARROW: dict[Kind, pa.DataType] = {
    "str": pa.string(),
    "ts": pa.timestamp("us"),
    "float": pa.float64(),
    "int": pa.int64(),
    "bool": pa.bool_(),
    "json": pa.string(),
    "items": pa.list_(pa.struct([pa.field(n, _ITEM_ARROW[k]) for n, k in ITEM_FIELDS.items()])),
}


def arrow_schema(columns: dict[str, Kind]) -> pa.Schema:
    """The Arrow schema of a staging batch with ``columns`` plus the arrival order ``_seq``."""
    return pa.schema([*(pa.field(n, _ARROW[k]) for n, k in columns.items()), ("_seq", pa.int64())])


class Backend(abc.ABC):
    """One open connection to the store's database."""

    #: SQL type of each column kind.
    types: dict[Kind, str]
    #: How a query placeholder is written.
    placeholder: str
    #: The SQL dialect the engine writes for this database (see :func:`event_items_sql`).
    dialect: Literal["duckdb", "postgresql", "snowflake"]

    @abc.abstractmethod
    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one statement (``%s`` placeholders) and return its rows, if any."""

    @abc.abstractmethod
    def execute_arrays(self, sql: str, params: Sequence[Any] = ()) -> list[npt.NDArray[Any]]:
        """Run one query and return its result as one array per column."""

    @abc.abstractmethod
    def stage(self, table: str, columns: dict[str, Kind], rows: Sequence[tuple[Any, ...]]) -> None:
        """Create temporary ``table`` holding ``rows`` (in column order) and their ``_seq``."""

    @abc.abstractmethod
    def transaction(self) -> contextlib.AbstractContextManager[None]:
        """A transaction: committed on success, rolled back on error."""

    @abc.abstractmethod
    def close(self) -> None:
        """Close the connection."""

    def bounded_memory(self) -> contextlib.AbstractContextManager[None]:
        """A block during which the database keeps its memory to :data:`LOAD_MEMORY_LIMIT`."""
        return contextlib.nullcontext()

    def column_ddl(self, columns: dict[str, Kind]) -> str:
        """The column list of a CREATE TABLE for ``columns``."""
        return ", ".join(f"{name} {self.types[kind]}" for name, kind in columns.items())

    def create_tables(self) -> None:
        """Create the store's tables and indexes if they do not exist yet."""
        self.execute(
            f"CREATE TABLE IF NOT EXISTS events ({self.column_ddl(EVENT_COLUMNS)}, "
            f"loaded_at {self.types['ts']}{self.event_key_ddl})"
        )
        self.execute(
            f"CREATE TABLE IF NOT EXISTS items ({self.column_ddl(ITEM_COLUMNS)}, "
            f"loaded_at {self.types['ts']}{self.item_key_ddl})"
        )
        self.execute(f"CREATE TABLE IF NOT EXISTS rejects ({self.column_ddl(REJECT_COLUMNS)})")
        self.add_missing_columns("events", EVENT_COLUMNS)

    def add_missing_columns(self, table: str, columns: dict[str, Kind]) -> list[str]:
        """Add the ``columns`` a store made by an earlier version lacks (nullable, at the end).

        Returns:
            The names of the columns added.
        """
        present = {
            str(row[0])
            for row in self.execute(
                "SELECT lower(column_name) FROM information_schema.columns "
                "WHERE table_schema = current_schema() AND lower(table_name) = %s",
                [table],
            )
        }
        missing = [name for name in columns if name not in present]
        for name in missing:
            self.execute(f"ALTER TABLE {table} ADD COLUMN {name} {self.types[columns[name]]}")
        if missing:
            logger.info("Store table %s: added column(s) %s", table, ", ".join(missing))
        return missing

    def merge_events(self, staged: str, columns: str, now: datetime) -> None:
        """Replace stored events by the staged ones, the last staged version of each key.

        Args:
            staged: the staging table (or a query in parentheses) with ``_seq``.
            columns: the SELECT list that gives the event columns from ``staged``.
            now: the ``loaded_at`` of the stored rows.
        """
        self.execute(
            f"DELETE FROM events WHERE EXISTS (SELECT 1 FROM {staged} s "
            "WHERE s.source = events.source AND s.event_id = events.event_id)"
        )
        # The last version of each key, found by a hash aggregate (no sort of the batch).
        self.execute(
            f"INSERT INTO events ({_EVENT_LIST}, loaded_at) SELECT {columns}, %s FROM {staged} "
            f"WHERE _seq IN (SELECT max(_seq) FROM {staged} GROUP BY source, event_id)",
            [now],
        )

    def merge_items(self, staged: str, now: datetime) -> None:
        """Merge staged catalog items (one row per ``item_id``) into ``items``.

        A field the staged item leaves empty (NULL) keeps the stored value.
        """
        self.execute(
            f"UPDATE {staged} SET "
            + ", ".join(f"{c} = coalesce({staged}.{c}, items.{c})" for c in _ITEM_FIELDS)
            + f" FROM items WHERE items.item_id = {staged}.item_id"
        )
        self.execute(
            f"DELETE FROM items WHERE EXISTS (SELECT 1 FROM {staged} s "
            "WHERE s.item_id = items.item_id)"
        )
        self.execute(
            f"INSERT INTO items ({_ITEM_LIST}, loaded_at) SELECT DISTINCT ON (item_id) "
            f"{_ITEM_LIST}, %s FROM {staged} ORDER BY item_id, _seq DESC",
            [now],
        )

    event_key_ddl = ""
    item_key_ddl = ""


class DuckDBBackend(Backend):
    """The embedded default: one DuckDB file (or ``:memory:``)."""

    types: dict[Kind, str] = {  # noqa: RUF012
        "str": "VARCHAR",
        "ts": "TIMESTAMP",
        "float": "DOUBLE",
        "int": "BIGINT",
        "bool": "BOOLEAN",
        "json": "JSON",
        "items": "STRUCT({})[]".format(
            ", ".join(
                f"{n} {dict(str='VARCHAR', float='DOUBLE', int='BIGINT')[k]}"
                for n, k in ITEM_FIELDS.items()
            )
        ),
    }
    placeholder = "?"
    dialect = "duckdb"
    # No primary key: DuckDB's unique indexes refuse a delete and re-insert of the same key in
    # one transaction, which is how a newer version of an event replaces the old one.

    def __init__(self, database: str) -> None:
        import duckdb  # noqa: PLC0415

        if database not in ("", ":memory:"):
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        try:
            self.connection = duckdb.connect(database or ":memory:")
        except duckdb.Error as error:
            raise StoreError(f"cannot open the DuckDB store {database!r}: {error}") from error
        # Times without an offset are UTC, in SQL as in Python (coerce_event), whatever the
        # machine's time zone.
        self.connection.execute("SET TimeZone = 'UTC'")

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one statement and return its rows, if any."""
        cursor = self.connection.execute(sql.replace("%s", "?"), list(params))
        return cursor.fetchall() if cursor.description else []

    def execute_arrays(self, sql: str, params: Sequence[Any] = ()) -> list[npt.NDArray[Any]]:
        """Run one query; its columns come as numpy arrays, built without a Python row each."""
        found = self.connection.execute(sql.replace("%s", "?"), list(params)).fetchnumpy()
        return [np.asarray(column) for column in found.values()]

    def stage(self, table: str, columns: dict[str, Kind], rows: Sequence[tuple[Any, ...]]) -> None:
        """Stage ``rows`` through an Arrow table."""
        with self.registered("_incoming", columns, rows):
            self.connection.execute(
                f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT * FROM _incoming"
            )

    @contextlib.contextmanager
    def registered(
        self, name: str, columns: dict[str, Kind], rows: Sequence[tuple[Any, ...]]
    ) -> Iterator[None]:
        """Make ``rows`` (and their ``_seq``) readable as the view ``name`` during the block.

        No table is created: cheaper than :meth:`stage` for a few rows read once.
        """
        values = zip(*rows, strict=True) if rows else ([] for _ in columns)
        data: dict[str, Any] = dict(zip(columns, values, strict=True))
        data["_seq"] = range(len(rows))
        self.connection.register(name, pa.Table.from_pydict(data, schema=arrow_schema(columns)))
        try:
            yield
        except BaseException:
            # In an aborted transaction DuckDB refuses the unregister too: keep the first
            # error (e.g. out of memory), not that one; the next register replaces the view.
            with contextlib.suppress(Exception):
                self.connection.unregister(name)
            raise
        self.connection.unregister(name)

    def key_hashes(self, sql: str, params: Sequence[Any] = ()) -> npt.NDArray[np.uint64]:
        """The key hashes a statement returns (one UBIGINT column, such as ``hash(...)``)."""
        found = self.connection.execute(sql.replace("%s", "?"), list(params)).fetchnumpy()
        return np.asarray(next(iter(found.values())), dtype=np.uint64)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """A DuckDB transaction."""
        self.connection.execute("BEGIN TRANSACTION")
        try:
            yield
        except BaseException:
            self.connection.execute("ROLLBACK")
            raise
        self.connection.execute("COMMIT")

    @contextlib.contextmanager
    def bounded_memory(self) -> Iterator[None]:
        """Keep DuckDB to :data:`LOAD_MEMORY_LIMIT` for the block, then restore its limit.

        DuckDB caches the blocks of the tables it reads or writes, up to 80% of the RAM by
        default: a load scans the stored events' keys, so without a bound the process grows
        with the store. Stored blocks are dropped from the cache when the bound is lowered.
        (The store sets no limit of its own: afterwards DuckDB's default applies again.)
        """
        self.connection.execute(f"SET memory_limit = '{LOAD_MEMORY_LIMIT}'")
        try:
            yield
        finally:
            self.connection.execute("RESET memory_limit")

    def close(self) -> None:
        """Close the connection (checkpointing the file)."""
        self.connection.close()


class PostgresBackend(Backend):
    """PostgreSQL through psycopg 3, with COPY for bulk loads."""

    types: dict[Kind, str] = {  # noqa: RUF012
        "str": "TEXT",
        "ts": "TIMESTAMP",
        "float": "DOUBLE PRECISION",
        "int": "BIGINT",
        "bool": "BOOLEAN",
        "json": "JSONB",
        "items": "JSONB",
    }
    placeholder = "%s"
    dialect = "postgresql"
    event_key_ddl = ", PRIMARY KEY (source, event_id)"
    item_key_ddl = ", PRIMARY KEY (item_id)"

    def __init__(self, url: URL) -> None:
        import psycopg  # noqa: PLC0415

        conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
        try:
            self.connection = psycopg.connect(conninfo, autocommit=True)
        except psycopg.Error as error:
            shown = url.render_as_string(hide_password=True)
            raise StoreError(f"cannot connect to the PostgreSQL store {shown}: {error}") from None

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one statement and return its rows, if any."""
        with self.connection.cursor() as cursor:
            cursor.execute(sql, list(params) or None)
            return cursor.fetchall() if cursor.description else []

    def execute_arrays(self, sql: str, params: Sequence[Any] = ()) -> list[npt.NDArray[Any]]:
        """Run one query and return one array per column."""
        with self.connection.cursor() as cursor:
            cursor.execute(sql, list(params) or None)
            rows = cursor.fetchall()
            width = len(cursor.description or ())
        return [np.array([row[i] for row in rows]) for i in range(width)]

    def stage(self, table: str, columns: dict[str, Kind], rows: Sequence[tuple[Any, ...]]) -> None:
        """Stage ``rows`` with COPY.

        PostgreSQL text (and JSONB) cannot hold the NUL character: when a batch has one, the
        COPY is rolled back to a savepoint and done again with each NUL replaced by U+FFFD
        (the event is kept; the replacement is logged).
        """
        import psycopg  # noqa: PLC0415

        self.execute(f"DROP TABLE IF EXISTS {table}")
        self.execute(f"CREATE TEMP TABLE {table} ({self.column_ddl(columns)}, _seq BIGINT)")
        try:
            with self.connection.transaction():  # a savepoint inside the load's transaction
                self._copy(table, columns, rows)
        except psycopg.DataError as error:
            if "NUL" not in str(error) and "\\u0000" not in str(error):
                raise
            logger.warning(
                "PostgreSQL cannot store the NUL character: replaced it with U+FFFD in %s", table
            )
            kinds = list(columns.values())
            with self.connection.transaction():
                self._copy(table, columns, [_without_nul(row, kinds) for row in rows])

    def _copy(self, table: str, columns: dict[str, Kind], rows: Sequence[tuple[Any, ...]]) -> None:
        items_at = [i for i, kind in enumerate(columns.values()) if kind == "items"]
        names = ", ".join([*columns, "_seq"])
        with (
            self.connection.cursor() as cursor,
            cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy,
        ):
            for seq, row in enumerate(rows):
                if items_at:
                    values = list(row)
                    for i in items_at:
                        values[i] = json.dumps(values[i], separators=(",", ":"))
                    copy.write_row((*values, seq))
                else:
                    copy.write_row((*row, seq))

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """A PostgreSQL transaction."""
        with self.connection.transaction():
            yield

    def close(self) -> None:
        """Close the connection."""
        self.connection.close()


def _without_nul(row: tuple[Any, ...], kinds: list[Kind]) -> tuple[Any, ...]:
    """``row`` with every NUL character in its text and JSON values replaced by U+FFFD."""

    def clean(value: Any) -> Any:
        if isinstance(value, str):
            return value.replace("\x00", "\ufffd")
        if isinstance(value, dict):
            return {clean(k): clean(v) for k, v in value.items()}
        if isinstance(value, list):
            return [clean(v) for v in value]
        return value

    return tuple(
        json.dumps(clean(json.loads(value)), separators=(",", ":"))
        if kind == "json" and isinstance(value, str)
        else clean(value)
        for value, kind in zip(row, kinds, strict=True)
    )


def open_backend(url: str) -> Backend:
    """Open the backend a database URL names.

    ``duckdb:///path/file.duckdb`` (or a bare file path) opens DuckDB;
    ``postgresql://`` and ``postgresql+psycopg://`` open PostgreSQL; ``snowflake://`` opens
    Snowflake, for reading an events view in place only.

    Raises:
        UnsupportedDatabaseError: for any other kind of URL.
    """
    if "://" not in url:
        return DuckDBBackend(url)
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "duckdb":
        return DuckDBBackend(parsed.database or ":memory:")
    if backend in {"postgresql", "postgres"}:
        return PostgresBackend(parsed)
    if backend == "snowflake":
        from target_personalize.engine.store.snowflake import SnowflakeBackend  # noqa: PLC0415

        return SnowflakeBackend(parsed)
    raise UnsupportedDatabaseError(
        f"the store supports duckdb:///FILE, postgresql+psycopg://... and snowflake://... URLs, "
        f"not {backend!r}: set database_url to one of those"
    )
