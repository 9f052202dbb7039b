"""The event store: canonical events, the item catalog, and rejected records, in one database.

Loads are idempotent on ``(source, event_id)``: each batch goes to a staging table, duplicates
inside it keep their latest version, and the matching stored events are replaced, all in one
transaction. Bad records never stop a load: they go to ``rejects`` with the field at fault.
"""

from __future__ import annotations

import gzip
import json
import logging
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import pyarrow.parquet as pq

from target_personalize.engine._backends import Backend, DuckDBBackend, open_backend
from target_personalize.engine._columns import (
    EVENT_COLUMNS,
    ITEM_COLUMNS,
    ITEM_FIELDS,
    REJECT_COLUMNS,
    Kind,
)
from target_personalize.engine._exceptions import InvalidEventError
from target_personalize.engine._records import coerce_event, coerce_item

__all__ = [
    "DEFAULT_DATABASE_URL",
    "EventStore",
    "LoadResult",
    "Reject",
    "StoreSummary",
    "read_batch_files",
]

logger = logging.getLogger(__name__)

DEFAULT_DATABASE_URL = "duckdb:///personalize.duckdb"
#: Rows per staged chunk when batch files are read in Python.
_FILE_CHUNK_ROWS = 100_000
_EVENT_LIST = ", ".join(EVENT_COLUMNS)
_ITEM_LIST = ", ".join(ITEM_COLUMNS)


@dataclass(frozen=True)
class Reject:
    """A record that could not be stored, and why."""

    stream: str
    event_key: str
    field: str
    reason: str
    record: Mapping[str, Any]


@dataclass(frozen=True)
class LoadResult:
    """What one load did."""

    loaded: int
    rejects: list[Reject] = field(default_factory=list)

    @property
    def rejected(self) -> int:
        """How many records went to ``rejects``."""
        return len(self.rejects)


