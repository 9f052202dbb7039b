"""Event files to canonical events a chunk at a time, column by column (BATCH mode).

In RECORD mode each row goes through :class:`RowMapper` in Python. In BATCH mode whole chunks
of a file (about a hundred thousand rows) are converted in DuckDB instead (:mod:`.sql`): JSON
lines are parsed there, columns mapped, timestamps parsed and formatted, numbers and items
cleaned, and the result comes back as an Arrow table in the BATCH layout (``ARROW_SCHEMA``).

SQL converts the rows whose conversion is plain: text and whole numbers where text is wanted,
numbers where numbers are, ISO-8601 times or epoch integers. Every other row (a malformed
line, a missing time, a float where text is wanted, any value Python's rules treat in their
own way) is *unsure* and goes through :class:`RowMapper`, which also words the reason when a
row is bad. So both modes give the same events, and RowMapper stays the one definition of the
mapping. Known limit: in a JSON object nested in a line (an item, ``properties``) a repeated
key keeps its first value here and its last in RECORD mode.
"""

from __future__ import annotations

import concurrent.futures
import csv
import gzip
import hashlib
import logging
import typing as t
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from tap_clickstream.batches import ARROW_SCHEMA, records_table
from tap_clickstream.events import EVENT_COLUMNS, snake_case
from tap_clickstream.sources.files import readers, settings
from tap_clickstream.sources.files.sql import Layout, columns_sql, json_sql

if t.TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from tap_clickstream.sources.files.mapping import RowMapper

__all__ = ["Converted", "FileConverter"]

#: Bytes of a JSON-lines file converted at a time.
CHUNK_BYTES = 48 << 20
#: Rows of a CSV file converted at a time.
CHUNK_ROWS = 100_000
#: Rows per Arrow record batch handed to DuckDB (which scans batches in parallel).
_SCAN_ROWS = 8_192
#: JSON lines whose keys tell which keys a chunk holds (the others are checked line by line).
_SAMPLE_ROWS = 2_000


@dataclass
class Converted:
    """One converted chunk: its events (canonical BATCH layout) and the rows it skipped."""

    table: pa.Table
    bad: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class _Chunk:
    """Raw rows of a file chunk, as an Arrow table DuckDB reads, and how to read one in Python.

    ``table`` holds ``_row`` and either ``line`` (JSON lines) or ``c0``, ``c1``... (CSV and
    Parquet columns, named in ``names``), and ``_bad`` when some rows are known bad.
    """

    table: pa.Table
    numbers: np.ndarray  # line (or row) number of each row
    row: Callable[[int], readers.Row | None]  # row i as read_* yields it (None: skip it)
    names: list[str] | None = None
    all_unsure: bool = False
    present: frozenset[str] = frozenset()  # JSON lines: the keys SQL reads


