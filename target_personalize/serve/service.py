"""The server's state: one store connection behind one writer thread, the ranker in memory.

DuckDB allows one writing process, and a connection is not shared between threads here, so
the server's connection (event loads, counts) is used by a single thread, in order; work that
only reads for long (funnel mining, the model refresh) opens a connection of its own in a
worker thread, so loads go on meanwhile. Events are group-committed: the writer takes every load waiting in its queue (gathering for
``flush_ms`` more), stores them with one ``EventStore.load_rows`` call (one transaction), and
only then resolves the requests' futures. With ``ack="commit"`` a request waits for that; with
``ack="journal"`` (the default for a DuckDB file) a journal thread first appends the events to
the write-ahead journal and flushes it to disk, and the request waits only for that.

The ranker lives on the event loop's thread: ``observe``, ``recommend`` and ``rank`` are
called there only, so they never run concurrently with each other. Every ``refresh_seconds``
a worker thread brings the saved model up to date with the store (through its own connection)
and the loop swaps it in, live sessions included.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from typing import Any, TypeVar

import anyio.to_thread
import numpy as np

from target_personalize.engine import (
    EventStore,
    Objectives,
    RankerBase,
    discover_funnel,
    load_ranker,
    model_path,
    refresh_ranker,
)
from target_personalize.serve.auth import FailureLimiter
from target_personalize.serve.frontier import Frontier
from target_personalize.serve.journal import Journal
from target_personalize.serve.replay import replay_journal
from target_personalize.serve.settings import ServeSettings
from target_personalize.serve.state import InProcessState, LiveState

__all__ = ["ServingState"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
_STOP = object()


def _claim(future: Future[Any]) -> bool:
    """Mark ``future`` running; ``False`` when its waiter cancelled it already.

    A claimed future can no longer be cancelled, so setting its outcome later cannot raise
    ``InvalidStateError`` on the store's threads (which would stop them for good).
    """
    return future.set_running_or_notify_cancel()


class _Load:
    __slots__ = ("durable", "future", "records", "rows", "segment")

    def __init__(self, records: list[dict[str, Any]], rows: list[tuple[Any, ...]]) -> None:
        self.records = records  # for the journal
        self.rows = rows  # for the store, checked by coerce_event already
        self.future: Future[int] = Future()  # committed in the store
        self.durable: Future[int] = Future()  # flushed to the journal
        self.segment = -1


class _Call:
    __slots__ = ("fn", "future")

    def __init__(self, fn: Callable[[EventStore], Any]) -> None:
        self.fn = fn
        self.future: Future[Any] = Future()


class ServingState:
    """The store, its writer thread, the ranker and the counters of a running server.

    Args:
        settings: the server's settings.
        live: where live sessions and counters are kept (default: in this process).
    """

    def __init__(self, settings: ServeSettings, live: LiveState | None = None) -> None:
        self.settings = settings
        self.live = live or InProcessState(
            FailureLimiter(settings.max_key_failures, settings.key_failure_window_seconds)
        )
        self.store = EventStore(settings.database_url)
        self.journal: Journal | None = None
        self._failed_commits = 0
        if settings.ack == "journal":
            self.journal = Journal(settings.journal_path(), "events")
            replay_journal(self.journal, self.store, settings.max_event_bytes)
        self.store.track_keys()  # the writer's loads are small: append new events, no scan
        # Processes sharing the state load the saved model; only the lock holder saves one.
        ranker = (load_ranker(self.store) if self.live.shared else None) or refresh_ranker(
            self.store,
            create=True,
            key_conversion=settings.key_conversion,
            objectives=settings.objectives,
        )
        if ranker is None:  # pragma: no cover - create=True always returns a ranker
            msg = "no ranker"
            raise RuntimeError(msg)
        self.ranker: RankerBase = ranker
        self.frontier = Frontier(k=settings.tradeoff_k)  # started on the event loop
        self.started = time.time()
        self.model_refreshes = 0  # models swapped in
        self.model_refits = 0  # of which this process refitted (the others it loaded)
        self.model_refreshed_at: float | None = None
        self.model_version: str | None = None  # set when processes share the model
        self.events_received = 0
        self.events_stored = 0
        self.commits = 0
        self.last_session: str | None = None
        self._arrivals: deque[tuple[float, int]] = deque()
        self._store_count = (0.0, 0)  # (when counted, count): the first stats() counts
        self._funnel: tuple[float, str, dict[str, Any]] | None = None
        self._queue: queue.Queue[object] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="personalize-store", daemon=True)
        self._thread.start()
        self._journal_queue: queue.Queue[object] = queue.Queue()
        self._journal_thread: threading.Thread | None = None
        if self.journal is not None:
            self._journal_thread = threading.Thread(
                target=self._write_journal, name="personalize-journal", daemon=True
            )
            self._journal_thread.start()

    # The journal thread (ack="journal")

    def _write_journal(self) -> None:
        journal = self.journal
        assert journal is not None
        while True:
            job = self._journal_queue.get()
            stop = job is _STOP
            loads = [] if stop else [job]
            while not stop:
                try:
                    more = self._journal_queue.get_nowait()
                except queue.Empty:
                    break
                if more is _STOP:
                    stop = True
                else:
                    loads.append(more)
            if loads:
                waiting = [_claim(load.durable) for load in loads]  # type: ignore[attr-defined]
                try:
                    segment = journal.append([load.records for load in loads])  # type: ignore[attr-defined]
                except OSError as error:
                    for load, waits in zip(loads, waiting, strict=True):
                        if waits:
                            load.durable.set_exception(error)  # type: ignore[attr-defined]
                else:
                    for load, waits in zip(loads, waiting, strict=True):
                        load.segment = segment  # type: ignore[attr-defined]
                        self._queue.put(load)
                        if waits:
                            load.durable.set_result(len(load.records))  # type: ignore[attr-defined]
            if stop:
                break

    # The store thread

    def _run(self) -> None:
        flush = (self.settings.flush_ms or 0.0) / 1000
        while True:
            job = self._queue.get()
            if job is _STOP:
                break
            if isinstance(job, _Call):
                self._call(job)
                continue
            loads = [job]
            # Gather what arrives in the next few milliseconds into the same commit.
            deadline = time.perf_counter() + flush
            stop = False
            calls: list[_Call] = []
            while True:
                remaining = deadline - time.perf_counter()
                try:
                    more = (
                        self._queue.get(timeout=remaining)
                        if remaining > 0
                        else (self._queue.get_nowait())
                    )
                except queue.Empty:
                    break
                if more is _STOP:
                    stop = True
                    break
                if isinstance(more, _Call):
                    calls.append(more)
                else:
                    loads.append(more)
            self._commit(loads)  # type: ignore[arg-type]
            for call in calls:
                self._call(call)
            if stop:
                break
        self.store.close()

    def _commit(self, loads: list[_Load]) -> None:
        # Queued events are stored even when their caller stopped waiting: a request
        # cancelled after its events were journaled must not lose or wedge them.
        waiting = [_claim(load.future) for load in loads]
        rows = [row for load in loads for row in load.rows]
        try:
            self.store.load_rows(rows)
        except Exception as error:
            self._failed_commits += 1
            if self.journal is not None:  # the events stay in the journal, replayed at start
                logger.exception("Could not store %d journaled events", len(rows))
            for load, waits in zip(loads, waiting, strict=True):
                if waits:
                    load.future.set_exception(error)
            return
        self.commits += 1
        if self.journal is not None:
            for load in loads:
                self.journal.stored(load.segment, len(load.records))
        for load, waits in zip(loads, waiting, strict=True):
            if waits:
                load.future.set_result(len(load.records))

    def _call(self, call: _Call) -> None:
        if not _claim(call.future):  # its caller left: a read nobody waits for is not run
            return
        try:
            call.future.set_result(call.fn(self.store))
        except Exception as error:
            call.future.set_exception(error)

    async def run_in_store(self, fn: Callable[[EventStore], T]) -> T:
        """Run ``fn(store)`` on the store thread, after the work queued before it."""
        call = _Call(fn)
        self._queue.put(call)
        result: T = await asyncio.wrap_future(call.future)
        return result

    async def store_events(
        self, records: list[dict[str, Any]], rows: list[tuple[Any, ...]]
    ) -> None:
        """Store canonical events; returns once they are committed, or journaled (``ack``).

        Args:
            records: the events (what the journal keeps).
            rows: their store rows, as ``coerce_event`` checked them (what the store takes).

        Raises:
            EngineError: when the store cannot write them.
        """
        if not records:
            return
        self.events_received += len(records)
        load = _Load(records, rows)
        if self.journal is None:
            self._queue.put(load)
            await asyncio.wrap_future(load.future)
        else:
            self._journal_queue.put(load)
            await asyncio.wrap_future(load.durable)
        self.events_stored += len(records)
        now = time.time()
        self._arrivals.append((now, len(records)))
        while self._arrivals and self._arrivals[0][0] < now - 300:
            self._arrivals.popleft()

    def close(self) -> None:
        """Finish the queued work (journal, then store) and close the store."""
        if self._journal_thread is not None and self._journal_thread.is_alive():
            self._journal_queue.put(_STOP)
            self._journal_thread.join(timeout=30)
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join(timeout=60)
        if self.journal is not None:
            self.journal.close(everything_stored=self._failed_commits == 0)

    # Ranking (event loop thread only)

    async def observe(self, records: Sequence[Mapping[str, Any]]) -> int:
        """Apply stored events to their live sessions; returns how many were seen before."""
        duplicates = await self.live.observe(self.ranker, records)
        for record in reversed(records):
            if record.get("session_id"):
                self.last_session = str(record["session_id"])
                break
        return duplicates

    async def prepare(self, user_id: str | None, session_id: str | None) -> None:
        """Bring the request's live session in step with the shared state (if shared)."""
        await self.live.prepare(self.ranker, user_id, session_id)

    def sample_session(self) -> str | None:
        """A session to show on the dashboard: the latest live one, else the latest stored."""
        if self.last_session is not None:
            return self.last_session
        data = self.ranker.data
        if not len(data):
            return None
        return str(data.session_keys[int(data.session[int(np.argmax(data.ts))])])

    async def set_objectives(self, objectives: Mapping[str, float]) -> Objectives:
        """Change the default objective weights of requests that give none (every process's)."""
        self.ranker.objectives = Objectives.parse(objectives)
        await self.live.put("objectives", json.dumps(self.ranker.objectives.as_dict()))
        self.frontier.follow(self.ranker)  # a setting off the grid is added to it
        return self.ranker.objectives

    # Model refresh

    def refreshed_model(self) -> RankerBase | None:
        """The saved model brought up to date with the store, and saved (a worker thread).

        Reads through a connection of its own (DuckDB lets a process open its file twice),
        so commits go on meanwhile; only sessions touched by loads since the model's last fit
        are read (:meth:`RankerBase.update`). ``None`` when nothing was loaded since the
        served model's fit.
        """
        with EventStore(self.settings.database_url) as reader:
            latest = reader.query("SELECT max(loaded_at) FROM events")[0][0]
            if latest is None or latest == self.ranker.loaded_until:
                return None
            ranker = refresh_ranker(
                reader, create=True, key_conversion=self.settings.key_conversion
            )
        if ranker is None:  # pragma: no cover - create=True always returns a ranker
            msg = "no ranker"
            raise RuntimeError(msg)
        return ranker

    def swap_model(self, ranker: RankerBase) -> None:
        """Serve ``ranker`` from now on, with the live sessions and objectives of the current one.

        Event loop thread only: no request sees a half-swapped model.
        """
        ranker.adopt_live(self.ranker)
        ranker.objectives = self.ranker.objectives
        self.ranker = ranker
        self.model_refreshes += 1
        self.model_refreshed_at = time.time()
        self.frontier.start(ranker)  # the new model's frontier, in a worker thread once asked

    async def refresh_forever(self) -> None:
        """Refresh the model every ``refresh_seconds``; a failed refresh keeps the current one."""
        interval = self.settings.refresh_seconds
        if self.live.shared:
            from target_personalize.serve.workers import refresh_shared  # noqa: PLC0415

            await refresh_shared(self)
            return
        if not self._reads_apart:
            logger.info("An in-memory store is not refreshed in the background")
            return
        while True:
            await asyncio.sleep(interval)
            started = time.perf_counter()
            try:
                ranker = await anyio.to_thread.run_sync(self.refreshed_model)
            except Exception:
                logger.exception("Model refresh failed; still serving the previous model")
                continue
            if ranker is None:
                continue
            self.swap_model(ranker)
            self.model_refits += 1
            logger.info(
                "Refreshed the model in %.1f s: %d sessions, %d items",
                time.perf_counter() - started,
                ranker.data.n_sessions,
                len(ranker.items),
            )

    # Funnel, counts

    async def funnel(self, conversion: str | None, *, refresh: bool = False) -> dict[str, Any]:
        """The mined funnel (cached for ``funnel_ttl_seconds``), as a JSON-friendly dict."""
        wanted = conversion or self.settings.key_conversion
        cached = self._funnel
        if (
            not refresh
            and cached is not None
            and cached[1] == wanted
            and time.time() - cached[0] < self.settings.funnel_ttl_seconds
        ):
            return cached[2]

        def mine(store: EventStore) -> dict[str, Any]:
            found = discover_funnel(store, wanted)
            return {**found.as_dict(), "event_weights": dict(found.event_weights)}

        result = await self.read(mine)
        self._funnel = (time.time(), wanted, result)
        return result

    async def read(self, fn: Callable[[EventStore], T]) -> T:
        """Run a read-only ``fn(store)`` on a connection of its own, so commits go on meanwhile.

        On the store thread instead when no second connection sees the store (in-memory DuckDB).
        """
        if not self._reads_apart:
            return await self.run_in_store(fn)

        def apart() -> T:
            with EventStore(self.settings.database_url) as reader:
                return fn(reader)

        return await anyio.to_thread.run_sync(apart)

    @property
    def _reads_apart(self) -> bool:
        """Whether a second connection sees the store (not so for an in-memory DuckDB)."""
        return self.store.dialect != "duckdb" or model_path(self.settings.database_url) is not None

    @staticmethod
    def _count(store: EventStore) -> int:
        return int(store.query("SELECT count(*) FROM events")[0][0])

    async def stats(self, *, fresh: bool = False) -> dict[str, Any]:
        """Counters for the dashboard: events in the store, received and stored recently."""
        at, count = self._store_count
        if fresh or time.time() - at > 2:
            count = await self.run_in_store(self._count)
            self._store_count = (time.time(), count)
        now = time.time()
        last_minute = sum(n for moment, n in self._arrivals if moment >= now - 60)
        return {
            "store_events": count,
            "events_received": self.events_received,
            "events_stored": self.events_stored,
            "events_last_minute": last_minute,
            "commits": self.commits,
            "model_refreshes": self.model_refreshes,
            "model_refits": self.model_refits,
            "model_refreshed_at": self.model_refreshed_at,
            "uptime_seconds": round(now - self.started, 1),
            "pid": os.getpid(),
            "model_version": self.model_version,
        }