@dataclass(frozen=True)
class StoreSummary:
    """What the store holds."""

    events: int
    events_by_source_type: list[tuple[str, str, int]]
    users: int
    sessions: int
    items: int
    catalog_items: int
    first_event: datetime | None
    last_event: datetime | None
    rejects: int

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly form."""
        return {
            "events": self.events,
            "events_by_source_type": [
                {"source": s, "event_type": t, "events": n}
                for s, t, n in self.events_by_source_type
            ],
            "users": self.users,
            "sessions": self.sessions,
            "items": self.items,
            "catalog_items": self.catalog_items,
            "first_event": self.first_event.isoformat() if self.first_event else None,
            "last_event": self.last_event.isoformat() if self.last_event else None,
            "rejects": self.rejects,
        }


def _key(record: Mapping[str, Any]) -> str:
    return f"{record.get('source')}/{record.get('event_id')}"


class EventStore:
    """Canonical clickstream events in DuckDB or PostgreSQL.

    Args:
        database_url: ``duckdb:///FILE`` (the default, ``personalize.duckdb`` in the working
            directory) or ``postgresql+psycopg://USER@HOST/DB``.
    """

    def __init__(self, database_url: str = DEFAULT_DATABASE_URL) -> None:
        self.database_url = database_url
        self.backend: Backend = open_backend(database_url)
        self.backend.create_tables()
        # One connection serves every sink; loads from parallel drains take turns.
        self._lock = threading.RLock()

    def __enter__(self) -> EventStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the store."""
        self.backend.close()

    @property
    def dialect(self) -> Literal["duckdb", "postgresql"]:
        """Which database holds the store."""
        return "duckdb" if isinstance(self.backend, DuckDBBackend) else "postgresql"

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run a read query (``%s`` placeholders) and return its rows."""
        return self.backend.execute(sql, params)

    # Loading

    def load_events(
        self, records: Iterable[Mapping[str, Any]], *, stream: str = "events"
    ) -> LoadResult:
        """Store canonical events, replacing earlier versions with the same key.

        Records that do not fit the schema go to ``rejects``; the others are stored, in one
        transaction.
        """
        rows: list[tuple[Any, ...]] = []
        rejects: list[Reject] = []
        for record in records:
            try:
                rows.append(coerce_event(record))
            except InvalidEventError as error:
                rejects.append(Reject(stream, _key(record), error.field, error.reason, record))
        with self._lock, self.backend.transaction():
            if rows:
                self.backend.stage("staged_events", EVENT_COLUMNS, rows)
                self._merge_events()
            self._store_rejects(rejects)
        return LoadResult(len(rows), rejects)

    def load_items(
        self, records: Iterable[Mapping[str, Any]], *, stream: str = "items"
    ) -> LoadResult:
        """Store catalog items, replacing earlier versions of the same ``item_id``."""
        rows: list[tuple[Any, ...]] = []
        rejects: list[Reject] = []
        for record in records:
            try:
                rows.append(coerce_item(record))
            except InvalidEventError as error:
                rejects.append(
                    Reject(stream, str(record.get("item_id")), error.field, error.reason, record)
                )
        with self._lock, self.backend.transaction():
            if rows:
                self.backend.stage("staged_items", ITEM_COLUMNS, rows)
                self.backend.execute(
                    "DELETE FROM items WHERE EXISTS (SELECT 1 FROM staged_items s "
                    "WHERE s.item_id = items.item_id)"
                )
                self.backend.execute(
                    f"INSERT INTO items ({_ITEM_LIST}, loaded_at) SELECT DISTINCT ON (item_id) "
                    f"{_ITEM_LIST}, %s FROM staged_items ORDER BY item_id, _seq DESC",
                    [_now()],
                )
            self._store_rejects(rejects)
        return LoadResult(len(rows), rejects)

    def load_event_files(
        self,
        paths: Sequence[str],
        file_format: Literal["jsonl", "parquet"],
        *,
        gzipped: bool | None = None,
        stream: str = "events",
    ) -> LoadResult:
        """Store the events of batch files (JSON lines, optionally gzipped, or Parquet).

        DuckDB reads the files itself; other databases get them in chunks through COPY.
        ``gzipped`` says whether JSON-lines files are compressed (None: by their ``.gz`` name).
        """
        if gzipped is None:
            gzipped = all(p.endswith(".gz") for p in paths)
        if isinstance(self.backend, DuckDBBackend):
            return self._load_files_in_duckdb(paths, file_format, gzipped, stream)
        loaded, rejects = 0, []
        for chunk in _chunks(
            read_batch_files(paths, file_format, gzipped=gzipped), _FILE_CHUNK_ROWS
        ):
            result = self.load_events(chunk, stream=stream)
            loaded += result.loaded
            rejects.extend(result.rejects)
        return LoadResult(loaded, rejects)

    def _merge_events(self) -> None:
        self.backend.execute(
            "DELETE FROM events WHERE EXISTS (SELECT 1 FROM staged_events s "
            "WHERE s.source = events.source AND s.event_id = events.event_id)"
        )
        self.backend.execute(
            f"INSERT INTO events ({_EVENT_LIST}, loaded_at) SELECT DISTINCT ON (source, event_id) "
            f"{_EVENT_LIST}, %s FROM staged_events ORDER BY source, event_id, _seq DESC",
            [_now()],
        )

    def _store_rejects(self, rejects: Sequence[Reject]) -> None:
        if not rejects:
            return
        now = _now()
        rows = [
            (now, r.stream, r.event_key, r.field, r.reason, json.dumps(r.record, default=str))
            for r in rejects
        ]
        self.backend.stage("staged_rejects", REJECT_COLUMNS, rows)
        names = ", ".join(REJECT_COLUMNS)
        self.backend.execute(f"INSERT INTO rejects ({names}) SELECT {names} FROM staged_rejects")

    def _load_files_in_duckdb(
        self, paths: Sequence[str], file_format: str, gzipped: bool, stream: str
    ) -> LoadResult:
        assert isinstance(self.backend, DuckDBBackend)
        files = [str(Path(p)) for p in paths]
        with self._lock, self.backend.transaction():
            self.backend.execute(
                "CREATE OR REPLACE TEMP TABLE raw_batch AS SELECT row_number() OVER () AS _seq, * "
                f"FROM ({self._raw_batch_sql(files, file_format, gzipped)})"
            )
            typed = ", ".join(
                f"{_typed(name, kind)} AS {name}" for name, kind in EVENT_COLUMNS.items()
            )
            raw = ", ".join(f"r.{name} AS raw_{name}" for name in EVENT_COLUMNS)
            self.backend.execute(
                f"CREATE OR REPLACE TEMP TABLE checked_batch AS SELECT t.*, {_problem_case()} AS _problem "
                f"FROM (SELECT r._seq, {typed}, {raw} FROM raw_batch r) t"
            )
            bad = self.backend.execute(
                "SELECT to_json(r), c._problem FROM checked_batch c JOIN raw_batch r USING (_seq) "
                "WHERE c._problem IS NOT NULL ORDER BY _seq"
            )
            rejects = []
            for raw_json, problem_text in bad:
                record = {k: v for k, v in json.loads(raw_json).items() if k != "_seq"}
                field_name, _, reason = str(problem_text).partition(": ")
                rejects.append(Reject(stream, _key(record), field_name, reason, record))
            self.backend.execute(
                f"CREATE OR REPLACE TEMP TABLE staged_events AS SELECT {_defaults_select()}, _seq "
                "FROM checked_batch WHERE _problem IS NULL"
            )
            loaded = self.backend.execute("SELECT count(*) FROM staged_events")[0][0]
            self._merge_events()
            self._store_rejects(rejects)
            for table in ("raw_batch", "checked_batch", "staged_events"):
                self.backend.execute(f"DROP TABLE IF EXISTS {table}")
        return LoadResult(int(loaded), rejects)

    def _raw_batch_sql(self, files: list[str], file_format: str, gzipped: bool) -> str:
        """A SELECT of the files' canonical columns as text (objects and items as JSON)."""
        listed = "[" + ", ".join("'" + f.replace("'", "''") + "'" for f in files) + "]"
        if file_format == "jsonl":
            columns = ", ".join(
                f"{name}: '{'JSON' if kind in {'json', 'items'} else 'VARCHAR'}'"
                for name, kind in EVENT_COLUMNS.items()
            )
            compression = "gzip" if gzipped else "none"
            return (
                f"SELECT {_EVENT_LIST} FROM read_json({listed}, format = 'newline_delimited', "
                f"compression = '{compression}', columns = {{{columns}}})"
            )
        relation = f"read_parquet({listed}, union_by_name = true)"
        present = {
            str(name): str(kind).upper()
            for name, kind, *_ in self.backend.execute(f"DESCRIBE SELECT * FROM {relation}")
        }
        selects = []
        for name, kind in EVENT_COLUMNS.items():
            actual = present.get(name)
            if kind in {"json", "items"}:
                if actual is None:
                    selects.append(f"CAST(NULL AS JSON) AS {name}")
                elif actual in {"VARCHAR", "JSON"}:
                    selects.append(f"CAST(to_json({name}) AS JSON) AS {name}")
                else:
                    selects.append(f"to_json({name}) AS {name}")
            else:
                selects.append(
                    f"{'NULL' if actual is None else f'CAST({name} AS VARCHAR)'} AS {name}"
                )
        return f"SELECT {', '.join(selects)} FROM {relation}"

    # Reading

    def summary(self) -> StoreSummary:
        """Count what the store holds: events by source and type, users, sessions, items."""
        run = self.backend.execute
        by_type = [
            (str(s), str(t), int(n))
            for s, t, n in run(
                "SELECT source, event_type, count(*) FROM events GROUP BY source, event_type "
                "ORDER BY source, count(*) DESC, event_type"
            )
        ]
        events, users, sessions, first, last = run(
            "SELECT count(*), count(DISTINCT coalesce(user_id, anonymous_id)), "
            "count(DISTINCT session_id), min(event_ts), max(event_ts) FROM events"
        )[0]
        if isinstance(self.backend, DuckDBBackend):
            item_sql = (
                "SELECT count(DISTINCT i.item_id) FROM (SELECT unnest(items) AS i FROM events)"
            )
        else:
            item_sql = (
                "SELECT count(DISTINCT e ->> 'item_id') FROM events, jsonb_array_elements(items) e"
            )
        return StoreSummary(
            events=int(events),
            events_by_source_type=by_type,
            users=int(users),
            sessions=int(sessions),
            items=int(run(item_sql)[0][0]),
            catalog_items=int(run("SELECT count(*) FROM items")[0][0]),
            first_event=first,
            last_event=last,
            rejects=int(run("SELECT count(*) FROM rejects")[0][0]),
        )


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _chunks(rows: Iterable[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    chunk: list[dict[str, Any]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def read_batch_files(
    paths: Sequence[str], file_format: str, *, gzipped: bool
) -> Iterator[dict[str, Any]]:
    """Yield the records of Singer batch files, one dict at a time."""
    for path in paths:
        if file_format == "parquet":
            for batch in pq.ParquetFile(path).iter_batches(batch_size=_FILE_CHUNK_ROWS):
                yield from batch.to_pylist()
            continue
        opener = gzip.open if gzipped else open
        with opener(path, "rt", encoding="utf-8") as lines:
            for line in lines:
                if line.strip():
                    yield json.loads(line)


# SQL that types batch columns (text, or JSON for objects) inside DuckDB.

_DUCK_CAST = {"float": "DOUBLE", "int": "BIGINT", "bool": "BOOLEAN"}
_ITEM_SHAPE = json.dumps(
    [{n: {"str": "VARCHAR", "float": "DOUBLE", "int": "BIGINT"}[k] for n, k in ITEM_FIELDS.items()}]
)


def _json_value(column: str) -> str:
    # Objects arrive as JSON, or as JSON text inside a string (Parquet batch files).
    return (
        f"(CASE WHEN json_type({column}) IN ('OBJECT', 'ARRAY') THEN {column} "
        f"WHEN json_type({column}) = 'VARCHAR' AND json_valid({column} ->> '$') "
        f"THEN CAST({column} ->> '$' AS JSON) END)"
    )


def _typed(name: str, kind: Kind) -> str:
    column = f"r.{name}"
    if kind == "str":
        return column
    if kind == "ts":
        return f"CAST(TRY_CAST({column} AS TIMESTAMPTZ) AT TIME ZONE 'UTC' AS TIMESTAMP)"
    if kind in _DUCK_CAST:
        return f"TRY_CAST({column} AS {_DUCK_CAST[kind]})"
    if kind == "json":
        return _json_value(column)
    return f"from_json({_json_value(column)}, '{_ITEM_SHAPE}')"


def _problem_case() -> str:
    checks = [
        f"WHEN {name} IS NULL OR {name} = '' THEN '{name}: is missing'"
        for name in ("source", "event_id")
    ]
    checks.append("WHEN raw_event_ts IS NULL THEN 'event_ts: is missing'")
    checks.append(
        "WHEN coalesce(event_name, event_type) IS NULL "
        "THEN 'event_name: is missing (and so is event_type)'"
    )
    for name, kind in EVENT_COLUMNS.items():
        raw = f"raw_{name}"
        if kind in {"ts", *_DUCK_CAST}:
            what = "timestamp" if kind == "ts" else kind
            checks.append(
                f"WHEN {name} IS NULL AND {raw} IS NOT NULL "
                f"THEN '{name}: not a {what}: ' || CAST({raw} AS VARCHAR)"
            )
        elif kind in {"json", "items"}:
            what = "a list of items" if kind == "items" else "an object"
            checks.append(
                f"WHEN {name} IS NULL AND {raw} IS NOT NULL AND json_type({raw}) <> 'NULL' "
                f"THEN '{name}: expected {what}'"
            )
    checks.append(
        "WHEN len(list_filter(items, lambda i: i.item_id IS NULL)) > 0 "
        "THEN 'items: an item has no item_id'"
    )
    return "CASE " + " ".join(checks) + " END"


def _defaults_select() -> str:
    defaults = {
        "event_name": "coalesce(event_name, event_type)",
        "event_type": "coalesce(event_type, coalesce(nullif(trim(regexp_replace(lower(event_name), "
        "'[^0-9a-z]+', '_', 'g'), '_'), ''), 'unknown'))",
        "items": "coalesce(items, [])",
        "event_count": "coalesce(event_count, 1)",
        "is_aggregate": "coalesce(is_aggregate, false)",
        "properties": "coalesce(properties, '{}')",
        "user_properties": "coalesce(user_properties, '{}')",
    }
    return ", ".join(f"{defaults.get(name, name)} AS {name}" for name in EVENT_COLUMNS)
