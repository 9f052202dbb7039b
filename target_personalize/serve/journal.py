"""A write-ahead journal for ``ack="journal"``: events are durable before they reach the store.

Each accepted batch is appended to the current segment file as JSON lines and flushed to disk
(``fdatasync``) together with the batches that arrived meanwhile; only then is the request
answered. The store thread loads the events later in bigger transactions and reports them
back; a segment that is full (``max_bytes``) and whose events are all in the store is deleted.
At start, segments left by a server that stopped without loading them are replayed into the
store (loads are idempotent, so replaying events already stored adds nothing).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import msgspec

__all__ = ["CHUNK_BYTES", "Journal", "Poison"]

#: How much of a segment is read at a time when it is replayed.
CHUNK_BYTES = 8 << 20
#: How much of a poison line is kept in the store's ``rejects`` (the whole line is kept in
#: the segment's rejected file).
_HEAD_BYTES = 2048


@dataclass(frozen=True)
class Poison:
    """A journal line that cannot be replayed: where it is, its size, its start, and why."""

    segment: int
    line: int
    size: int
    head: str
    reason: str


logger = logging.getLogger(__name__)

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode


class Journal:
    """Numbered segment files ``<directory>/<stem>.<n>.jsonl``.

    Args:
        directory: where the segments live.
        stem: their name prefix.
        max_bytes: size after which a new segment starts.
    """

    def __init__(self, directory: Path, stem: str, max_bytes: int = 64 << 20) -> None:
        self.directory = directory
        self.stem = stem
        self.max_bytes = max_bytes
        directory.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        # segment -> events written to it and not yet in the store
        self._pending: dict[int, int] = {}
        found = self.segments()
        self._current = (max(found) + 1) if found else 0
        self._size = 0
        self._fd = self._open(self._current)

    def _path(self, segment: int) -> Path:
        return self.directory / f"{self.stem}.{segment}.jsonl"

    def _open(self, segment: int) -> int:
        self._pending[segment] = 0
        return os.open(self._path(segment), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

    def segments(self) -> list[int]:
        """Segment numbers on disk, oldest first."""
        numbers = []
        for path in self.directory.glob(f"{self.stem}.*.jsonl"):
            middle = path.name[len(self.stem) + 1 : -len(".jsonl")]
            if middle.isdigit():
                numbers.append(int(middle))
        return sorted(numbers)

    @property
    def current(self) -> int:
        """The segment this run appends to; older ones are left by earlier runs."""
        return self._current

    def leftovers_of(
        self, segment: int, max_record_bytes: int, chunk_bytes: int = CHUNK_BYTES
    ) -> Iterator[tuple[int, list[dict[str, Any]], list[Poison]]]:
        """The events of an earlier run's ``segment``, in batches of about ``chunk_bytes``.

        Yields (segment, records, poison) per chunk read: memory stays bounded by the chunk
        and ``max_record_bytes``, whatever the segment holds. A line longer than
        ``max_record_bytes`` is not parsed: its bytes are copied to :meth:`rejected_path` and
        it is reported as poison, as is a line that is not a JSON object. A torn last line
        (a write cut by a crash, never acknowledged) is skipped.
        """
        yield from _Replay(self, segment, max_record_bytes).chunks(chunk_bytes)

    def rejected_path(self, segment: int) -> Path:
        """Where the poison lines of ``segment`` are kept, whole, for a person to look at."""
        return self.directory / f"rejected-{self.stem}.{segment}.jsonl"

    def drop(self, segment: int) -> None:
        """Delete a segment whose events are all in the store."""
        self._path(segment).unlink(missing_ok=True)

    def append(self, batches: list[list[dict[str, Any]]]) -> int:
        """Write batches and flush them to disk; returns the segment they went to."""
        data = b"".join(_encode(record) + b"\n" for batch in batches for record in batch)
        with self._lock:
            segment = self._current
            os.write(self._fd, data)
            os.fdatasync(self._fd)
            self._size += len(data)
            self._pending[segment] += sum(len(batch) for batch in batches)
            if self._size >= self.max_bytes:
                os.close(self._fd)
                self._current += 1
                self._size = 0
                self._fd = self._open(self._current)
        return segment

    def stored(self, segment: int, count: int) -> None:
        """``count`` events of ``segment`` are in the store; drop the segment when done."""
        with self._lock:
            self._pending[segment] -= count
            if self._pending[segment] <= 0 and segment != self._current:
                del self._pending[segment]
                self.drop(segment)

    def close(self, *, everything_stored: bool) -> None:
        """Close the current segment; delete it too when all its events are in the store."""
        with self._lock:
            os.close(self._fd)
            if everything_stored and all(n <= 0 for n in self._pending.values()):
                for segment in list(self._pending):
                    self.drop(segment)
                self._pending.clear()


class _Replay:
    """Reads one segment in chunks, setting aside lines too long or not JSON objects."""

    def __init__(self, journal: Journal, segment: int, max_record_bytes: int) -> None:
        self.journal = journal
        self.segment = segment
        self.max_record_bytes = max_record_bytes
        self.line = 0
        self.poison: list[Poison] = []
        self._rejected: BinaryIO | None = None

    def _reject(self, data: bytes, size: int, reason: str, *, first: bool, last: bool) -> None:
        if self._rejected is None:
            self._rejected = self.journal.rejected_path(self.segment).open("ab")
        self._rejected.write(data + (b"\n" if last else b""))
        if first:
            head = data[:_HEAD_BYTES].decode("utf-8", errors="replace")
            self.poison.append(Poison(self.segment, self.line, size, head, reason))
        elif last:  # the size of a long line is known at its end
            old = self.poison[-1]
            self.poison[-1] = Poison(old.segment, old.line, size, old.head, old.reason)

    def _parse(self, data: bytes, records: list[dict[str, Any]]) -> None:
        self.line += 1
        if len(data) > self.max_record_bytes:
            reason = f"journal line over {self.max_record_bytes} bytes (max_event_bytes)"
            self._reject(data, len(data), reason, first=True, last=True)
            return
        try:
            record = _decode(data)
        except msgspec.DecodeError as error:
            self._reject(data, len(data), f"not JSON: {error}", first=True, last=True)
            return
        if not isinstance(record, dict):
            self._reject(data, len(data), "not a JSON object", first=True, last=True)
            return
        records.append(record)

    def chunks(self, chunk_bytes: int) -> Iterator[tuple[int, list[dict[str, Any]], list[Poison]]]:
        path = self.journal._path(self.segment)
        carry = b""
        skipping = 0  # bytes of an over-long line set aside so far (0: not in one)
        try:
            with path.open("rb") as handle:
                while block := handle.read(chunk_bytes):
                    records: list[dict[str, Any]] = []
                    lines = block.split(b"\n")
                    for index, part in enumerate(lines):
                        complete = index < len(lines) - 1
                        if skipping:
                            skipping += len(part)
                            self._reject(part, skipping, "", first=False, last=complete)
                            if complete:
                                skipping = 0
                            continue
                        if not complete:
                            carry += part
                            if len(carry) > self.max_record_bytes:
                                self.line += 1
                                reason = (
                                    f"journal line over {self.max_record_bytes} bytes "
                                    "(max_event_bytes)"
                                )
                                self._reject(carry, len(carry), reason, first=True, last=False)
                                skipping, carry = len(carry), b""
                            continue
                        line, carry = carry + part, b""
                        if line:
                            self._parse(line, records)
                    # A line still being set aside is reported once its size is known.
                    poison, self.poison = ([], self.poison) if skipping else (self.poison, [])
                    yield self.segment, records, poison
            if carry:
                logger.warning(
                    "skipping a torn last line (%d bytes) in journal segment %d",
                    len(carry),
                    self.segment,
                )
            if skipping:
                poison, self.poison = self.poison, []
                yield self.segment, [], poison
        finally:
            if self._rejected is not None:
                self._rejected.close()
