"""Exposures and impressions of served lists, made durable without an fsync per list.

Each served list adds its impression (and, once per visitor, experiment and UTC day, an
exposure) to a queue. A writer task takes everything queued (group commit): with
``ack="journal"`` it appends the batch to the ``served`` journal segment beside the events'
journal and flushes it once (``fdatasync``), then answers every request of the batch; the
rows reach the store in bigger batches every ``flush_ms`` through the server's store thread
(:func:`record_exposures` / :func:`record_impressions`, which skip keys stored already). With
``ack="commit"`` the batch is committed in the store before the requests are answered.

At start, journal segments a killed server left are replayed into the store; as the writes
are keyed (``exposure_key``, ``rec_id``), a replayed row already stored is skipped, so every
exposure and impression is stored exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from datetime import datetime
from typing import Any, TypeVar

import anyio.to_thread

from target_personalize.engine import EventStore
from target_personalize.engine.store.served import (
    Exposure,
    Impression,
    record_exposures,
    record_impressions,
)
from target_personalize.serve.journal import Journal
from target_personalize.serve.service import ServingState

__all__ = ["ServedLog", "from_journal", "in_store", "store_served", "to_journal"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
#: The longest journal line replayed (a list of 10,000 long item ids fits).
_MAX_ROW_BYTES = 16 << 20

_TABLE = "_table"


async def in_store(serving: ServingState, fn: Callable[[EventStore], T]) -> T:
    """``serving.run_in_store(fn)``, shielded: a cancelled caller leaves the store's work alone.

    (Cancelling the wait would cancel the store thread's future, which it then cannot resolve.)
    """
    return await asyncio.shield(serving.run_in_store(fn))


def to_journal(row: Exposure | Impression) -> dict[str, Any]:
    """A journal record: the row's fields, times as ISO strings, tagged with its table."""
    record = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in asdict(row).items()}
    if isinstance(row, Impression):
        record["item_ids"] = list(row.item_ids)
    record[_TABLE] = "exposures" if isinstance(row, Exposure) else "impressions"
    return record


def from_journal(record: Mapping[str, Any]) -> Exposure | Impression:
    """The row :func:`to_journal` wrote.

    Raises:
        ValueError: for a record of another table.
    """
    fields = {k: v for k, v in record.items() if k != _TABLE}
    table = record.get(_TABLE)
    if table == "exposures":
        fields["exposed_at"] = datetime.fromisoformat(fields["exposed_at"])
        return Exposure(**fields)
    if table == "impressions":
        fields["served_at"] = datetime.fromisoformat(fields["served_at"])
        fields["item_ids"] = tuple(fields["item_ids"])
        return Impression(**fields)
    msg = f"served journal: unknown table {table!r} (expected exposures or impressions)"
    raise ValueError(msg)


def store_served(store: EventStore, rows: Sequence[Exposure | Impression]) -> None:
    """Store exposures and impressions, skipping those stored already."""
    record_exposures(store, [r for r in rows if isinstance(r, Exposure)])
    record_impressions(store, [r for r in rows if isinstance(r, Impression)])


def _rows(records: Sequence[Mapping[str, Any]], segment: int) -> list[Exposure | Impression]:
    rows: list[Exposure | Impression] = []
    for record in records:
        try:
            rows.append(from_journal(record))
        except (ValueError, KeyError, TypeError) as error:
            logger.warning("served journal segment %d: skipping a row (%s)", segment, error)
    return rows


class _Entry:
    __slots__ = ("future", "rows")

    def __init__(self, rows: list[Exposure | Impression], future: asyncio.Future[None]) -> None:
        self.rows = rows
        self.future = future


class ServedLog:
    """The writer of exposures and impressions (event loop thread only).

    Args:
        serving: the server's state (its store thread writes the rows).
    """

    def __init__(self, serving: ServingState) -> None:
        settings = serving.settings
        self.serving = serving
        self.journal = (
            Journal(settings.journal_path(), "served") if settings.ack == "journal" else None
        )
        self.flush_seconds = max((settings.flush_ms or 0.0) / 1000, 0.01)
        self._pending: list[_Entry] = []
        self._wake = asyncio.Event()
        self._journaled: list[tuple[int, list[Exposure | Impression]]] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False

    async def start(self) -> int:
        """Replay what a stopped server left in the journal, then start writing.

        Returns:
            How many rows were replayed (each stored unless stored already).
        """
        replayed = 0
        journal = self.journal
        if journal is not None:
            for segment in journal.segments():
                if segment >= journal.current:
                    continue
                for _, records, poison in journal.leftovers_of(segment, _MAX_ROW_BYTES):
                    rows = _rows(records, segment)
                    await in_store(self.serving, functools.partial(store_served, rows=rows))
                    replayed += len(rows)
                    for bad in poison:
                        logger.warning(
                            "served journal segment %d, line %d: %s (kept in %s)",
                            segment,
                            bad.line,
                            bad.reason,
                            journal.rejected_path(segment),
                        )
                logger.info("Replayed the served rows of journal segment %d", segment)
                journal.drop(segment)
        self._tasks.append(asyncio.create_task(self._write_forever()))
        if self.journal is not None:
            self._tasks.append(asyncio.create_task(self._store_forever()))
        return replayed

    async def add(self, rows: list[Exposure | Impression]) -> None:
        """Queue rows; returns once they are durable (journaled, or committed with ``commit``)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append(_Entry(rows, future))
        self._wake.set()
        await future

    async def _write_forever(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self._write_pending()
            if self._closing and not self._pending:
                return

    async def _write_pending(self) -> None:
        entries, self._pending = self._pending, []
        if not entries:
            return
        rows = [row for entry in entries for row in entry.rows]
        try:
            if self.journal is None:
                await in_store(self.serving, lambda store: store_served(store, rows))
            else:
                journal = self.journal
                records = [to_journal(row) for row in rows]
                segment = await anyio.to_thread.run_sync(journal.append, [records])
                self._journaled.append((segment, rows))
        except Exception as error:
            logger.exception("Could not record %d served rows", len(rows))
            for entry in entries:
                if not entry.future.done():
                    entry.future.set_exception(error)
            return
        for entry in entries:
            if not entry.future.done():
                entry.future.set_result(None)

    async def _store_forever(self) -> None:
        while not self._closing:
            await asyncio.sleep(self.flush_seconds)
            await self._store_journaled()

    async def _store_journaled(self) -> None:
        batches, self._journaled = self._journaled, []
        if not batches or self.journal is None:
            return
        rows = [row for _, batch in batches for row in batch]
        try:
            await in_store(self.serving, lambda store: store_served(store, rows))
        except Exception:  # they stay in the journal, replayed at the next start
            logger.exception("Could not store %d journaled served rows", len(rows))
            return
        for segment, batch in batches:
            self.journal.stored(segment, len(batch))

    async def flush(self) -> None:
        """Store the rows journaled so far now (before a readout), not at the next interval."""
        await self._store_journaled()

    async def close(self) -> None:
        """Write what is queued, store what is journaled, and close the journal."""
        self._closing = True
        self._wake.set()
        if self._tasks:
            await self._tasks[0]  # the writer ends once the queue is empty
        for task in self._tasks[
            1:
        ]:  # a cancelled store is replayed from the journal at the next start
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._write_pending()
        await self._store_journaled()
        if self.journal is not None:
            self.journal.close(everything_stored=not self._journaled)
