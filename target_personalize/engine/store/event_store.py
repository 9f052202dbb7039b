"""The event store: canonical events, the item catalog, and rejected records, in one database.

Loads are idempotent on ``(source, event_id)``: each batch goes to a staging table, duplicates
inside it keep their latest version, and the matching stored events are replaced, all in one
transaction (on Snowflake, one MERGE; a long-running writer can skip that work for batches of new events: see
:meth:`EventStore.track_keys`). Bad records never stop a load: they go to ``rejects`` with
the field at fault.
"""

from __future__ import annotations

import contextlib
import gzip
import itertools
import json
import logging
import re
import tempfile
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pyarrow.parquet as pq

from target_personalize.engine.exceptions import InvalidEventError, StoreError
from target_personalize.engine.store.backends import Backend, DuckDBBackend, open_backend
from target_personalize.engine.store.columns import (
    EVENT_COLUMNS,
    ITEM_COLUMNS,
    ITEM_FIELDS,
    REJECT_COLUMNS,
    Kind,
)
from target_personalize.engine.store.keys import KeyFilter
from target_personalize.engine.store.records import coerce_event, coerce_item
from target_personalize.engine.store.served import create_served_tables
from target_personalize.engine.store.views import event_items_sql

__all__ = [
    "DEFAULT_DATABASE_URL",
    "EventStore",
    "LoadResult",
    "Reject",
    "StoreSummary",
    "read_batch_files",
    "relation_name",
]

logger = logging.getLogger(__name__)

DEFAULT_DATABASE_URL = "duckdb:///personalize.duckdb"
#: Rows per staged chunk when batch files are read in Python.
_FILE_CHUNK_ROWS = 100_000
#: Parquet rows that DuckDB checks and merges at a time when it loads batch files.
PARQUET_CHUNK_ROWS = 1_000_000
#: Bytes of JSON lines (uncompressed) that DuckDB checks and merges at a time.
JSONL_CHUNK_BYTES = 256 * 2**20
#: Bytes copied at a time when a JSON-lines file is cut into chunks.
_COPY_BLOCK = 8 * 2**20
_EVENT_LIST = ", ".join(EVENT_COLUMNS)
_PROPERTIES_AT = list(ITEM_COLUMNS).index("properties")
_KEY_HASHES = "SELECT hash(source, event_id) FROM {}"
_SOURCE_AT = list(EVENT_COLUMNS).index("source")
_EVENT_ID_AT = list(EVENT_COLUMNS).index("event_id")


@dataclass(frozen=True)
class Reject:
    """A record that could not be stored, and why."""

    stream: str
    event_key: str
    field: str
    reason: str
    record: Mapping[str, Any]
    #: The record's line in the Singer input, when it came from there.
    line: int | None = None

    @classmethod
    def of_event(
        cls, stream: str, record: Mapping[str, Any], error: InvalidEventError, line: int | None
    ) -> Reject:
        """The reject of a canonical event that :func:`coerce_event` refused."""
        return cls(stream, _key(record), error.field, error.reason, record, line)


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


_RELATION = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*){0,2}")


def relation_name(name: str) -> str:
    """A table or view name to put in SQL as it is: ``[CATALOG.][SCHEMA.]NAME``, unquoted.

    Raises:
        ValueError: for anything else (quotes, spaces, SQL), so a name never injects SQL.
    """
    if not _RELATION.fullmatch(name.strip()):
        raise ValueError(
            f"events table {name!r} is not a plain name: use SCHEMA.VIEW (letters, digits, _)"
        )
    return name.strip()


def _key(record: Mapping[str, Any]) -> str:
    return f"{record.get('source')}/{record.get('event_id')}"


