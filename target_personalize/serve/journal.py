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
from pathlib import Path
from typing import Any

import msgspec

__all__ = ["Journal"]

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

    def leftovers(self) -> Iterator[tuple[int, list[dict[str, Any]]]]:
        """Events of segments older than this run's (a torn last line is skipped)."""
        for segment in self.segments():
            if segment >= self._current:
                continue
            records = []
            for line in self._path(segment).read_bytes().splitlines():
                try:
                    records.append(_decode(line))
                except msgspec.DecodeError:
                    logger.warning("skipping a torn line in journal segment %d", segment)
            yield segment, records

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
