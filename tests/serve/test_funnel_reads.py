"""Funnels and readouts are read through a connection of their own: event loads go on meanwhile."""

from __future__ import annotations

import asyncio
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from target_personalize.engine import EventStore, coerce_event
from target_personalize.serve import KeyRing, ServeSettings, experiment_routes, service
from tests.serve.conftest import running, seed_events, seed_store

SPLIT = {"experiment_id": "split", "variants": ["a=popularity", "b=none"]}


@pytest.mark.parametrize(
    ("module", "name", "path"),
    [
        (service, "discover_funnel", "/v1/funnel"),
        (experiment_routes, "readout_from_store", "/v1/experiments/split"),
    ],
)
def test_events_are_committed_while_the_store_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, module: Any, name: str, path: str
) -> None:
    reading, release = threading.Event(), threading.Event()
    read = getattr(module, name)

    def held(store: EventStore, *args: Any, **options: Any) -> Any:
        reading.set()
        release.wait(timeout=60)  # the read lasts until the test has stored an event
        return read(store, *args, **options)

    monkeypatch.setattr(module, name, held)
    url = seed_store(tmp_path / "store.duckdb")
    settings = ServeSettings(database_url=url, ack="commit", refresh_seconds=0)
    with running(settings, keys=KeyRing([])) as server, ThreadPoolExecutor(1) as pool:
        assert server.client.post("/v1/experiments", json=SPLIT).status_code == 201
        answer = pool.submit(server.client.get, path)
        try:
            assert reading.wait(timeout=30)
            event = {
                "event_id": f"ev-{uuid.uuid4().hex}",
                "event_type": "product_view",
                "event_ts": "2024-05-02T10:00:00Z",
                "session_id": "while-reading",
                "items": [{"item_id": "a"}],
            }
            # Committed (ack=commit), then counted by the writer, while the store is read.
            posted = server.client.post("/v1/events", json=event, timeout=10)
            assert posted.json()["accepted"] == 1
            stats = server.client.get("/v1/stats", params={"fresh": "true"}, timeout=10)
            assert stats.json()["store_events"] == 101
            assert not answer.done()
        finally:
            release.set()
        result = answer.result(timeout=60)
    assert result.status_code == 200, result.text
    if name == "discover_funnel":
        assert (result.json()["conversion"], result.json()["converters"]) == ("purchase", 10)
    else:
        assert result.json()["experiment_id"] == "split"


def test_an_in_memory_store_is_mined_through_the_writers_connection() -> None:
    # A second connection to an in-memory DuckDB would see an empty database.
    state = service.ServingState(
        ServeSettings(database_url="duckdb:///:memory:", ack="commit", refresh_seconds=0)
    )
    records = seed_events()

    async def store_then_mine() -> dict[str, Any]:
        await state.store_events(records, [coerce_event(r) for r in records])
        return await state.funnel(None)

    try:
        answer = asyncio.run(store_then_mine())
    finally:
        state.close()
    assert (answer["units"], answer["converters"]) == (40, 10)