class EventStore:
    """Canonical clickstream events in DuckDB, PostgreSQL or Snowflake.

    Args:
        database_url: ``duckdb:///FILE`` (the default, ``personalize.duckdb`` in the working
            directory), ``postgresql+psycopg://USER@HOST/DB`` or
            ``snowflake://USER:PASSWORD@ACCOUNT/DATABASE/SCHEMA?warehouse=WH`` (see
            :mod:`~target_personalize.engine.store.snowflake`).
        events_table: a relation in that database to mine instead of the store's ``events``
            table (``SCHEMA.VIEW``, e.g. a canonical view over Snowplow or GA4 events that
            ``tap-clickstream --emit-view`` writes). It must have the canonical columns and
            ``loaded_at``. The store then only reads: it creates no table (funnels need
            temporary tables only), and loads raise :class:`StoreError`.

    Raises:
        ValueError: when ``events_table`` is not a plain (optionally schema-qualified) name.
    """

    def __init__(
        self, database_url: str = DEFAULT_DATABASE_URL, *, events_table: str | None = None
    ) -> None:
        self.database_url = database_url
        #: The relation the funnel miner reads events from.
        self.events_table = "events" if events_table is None else relation_name(events_table)
        self.read_only = events_table is not None
        self.backend: Backend = open_backend(database_url)
        if not self.read_only:
            self.backend.create_tables()
            create_served_tables(self.backend)
        # One connection serves every sink; loads from parallel drains take turns.
        self._lock = threading.RLock()
        self._tracking = False
        self._keys: KeyFilter | None = None

    def __enter__(self) -> EventStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the store."""
        self.backend.close()

    @property
    def dialect(self) -> Literal["duckdb", "postgresql", "snowflake"]:
        """Which database holds the store."""
        return self.backend.dialect

    @contextlib.contextmanager
    def writing(self) -> Iterator[Backend]:
        """The backend, held by this store's writer lock, inside one transaction."""
        with self._lock, self.backend.transaction():
            yield self.backend

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run a read query (``%s`` placeholders) and return its rows."""
        return self.backend.execute(sql, params)

    def query_arrays(self, sql: str, params: Sequence[Any] = ()) -> list[npt.NDArray[Any]]:
        """Run a read query and return one numpy array per column (for big numeric reads)."""
        return self.backend.execute_arrays(sql, params)

    # Loading

    def _check_writable(self) -> None:
        if self.read_only:
            raise StoreError(
                f"this store reads events from {self.events_table} and loads nothing: "
                "open it without events_table to load events"
            )

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
        return self.load_rows(rows, rejects=rejects)

    def load_rows(
        self, rows: Sequence[tuple[Any, ...]], *, rejects: Sequence[Reject] = ()
    ) -> LoadResult:
        """Store event rows checked already, as :func:`coerce_event` returns them.

        For a caller that checked its events itself (the HTTP API answers a bad event with
        the field at fault before storing anything): the rows are not checked again. Stored
        like :meth:`load_events` (replacing earlier versions, one transaction), with
        ``rejects`` written to ``rejects``.
        """
        self._check_writable()
        checked, refused = list(rows), list(rejects)
        with self._lock:
            if self._tracking:
                self._load_tracked(checked, refused)
                return LoadResult(len(checked), refused)
            with self.backend.bounded_memory(), self.backend.transaction():
                if checked and isinstance(self.backend, DuckDBBackend):
                    # Merged straight from the Arrow batch: no copy into a staging table.
                    with self.backend.registered("staged_events", EVENT_COLUMNS, checked):
                        self._merge_events()
                elif checked:
                    self.backend.stage("staged_events", EVENT_COLUMNS, checked)
                    self._merge_events()
                self._store_rejects(refused)
        return LoadResult(len(checked), refused)

    def track_keys(self) -> None:
        """Keep the stored events' key hashes in memory, so loads of new events are cheap.

        For a long-running writer that stores a few events at a time (``personalize serve``):
        from then on, a load whose events are none of them stored yet is appended (a few
        milliseconds for a few events, whatever the store's size) instead of replacing events
        by key, which scans the stored keys; and loads leave DuckDB's memory limit alone (it
        applies to every connection of the process, such as a concurrent reader). Costs 8
        bytes per stored event. Only DuckDB needs it (PostgreSQL finds keys through its
        primary key); this store must then be the database's only writer, as DuckDB makes it
        for a file anyway.
        """
        self._tracking = isinstance(self.backend, DuckDBBackend)
        if self._tracking:
            # Built now (about 1 s for 10M events), not at the first load a request waits for.
            self._keys = KeyFilter(self._hashes("events"))

    def _hashes(self, relation: str) -> npt.NDArray[np.uint64]:
        assert isinstance(self.backend, DuckDBBackend)
        return self.backend.key_hashes(_KEY_HASHES.format(relation))

    def _load_tracked(self, rows: list[tuple[Any, ...]], rejects: list[Reject]) -> None:
        """Append events; replace by key when the key filter says one may be stored."""
        assert isinstance(self.backend, DuckDBBackend)
        if not rows:
            if rejects:
                with self.backend.transaction():
                    self._store_rejects(rejects)
            return
        if self._keys is None:
            self._keys = KeyFilter(self._hashes("events"))
        # Inside the batch, the last version of a key wins (as in _merge_events).
        latest = list({(row[_SOURCE_AT], row[_EVENT_ID_AT]): row for row in rows}.values())
        with (
            self.backend.transaction(),
            self.backend.registered("new_events", EVENT_COLUMNS, latest),
        ):
            hashes = self.backend.key_hashes(
                f"INSERT INTO events ({_EVENT_LIST}, loaded_at) "
                f"SELECT {_EVENT_LIST}, %s FROM new_events RETURNING hash(source, event_id)",
                [_now()],
            )
            if self._keys.any_of(hashes):
                # A key may be stored already (a re-sent event, or a hash collision): replace
                # by key, which also deletes the rows just inserted.
                self._merge_events("new_events")
            self._store_rejects(rejects)
        self._keys.add(hashes)

    def load_items(
        self, records: Iterable[Mapping[str, Any]], *, stream: str = "items"
    ) -> LoadResult:
        """Store catalog items; a newer version of an ``item_id`` updates the fields it fills.

        Empty fields (missing, null, blank text, ``{}`` properties) keep what an earlier
        version of the item said, in this load and in the store.
        """
        self._check_writable()
        rows: list[tuple[Any, ...]] = []
        rejects: list[Reject] = []
        for record in records:
            try:
                rows.append(coerce_item(record))
            except InvalidEventError as error:
                rejects.append(
                    Reject(stream, str(record.get("item_id")), error.field, error.reason, record)
                )
        rows = _merge_item_versions(rows)
        with self._lock, self.backend.transaction():
            if rows:
                self.backend.stage("staged_items", ITEM_COLUMNS, rows)
                self.backend.merge_items("staged_items", _now())
            self._store_rejects(rejects)
        return LoadResult(len(rows), rejects)

    def load_event_files(
        self,
        paths: Sequence[str],
        file_format: Literal["jsonl", "parquet"],
        *,
        gzipped: bool | None = None,
        stream: str = "events",
        chunk_rows: int = PARQUET_CHUNK_ROWS,
        chunk_bytes: int = JSONL_CHUNK_BYTES,
    ) -> LoadResult:
        """Store the events of batch files (JSON lines, optionally gzipped, or Parquet).

        DuckDB reads the files itself, in chunks of ``chunk_rows`` Parquet rows or
        ``chunk_bytes`` of JSON lines, so that its memory stays bounded whatever the files'
        size; the chunks are merged in order, in one transaction, so the outcome is that of
        one load (the later version of an event wins, across chunks too). Other databases
        get the files in chunks through COPY. ``gzipped`` says whether JSON-lines files are
        compressed (None: by their ``.gz`` name).
        """
        self._check_writable()
        if gzipped is None:
            gzipped = all(p.endswith(".gz") for p in paths)
        if isinstance(self.backend, DuckDBBackend):
            return self._load_files_in_duckdb(
                paths, file_format, gzipped, stream, chunk_rows=chunk_rows, chunk_bytes=chunk_bytes
            )
        loaded, rejects = 0, []
        for chunk in _chunks(
            read_batch_files(paths, file_format, gzipped=gzipped), _FILE_CHUNK_ROWS
        ):
            result = self.load_events(chunk, stream=stream)
            loaded += result.loaded
            rejects.extend(result.rejects)
        return LoadResult(loaded, rejects)

    def _merge_events(self, staged: str = "staged_events", columns: str = _EVENT_LIST) -> None:
        """Replace stored events by the staged ones, the last staged version of each key.

        Args:
            staged: the staging table (or a query in parentheses) with ``_seq``.
            columns: the SELECT list that gives the event columns from ``staged``.
        """
        self.backend.merge_events(staged, columns, _now())

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
        self,
        paths: Sequence[str],
        file_format: str,
        gzipped: bool,
        stream: str,
        *,
        chunk_rows: int,
        chunk_bytes: int,
    ) -> LoadResult:
        """Load the files chunk by chunk (see :meth:`load_event_files`), in one transaction."""
        assert isinstance(self.backend, DuckDBBackend)
        loaded, rejects = 0, []
        with (
            self._lock,
            self.backend.bounded_memory(),
            self.backend.transaction(),
            tempfile.TemporaryDirectory(prefix="personalize-chunks-") as spill,
        ):
            if file_format == "parquet":
                chunks = _parquet_chunks(paths, chunk_rows)
            else:
                chunks = _jsonl_chunks(paths, gzipped, chunk_bytes, Path(spill))
            for chunk in chunks:
                done, refused = self._load_chunk_in_duckdb(chunk, file_format, stream)
                loaded += done
                rejects.extend(refused)
            self._keys = None  # the filter lacks the files' keys: rebuilt at the next load
        return LoadResult(loaded, rejects)

    def _load_chunk_in_duckdb(
        self, pieces: list[_Piece], file_format: str, stream: str
    ) -> tuple[int, list[Reject]]:
        """Type and check a chunk's rows in SQL, then merge the good ones.

        Columns the files already hold in the store's type (as the tap's Parquet batches do)
        are taken as they are; others are cast, and a value that does not cast is a reject.

        Args:
            pieces: the chunk's files, or parts of files.
            file_format: ``parquet`` or ``jsonl`` (uncompressed in a chunk).
            stream: the stream named by rejects.

        Returns:
            The rows loaded, and the rejects.
        """
        assert isinstance(self.backend, DuckDBBackend)
        sources = [self._raw_file_sql(piece, file_format) for piece in pieces]
        checked = " UNION ALL ".join(_checked_sql(raw, types) for raw, types in sources)
        # Parquet is read column by column: a pass for the checks, then the load reads the
        # files again (cheaper than holding the batch in a table). JSON lines are parsed whole
        # at each read: those are checked into a table once.
        direct = file_format == "parquet"
        if direct:
            found = self.backend.execute(
                f"SELECT _seq, _problem FROM ({checked}) WHERE _problem IS NOT NULL"
            )
        else:
            self.backend.execute(f"CREATE OR REPLACE TEMP TABLE checked_batch AS {checked}")
            found = self.backend.execute(
                "SELECT _seq, _problem FROM checked_batch WHERE _problem IS NOT NULL"
            )
        problems = dict(found)
        rejects = []
        if problems:
            wanted = ", ".join(str(int(seq)) for seq in problems)
            raw_rows = " UNION ALL ".join(
                f"SELECT _seq, to_json(struct_pack({', '.join(_raw_json(n, k, types.get(n)) for n, k in EVENT_COLUMNS.items())})) "
                f"FROM ({raw}) WHERE _seq IN ({wanted})"
                for raw, types in sources
            )
            for seq, raw_json in self.backend.execute(f"{raw_rows} ORDER BY _seq"):
                record = json.loads(raw_json)
                field_name, _, reason = str(problems[seq]).partition(": ")
                rejects.append(Reject(stream, _key(record), field_name, reason, record))
        if direct:
            typed = " UNION ALL ".join(_typed_sql(raw, types) for raw, types in sources)
            if problems:
                self.backend.stage("rejected_batch", {"seq": "int"}, [(s,) for s in problems])
                typed = (
                    f"SELECT * FROM ({typed}) WHERE _seq NOT IN (SELECT seq FROM rejected_batch)"
                )
            good = f"({typed})"
            # Parquet row counts come from the files' metadata.
            loaded = sum(piece.stop - piece.start for piece in pieces) - len(problems)
        else:
            good = "(SELECT * FROM checked_batch WHERE _problem IS NULL)"
            loaded = self.backend.execute(f"SELECT count(*) FROM {good}")[0][0]
        if loaded:
            self._merge_events(good, _defaults_select())
        self._store_rejects(rejects)
        for table in ("checked_batch", "rejected_batch"):
            self.backend.execute(f"DROP TABLE IF EXISTS {table}")
        return int(loaded), rejects

    def _raw_file_sql(self, piece: _Piece, file_format: str) -> tuple[str, dict[str, str]]:
        """A SELECT of a piece's canonical columns and ``_seq``, and their DuckDB types.

        ``_seq`` orders rows by piece, then line: the later of two versions of an event wins.
        """
        quoted = "'" + piece.path.replace("'", "''") + "'"
        base = piece.seq
        if file_format == "jsonl":
            types = {
                name: "JSON" if kind in {"json", "items"} else "VARCHAR"
                for name, kind in EVENT_COLUMNS.items()
            }
            columns = ", ".join(f"{name}: '{kind}'" for name, kind in types.items())
            return (
                f"SELECT {base} + row_number() OVER () AS _seq, {_EVENT_LIST} FROM read_json("
                f"{quoted}, format = 'newline_delimited', compression = 'none', "
                f"columns = {{{columns}}})",
                types,
            )
        relation = f"read_parquet({quoted}, file_row_number = true)"
        present = {
            str(name): str(kind)
            for name, kind, *_ in self.backend.execute(f"DESCRIBE SELECT * FROM {relation}")
        }
        types = {name: present[name] for name in EVENT_COLUMNS if name in present}
        listed = ", ".join(types) or "NULL AS _none"
        # DuckDB reads only the row groups that hold the piece's rows.
        return (
            f"SELECT {base} + file_row_number - {piece.start} AS _seq, {listed} FROM {relation} "
            f"WHERE file_row_number >= {piece.start} AND file_row_number < {piece.stop}",
            types,
        )

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
        item_sql = f"SELECT count(DISTINCT item_id) FROM ({event_items_sql(self.dialect)}) i"
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


@dataclass(frozen=True)
class _Piece:
    """A batch file, or the rows ``[start, stop)`` of a Parquet file, in one chunk of a load."""

    path: str
    #: The ``_seq`` of its first row: above every earlier piece's, so that the later of two
    #: versions of an event wins across pieces and chunks.
    seq: int
    start: int = 0
    stop: int = 0


def _parquet_chunks(paths: Sequence[str], chunk_rows: int) -> Iterator[list[_Piece]]:
    """The files' rows in chunks of ``chunk_rows`` (from their metadata), in order."""
    chunk: list[_Piece] = []
    size = seq = 0
    for path in paths:
        rows = pq.ParquetFile(path).metadata.num_rows
        start = 0
        while start < rows:
            stop = min(rows, start + chunk_rows - size)
            chunk.append(_Piece(str(Path(path)), seq, start, stop))
            size += stop - start
            seq += stop - start
            start = stop
            if size >= chunk_rows:
                yield chunk
                chunk, size = [], 0
    if chunk:
        yield chunk