class FileConverter:
    """Convert event files in chunks, column by column; see the module docstring.

    Args:
        mapper: the RECORD path's row mapper (its mapping, crosswalk and source).
        csv_delimiter: the configured CSV delimiter.
        logger: where to log (the stream's logger).
    """

    def __init__(
        self, mapper: RowMapper, csv_delimiter: str = ",", logger: logging.Logger | None = None
    ) -> None:
        self.logger = logger or logging.getLogger(__name__)
        self.mapper = mapper
        self.layout = Layout(mapper)
        self.csv_delimiter = csv_delimiter
        # A mapped ``properties`` or ``items`` column is rare and Python's handling of it
        # subtle: such files take the Python path whole.
        self.fast = not ({"properties", "items"} & set(mapper.fields))
        self.connection = duckdb.connect()
        self.connection.execute("SET TimeZone = 'UTC'")
        self.connection.execute("SET memory_limit = '1GB'")
        self._sql: dict[tuple[t.Any, ...], str] = {}
        self._present: frozenset[str] = frozenset()  # JSON keys of the file so far

    def close(self) -> None:
        """Close the DuckDB connection."""
        self.connection.close()

    @staticmethod
    def hashes(path: Path, kind: str) -> bool:
        """Whether :meth:`convert` feeds a digest the file's bytes (as stored) as it reads."""
        return kind == "jsonl" and not path.name.lower().endswith(".gz")

    def convert(
        self, path: Path, kind: str, ingested_at: str, digest: t.Any = None
    ) -> Iterator[Converted]:
        """Yield the events of one file, chunk by chunk, in file order.

        ``digest``, a hashlib object, is fed the file's bytes as they are read when the file
        is uncompressed JSON lines (:meth:`hashes` says so), saving a second read.

        Raises:
            OSError, EOFError, zlib.error, UnicodeDecodeError, csv.Error, pyarrow.ArrowException:
                when the file cannot be read further; the rows before the failure are yielded
                first, as RECORD mode emits them.
        """
        self._present = frozenset()
        unit = "row" if kind == "parquet" else "line"
        chunks = (
            self._jsonl(path, digest)
            if kind == "jsonl"
            else self._csv(path)
            if kind == "csv"
            else self._parquet(path)
        )
        resume = 1
        try:
            for chunk in chunks:
                yield self._convert(chunk, path.name, unit, ingested_at)
                if len(chunk.numbers):
                    resume = int(chunk.numbers[-1]) + 1
        except readers.UNREADABLE:
            # Convert what RECORD mode emits before the failure (and fail at the same row).
            yield from self._row_path(path, kind, unit, ingested_at, resume)
            raise

    # Reading

    def _jsonl(self, path: Path, digest: t.Any = None) -> Iterator[_Chunk]:
        """Chunks of whole lines, each the lines of one block read (its bytes not copied).

        The line a block boundary cuts is a chunk of its own (read in Python). ``digest`` (a
        hashlib object) is fed the bytes read, for an uncompressed file, in a thread of its
        own (hashlib frees the GIL) while the chunks are converted.
        """
        gzipped = path.name.lower().endswith(".gz")
        hashing = digest is not None and not gzipped
        opener = gzip.open if gzipped else Path.open
        with (
            opener(path, "rb") as handle,
            concurrent.futures.ThreadPoolExecutor(1) as hasher,
        ):
            rest = b""  # the start of a line the previous block cut
            line = 1
            while block := handle.read(CHUNK_BYTES):
                if hashing:
                    hasher.submit(digest.update, block)  # in order: one worker
                first = block.find(b"\n")
                if first < 0:
                    rest += block
                    continue
                head = _jsonl_chunk(memoryview(rest + block[: first + 1]), line, python=True)
                line += len(head.numbers)
                yield head
                last = block.rfind(b"\n")
                if last > first:
                    chunk = _jsonl_chunk(memoryview(block)[first + 1 : last + 1], line)
                    line += len(chunk.numbers)
                    yield chunk
                rest = block[last + 1 :]
            if rest:
                yield _jsonl_chunk(memoryview(rest), line, python=True)

    def _csv(self, path: Path) -> Iterator[_Chunk]:
        delimiter = self.csv_delimiter
        if path.name.lower().endswith((".tsv", ".tsv.gz")):
            delimiter = "\t"
        with readers.open_text(path) as handle:
            reader = csv.reader(handle, delimiter=delimiter)
            header = next(reader, None)
            if header is None:
                return
            width = len(header)
            rows: list[list[str]] = []
            numbers: list[int] = []
            bad: dict[int, str] = {}
            for values in reader:
                if len(values) == width:
                    rows.append(values)
                elif values:
                    # A placeholder row: it takes the Python path, which reports it.
                    bad[reader.line_num] = f"truncated row: {len(values)} of {width} fields"
                    rows.append([""] * width)
                else:
                    continue
                numbers.append(reader.line_num)
                if len(rows) >= CHUNK_ROWS:
                    yield _csv_chunk(header, rows, numbers, bad)
                    rows, numbers, bad = [], [], {}
            if rows:
                yield _csv_chunk(header, rows, numbers, bad)

    @staticmethod
    def _parquet(path: Path) -> Iterator[_Chunk]:
        number = 0
        for batch in pq.ParquetFile(path).iter_batches(batch_size=settings.PARQUET_BATCH_ROWS):
            table = pa.Table.from_batches([batch])
            count = len(table)
            numbers = np.arange(number + 1, number + 1 + count, dtype=np.int64)
            number += count

            def row(i: int, table: pa.Table = table) -> readers.Row | None:
                values = table.slice(i, 1).to_pylist()[0]
                return {key: value for key, value in values.items() if value is not None}

            columns: dict[str, pa.ChunkedArray | pa.Array] = {
                "_row": pa.array(np.arange(count, dtype=np.int64))
            }
            for i, column in enumerate(table.columns):
                kind = column.type
                if pa.types.is_dictionary(kind) and pa.types.is_string(kind.value_type):
                    column = column.cast(pa.string())  # noqa: PLW2901
                columns[f"c{i}"] = column
            names = table.column_names
            yield _Chunk(
                pa.table(columns), numbers, row, names, all_unsure=len(set(names)) != len(names)
            )

    # Converting

    def _convert(self, chunk: _Chunk, file_name: str, unit: str, ingested_at: str) -> Converted:
        count = len(chunk.numbers)
        fast: pa.Table | None = None
        unsure_rows = np.arange(count)
        if self.fast and not chunk.all_unsure and count:
            try:
                fast, unsure_rows = self._sql_rows(chunk, ingested_at)
            except duckdb.Error as error:
                # Not expected; but a chunk SQL cannot take still converts, row by row.
                self.logger.warning("Converting rows of %s one by one: %s", file_name, error)
                fast, unsure_rows = None, np.arange(count)
        tables: list[pa.Table] = []
        order: list[np.ndarray] = []
        if fast is not None and len(fast):
            tables.append(self._finish(fast))
            order.append(fast.column("_row").to_numpy())
        bad: list[tuple[str, str]] = []
        if len(unsure_rows):
            records: list[dict[str, t.Any]] = []
            kept: list[int] = []
            for i in unsure_rows.tolist():
                row = chunk.row(i)
                if row is None:
                    continue
                where = f"{file_name}, {unit} {int(chunk.numbers[i])}"
                record = self._mapped(row, where, ingested_at, bad)
                if record is not None:
                    records.append(record)
                    kept.append(i)
            if records:
                tables.append(records_table(records))
                order.append(np.asarray(kept, dtype=np.int64))
        if not tables:
            return Converted(ARROW_SCHEMA.empty_table(), bad)
        if len(tables) == 1:
            return Converted(tables[0], bad)
        merged = pa.concat_tables(tables)
        positions = np.argsort(np.concatenate(order), kind="stable")
        return Converted(merged.take(pa.array(positions)), bad)

    def _mapped(
        self, row: readers.Row, where: str, ingested_at: str, bad: list[tuple[str, str]]
    ) -> dict[str, t.Any] | None:
        """The canonical event of one row; ``None``, with the problem added to ``bad``, if none."""
        if isinstance(row, str):  # the reader's description of a malformed row
            bad.append((where, row))
            return None
        try:
            return t.cast("dict[str, t.Any]", self.mapper(row, ingested_at))
        except (ValueError, TypeError, OverflowError) as error:
            bad.append((where, f"invalid event: {error}"))
            return None

    def _sql_rows(self, chunk: _Chunk, ingested_at: str) -> tuple[pa.Table, np.ndarray]:
        """The rows SQL converts, and the positions of those it leaves to Python."""
        if chunk.names is None:
            # The keys SQL reads: those of the file so far and of the chunk's first lines.
            chunk.present = self._present | self._json_keys(chunk.table.slice(0, _SAMPLE_ROWS))
            if not chunk.present:
                return ARROW_SCHEMA.empty_table(), np.arange(len(chunk.numbers))
        result = self._run(chunk, ingested_at)
        unsure = result.column("_unsure")
        unsure_rows = np.flatnonzero(unsure.to_numpy(zero_copy_only=False))
        if chunk.names is None:
            if len(unsure_rows) > len(chunk.numbers) // 50 + 1:
                # Many lines hold keys the sample lacked, maybe: learn them all, run again.
                found = self._json_keys(chunk.table)
                if not found <= chunk.present:
                    chunk.present |= found
                    result = self._run(chunk, ingested_at)
                    unsure = result.column("_unsure")
                    unsure_rows = np.flatnonzero(unsure.to_numpy(zero_copy_only=False))
            self._present = chunk.present
        return (result.filter(pc.invert(unsure)) if len(unsure_rows) else result), unsure_rows

    def _run(self, chunk: _Chunk, ingested_at: str) -> pa.Table:
        sql = self._chunk_sql(chunk, ingested_at)
        self.connection.register("chunk", chunk.table)
        try:
            return self.connection.sql(sql).to_arrow_table()
        finally:
            self.connection.unregister("chunk")

    def _finish(self, fast: pa.Table) -> pa.Table:
        """The canonical table of the fast rows: event types mapped, missing ids hashed."""
        sources = fast.column("_type_source").combine_chunks().dictionary_encode()
        kinds = [
            snake_case(value[1:]) if value[0] == "S" else self.mapper.map_event_type(value[1:])
            for value in sources.dictionary.to_pylist()
        ]
        event_type = pa.DictionaryArray.from_arrays(sources.indices, pa.array(kinds, pa.string()))
        columns = {name: fast.column(name) for name in EVENT_COLUMNS if name != "event_type"}
        columns["event_type"] = event_type.cast(pa.string())
        id_text = fast.column("_id_text")
        if id_text.null_count < len(id_text):
            given = fast.column("event_id").to_pylist()
            columns["event_id"] = pa.array(
                [
                    hashlib.blake2b(text.encode(), digest_size=16).hexdigest()
                    if text is not None
                    else event_id
                    for text, event_id in zip(id_text.to_pylist(), given, strict=True)
                ],
                pa.string(),
            )
        return pa.table({name: columns[name] for name in EVENT_COLUMNS}).cast(ARROW_SCHEMA)

    def _row_path(
        self, path: Path, kind: str, unit: str, ingested_at: str, resume: int
    ) -> Iterator[Converted]:
        """The RECORD path's rows from row ``resume`` on, converted, until the file fails."""
        rows: Iterator[tuple[int, readers.Row]]
        if kind == "jsonl":
            rows = readers.read_jsonl(path)
        elif kind == "csv":
            rows = readers.read_csv(path, self.csv_delimiter)
        else:
            rows = readers.read_parquet(path)
        records: list[dict[str, t.Any]] = []
        bad: list[tuple[str, str]] = []
        try:
            for number, row in rows:
                if number < resume:
                    continue
                record = self._mapped(row, f"{path.name}, {unit} {number}", ingested_at, bad)
                if record is not None:
                    records.append(record)
        finally:
            if records or bad:
                yield Converted(records_table(records), bad)

    # SQL

    def _json_keys(self, table: pa.Table) -> frozenset[str]:
        """The keys of the layout that lines of ``table`` hold (those SQL may read)."""
        allowed = set(self.layout.columns)
        self.connection.register("chunk", table)
        try:
            found = self.connection.sql(
                "SELECT DISTINCT unnest(json_keys(line)) AS key FROM chunk WHERE json_valid(line)"
            ).fetchall()
        finally:
            self.connection.unregister("chunk")
        return frozenset(key for (key,) in found if key in allowed)

    def _chunk_sql(self, chunk: _Chunk, ingested_at: str) -> str:
        schema = chunk.table.schema
        key = (
            tuple(chunk.names or sorted(chunk.present)),
            tuple(str(kind) for kind in schema.types),
            ingested_at,
        )
        sql = self._sql.get(key)
        if sql is None:
            if chunk.names is None:
                sql = json_sql(self.layout, chunk.present, ingested_at)
            else:
                sql = columns_sql(self.layout, chunk.names, schema, ingested_at)
            self._sql[key] = sql
        return sql


