"""A caller that stops waiting (a client gone, a timeout) leaves the store's threads working."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from target_personalize.engine import EventStore, coerce_event
from target_personalize.serve import ServeSettings, service
from tests.serve.conftest import seed_events


@pytest.fixture(params=["commit", "journal"])
def state(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[service.ServingState]:
    settings = ServeSettings(
        database_url=f"duckdb:///{tmp_path / 'store.duckdb'}",
        ack=request.param,
        refresh_seconds=0,
    )
    serving = service.ServingState(settings)
    try:
        yield serving
    finally:
        serving.close()


def hold_the_store(serving: service.ServingState) -> threading.Event:
    """Queue a call that keeps the store thread busy until the returned event is set."""
    release = threading.Event()
    serving._queue.put(service._Call(lambda _: release.wait(timeout=60)))
    return release


def test_cancelled_loads_and_calls_leave_the_store_thread_alive(
    state: service.ServingState,
) -> None:
    records = seed_events()
    first, rest = records[:10], records[10:]

    async def give_up_then_go_on() -> int:
        release = hold_the_store(state)
        waits = [
            asyncio.create_task(state.store_events(first, [coerce_event(r) for r in first])),
            asyncio.create_task(state.run_in_store(lambda store: store.query("SELECT 1"))),
        ]
        await asyncio.sleep(0.2)  # both queued behind the held call (and journaled)
        for wait in waits:
            wait.cancel()
        await asyncio.gather(*waits, return_exceptions=True)
        release.set()
        # The store thread is still there: later loads and calls are answered.
        await asyncio.wait_for(
            state.store_events(rest, [coerce_event(r) for r in rest]), timeout=60
        )
        count: int = await asyncio.wait_for(
            state.run_in_store(lambda store: store.query("SELECT count(*) FROM events")[0][0]),
            timeout=60,
        )
        return count

    # Events that were queued are stored although their caller left: nothing acknowledged
    # is lost, and nothing not acknowledged is lost either.
    assert asyncio.run(give_up_then_go_on()) == len(records)


def test_a_store_call_whose_caller_left_is_not_run(state: service.ServingState) -> None:
    ran: list[EventStore] = []

    async def give_up() -> None:
        release = hold_the_store(state)
        wait = asyncio.create_task(state.run_in_store(ran.append))
        await asyncio.sleep(0.2)
        wait.cancel()
        await asyncio.gather(wait, return_exceptions=True)
        release.set()
        await asyncio.wait_for(state.run_in_store(lambda _: None), timeout=60)  # after it

    asyncio.run(give_up())
    assert ran == []