def _jsonl_chunks(
    paths: Sequence[str], gzipped: bool, chunk_bytes: int, spill: Path
) -> Iterator[list[_Piece]]:
    """The files' lines in chunks of about ``chunk_bytes`` (uncompressed), in order.

    A plain file that fits is read where it is; others (and every gzipped file) are cut at
    line ends into uncompressed files under ``spill``, each deleted once its chunk is loaded.
    """
    chunk: list[_Piece] = []
    # A line has one byte at least: a piece's _seq go up by its size in bytes at most.
    size = seq = 0
    parts = itertools.count()
    for path in paths:
        file_size = Path(path).stat().st_size
        if not gzipped and file_size <= chunk_bytes:
            if size + file_size > chunk_bytes:
                yield chunk
                _delete_spilled(chunk, spill)
                chunk, size = [], 0
            chunk.append(_Piece(str(Path(path)), seq))
            size += file_size
            seq += file_size + 1
            continue
        opener = gzip.open if gzipped else open
        with opener(path, "rb") as source:
            while True:
                part = spill / f"{next(parts)}.jsonl"
                with part.open("wb") as target:
                    written = _copy_lines(source, target, chunk_bytes - size)
                if not written:
                    part.unlink()
                    break
                chunk.append(_Piece(str(part), seq))
                size += written
                seq += written + 1
                if size >= chunk_bytes:
                    yield chunk
                    _delete_spilled(chunk, spill)
                    chunk, size = [], 0
    if chunk:
        yield chunk
        _delete_spilled(chunk, spill)