def _jsonl_chunk(data: memoryview, first_line: int, *, python: bool = False) -> _Chunk:
    """The lines of ``data`` (whole lines; the last may lack its newline).

    ``python``: for a line or two, the Python path is cheaper than a DuckDB pass.
    """
    newlines = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == ord("\n"))
    starts = np.concatenate(([0], newlines + 1)).astype(np.int64)
    if starts[-1] == len(data):
        starts = starts[:-1]
    offsets = np.append(starts, len(data)).astype(np.int64)
    count = len(starts)
    numbers = np.arange(first_line, first_line + count, dtype=np.int64)

    def row(i: int) -> readers.Row | None:
        return readers.decode_jsonl_line(bytes(data[offsets[i] : offsets[i + 1]]))

    rows = pa.array(np.arange(count, dtype=np.int64))
    if python:
        return _Chunk(pa.table({"_row": rows}), numbers, row, all_unsure=True)
    lines = pa.LargeStringArray.from_buffers(count, pa.py_buffer(offsets), pa.py_buffer(data))
    try:
        lines.validate(full=True)
    except pa.ArrowInvalid:
        # Not UTF-8 (DuckDB needs it): this chunk's rows all take the Python path.
        return _Chunk(pa.table({"_row": rows}), numbers, row, all_unsure=True)
    # Record batches of a few thousand rows: DuckDB scans them in parallel.
    table = pa.table({"_row": rows, "line": lines})
    return _Chunk(pa.Table.from_batches(table.to_batches(max_chunksize=_SCAN_ROWS)), numbers, row)


def _csv_chunk(
    header: list[str], rows: list[list[str]], numbers: list[int], bad: dict[int, str]
) -> _Chunk:
    def row(i: int) -> readers.Row | None:
        if numbers[i] in bad:
            return bad[numbers[i]]
        return {name: value for name, value in zip(header, rows[i], strict=True) if value != ""}

    columns: dict[str, pa.Array] = {"_row": pa.array(np.arange(len(rows), dtype=np.int64))}
    for i, column in enumerate(zip(*rows, strict=True)):
        text = pa.array(column, pa.string())
        columns[f"c{i}"] = pc.if_else(pc.equal(text, ""), pa.scalar(None, pa.string()), text)
    if bad:
        columns["_bad"] = pa.array([number in bad for number in numbers], pa.bool_())
    return _Chunk(
        pa.table(columns),
        np.asarray(numbers, dtype=np.int64),
        row,
        list(header),
        all_unsure=len(set(header)) != len(header),
    )