def _copy_lines(source: Any, target: Any, budget: int) -> int:
    """Copy about ``budget`` bytes (at least one line, whole lines only); return the count."""
    written = 0
    block = b""
    while written < budget and (block := source.read(min(_COPY_BLOCK, budget - written))):
        target.write(block)
        written += len(block)
    if written and not block.endswith(b"\n"):
        rest = source.readline()
        target.write(rest)
        written += len(rest)
    return written


def _delete_spilled(chunk: list[_Piece], spill: Path) -> None:
    for piece in chunk:
        if Path(piece.path).parent == spill:
            Path(piece.path).unlink()


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


# SQL that types batch columns inside DuckDB: columns already of the store's type pass as
# they are, text and JSON are cast, and a value that does not cast names the problem.

_STORE_TYPES = DuckDBBackend.types
_NUMERIC = frozenset(
    {"DOUBLE", "FLOAT", "BIGINT", "INTEGER", "SMALLINT", "TINYINT", "HUGEINT", "UBIGINT"}
    | {"UINTEGER", "USMALLINT", "UTINYINT"}
)
_INTEGER = _NUMERIC - {"DOUBLE", "FLOAT"}
_EMPTY = "''"
_ITEM_SHAPE = json.dumps([{n: _STORE_TYPES[k] for n, k in ITEM_FIELDS.items()}])


def _json_value(column: str) -> str:
    # Objects arrive as JSON, or as JSON text inside a JSON string.
    return (
        f"(CASE WHEN json_type({column}) IN ('OBJECT', 'ARRAY') THEN {column} "
        f"WHEN json_type({column}) = 'VARCHAR' AND json_valid({column} ->> '$') "
        f"THEN CAST({column} ->> '$' AS JSON) END)"
    )


def _as_json(column: str, source: str) -> str:
    """JSON for a file column: text columns hold JSON text, nested columns become JSON."""
    if source == "VARCHAR":
        return f"(CASE WHEN json_valid({column}) THEN CAST({column} AS JSON) END)"
    if source == "JSON":
        return _json_value(column)
    return f"to_json({column})"


def _typed(name: str, kind: Kind, source: str | None) -> tuple[str, str | None]:
    """The store value of a file column, and the raw text that must give one (None: no check).

    Args:
        name: the column.
        kind: its kind in the store.
        source: its DuckDB type in the file (None when the file lacks it).
    """
    if source is None:
        return f"CAST(NULL AS {_STORE_TYPES[kind]})", None
    if source == _STORE_TYPES[kind] and kind not in {"json"}:
        return name, None
    text = name if source == "VARCHAR" else f"CAST({name} AS VARCHAR)"
    if kind == "str":
        return text, None
    if kind == "json":
        return _as_json(name, source), "" if source == "VARCHAR" else None
    if kind == "items":
        return f"from_json({_as_json(name, source)}, '{_ITEM_SHAPE}')", None
    if kind == "ts":
        if source.startswith("TIMESTAMP"):
            zoned = name if "TIME ZONE" in source else f"CAST({name} AS TIMESTAMPTZ)"
            return f"({zoned} AT TIME ZONE 'UTC')", None
        # Naive text is UTC (the connection's time zone), as in coerce_event.
        return f"(TRY_CAST(nullif({text}, '') AS TIMESTAMPTZ) AT TIME ZONE 'UTC')", text
    if kind == "float":
        if source in _NUMERIC or source.startswith("DECIMAL"):
            return f"CAST({name} AS DOUBLE)", None
        return f"TRY_CAST(nullif({text}, '') AS DOUBLE)", text
    if kind == "int":
        if source in _INTEGER:
            return f"TRY_CAST({name} AS BIGINT)", text
        # A whole number, as coerce_event wants (a cast to BIGINT would round 2.5).
        number = f"TRY_CAST(nullif({text}, '') AS DOUBLE)"
        return (
            f"(CASE WHEN isfinite({number}) AND {number} = trunc({number}) "
            f"THEN TRY_CAST({number} AS BIGINT) END)",
            text,
        )
    return f"TRY_CAST({text} AS BOOLEAN)", text


def _checked_sql(raw: str, types: dict[str, str]) -> str:
    """SELECT ``_seq``, the typed event columns and ``_problem`` (NULL for a good row)."""
    typed: list[str] = []
    raws: list[str] = []
    checks = [
        f"WHEN nullif({name}, '') IS NULL THEN '{name}: is missing'"
        for name in ("source", "event_id")
    ]
    checks.append("WHEN event_ts IS NULL AND _raw_event_ts IS NULL THEN 'event_ts: is missing'")
    checks.append(
        "WHEN coalesce(nullif(event_name, ''), nullif(event_type, '')) IS NULL "
        "THEN 'event_name: is missing (and so is event_type)'"
    )
    for name, kind in EVENT_COLUMNS.items():
        source = types.get(name)
        expression, check = _typed(name, kind, source)
        typed.append(f"{expression} AS {name}")
        if name == "event_ts":
            present = "NULL" if source is None else f"nullif(CAST({name} AS VARCHAR), '')"
            raws.append(f"{present} AS _raw_event_ts")
        if check is None:
            continue
        if kind == "json":
            checks.append(
                f"WHEN {name} IS NULL AND _raw_{name} IS NOT NULL THEN '{name}: expected an object'"
            )
            raws.append(f"{name if source == 'VARCHAR' else 'NULL'} AS _raw_{name}")
            continue
        what = "timestamp" if kind == "ts" else kind
        # Empty text is no value (coerce_event's view), except for a boolean.
        raws.append(f"{check if kind == 'bool' else f'nullif({check}, {_EMPTY})'} AS _raw_{name}")
        checks.append(
            f"WHEN {name} IS NULL AND _raw_{name} IS NOT NULL "
            f"THEN '{name}: not a {what}: ' || _raw_{name}"
        )
    for name, kind in EVENT_COLUMNS.items():
        source = types.get(name)
        if kind == "json" and source not in {None, "VARCHAR"}:
            # JSON or nested columns: a value that is not an object or a list.
            raw_json = name if source == "JSON" else f"to_json({name})"
            checks.append(
                f"WHEN {name} IS NULL AND _json_{name} IS NOT NULL AND json_type(_json_{name}) <> 'NULL' "
                f"THEN '{name}: expected an object'"
            )
            raws.append(f"{raw_json} AS _json_{name}")
        elif kind == "items" and source is not None and source != _STORE_TYPES["items"]:
            raw_json = name if source == "JSON" else f"to_json({name})"
            checks.append(
                f"WHEN {name} IS NULL AND _json_{name} IS NOT NULL AND json_type(_json_{name}) <> 'NULL' "
                f"THEN '{name}: expected a list of items'"
            )
            raws.append(f"{raw_json} AS _json_{name}")
    checks.append(
        "WHEN len(list_filter(items, lambda i: nullif(i.item_id, '') IS NULL)) > 0 "
        "THEN 'items: an item has no item_id'"
    )
    problem = "CASE " + " ".join(checks) + " END"
    columns = ", ".join(EVENT_COLUMNS)
    inner = f"SELECT _seq, {', '.join(typed)}, {', '.join(raws)} FROM ({raw})"
    return f"SELECT _seq, {columns}, {problem} AS _problem FROM ({inner})"


def _typed_sql(raw: str, types: dict[str, str]) -> str:
    """SELECT ``_seq`` and the typed event columns (no checks: those ran before)."""
    typed = ", ".join(
        f"{_typed(name, kind, types.get(name))[0]} AS {name}"
        for name, kind in EVENT_COLUMNS.items()
    )
    return f"SELECT _seq, {typed} FROM ({raw})"


def _raw_json(name: str, kind: Kind, source: str | None) -> str:
    """The value of a file column as it goes into a reject's ``record``."""
    if source is None:
        return f"{name} := NULL"
    if kind in {"json", "items"}:
        return f"{name} := {name if source == 'JSON' else f'to_json({name})'}"
    return f"{name} := CAST({name} AS VARCHAR)"


def _defaults_select() -> str:
    defaults = {
        "event_name": "coalesce(nullif(event_name, ''), event_type)",
        "event_type": "coalesce(nullif(event_type, ''), coalesce(nullif(trim(regexp_replace("
        "lower(event_name), '[^0-9a-z]+', '_', 'g'), '_'), ''), 'unknown'))",
        "items": "coalesce(items, [])",
        "event_count": "coalesce(event_count, 1)",
        "is_aggregate": "coalesce(is_aggregate, false)",
        "properties": "coalesce(properties, '{}')",
        "user_properties": "coalesce(user_properties, '{}')",
    }
    return ", ".join(f"{defaults.get(name, name)} AS {name}" for name in EVENT_COLUMNS)


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip() in {"", "{}"})


def _merge_item_versions(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """One row per item: later versions fill fields, empty fields become NULL (kept as known)."""
    merged: dict[Any, list[Any]] = {}
    for row in rows:
        fresh = [None if _empty(value) else value for value in row]
        earlier = merged.get(row[0])
        if earlier is None:
            merged[row[0]] = fresh
            continue
        properties = fresh[_PROPERTIES_AT]
        if properties is not None and earlier[_PROPERTIES_AT] is not None:
            joined = {**json.loads(earlier[_PROPERTIES_AT]), **json.loads(properties)}
            fresh[_PROPERTIES_AT] = json.dumps(joined)
        merged[row[0]] = [
            old if new is None else new for new, old in zip(fresh, earlier, strict=True)
        ]
    return [tuple(row) for row in merged.values()]
