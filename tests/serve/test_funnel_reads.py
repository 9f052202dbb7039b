"""Funnels and readouts are read through a connection of their own: event loads go on meanwhile."""

from __future__ import annotations

import asyncio
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from target_personalize.engine import DiscoveredFunnel, EventStore, coerce_event, discover_funnel
from target_personalize.engine.experiments.report import readout_from_store
from target_personalize.serve import KeyRing, ServeSettings, experiment_routes, service
from tests.serve.conftest import running, seed_events, seed_store


def test_events_are_committed_while_a_funnel_is_mined(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mining, release = threading.Event(), threading.Event()

    def held(store: EventStore, conversion: str, **options: Any) -> DiscoveredFunnel:
        mining.set()
        release.wait(timeout=60)  # mining lasts until the test has stored an event
        return discover_funnel(store, conversion, **options)

    monkeypatch.setattr(service, "discover_funnel", held)
    url = seed_store(tmp_path / "store.duckdb")
    settings = ServeSettings(database_url=url, ack="commit", refresh_seconds=0)
    with running(settings, keys=KeyRing([])) as server, ThreadPoolExecutor(1) as pool:
        funnel = pool.submit(server.client.get, "/v1/funnel")
        try:
            assert mining.wait(timeout=30)
            event = {
                "event_id": f"ev-{uuid.uuid4().hex}",
                "event_type": "product_view",
                "event_ts": "2024-05-02T10:00:00Z",
                "session_id": "while-mining",
                "items": [{"item_id": "a"}],
            }
            # Committed (ack=commit), then counted by the writer, while the funnel is mined.
            posted = server.client.post("/v1/events", json=event, timeout=10)
            assert posted.json()["accepted"] == 1
            stats = server.client.get("/v1/stats", params={"fresh": "true"}, timeout=10)
            assert stats.json()["store_events"] == 101
            assert not funnel.done()
        finally:
            release.set()
        answer = funnel.result(timeout=60).json()
    assert answer["conversion"] == "purchase"
    assert answer["converters"] == 10


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


def test_events_are_committed_while_an_experiment_is_read_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reading, release = threading.Event(), threading.Event()

    def held(store: EventStore, experiment_id: str, **options: Any) -> dict[str, Any]:
        reading.set()
        release.wait(timeout=60)  # the readout lasts until the test has stored an event
        answer: dict[str, Any] = readout_from_store(store, experiment_id, **options)
        return answer

    monkeypatch.setattr(experiment_routes, "readout_from_store", held)
    url = seed_store(tmp_path / "store.duckdb")
    settings = ServeSettings(database_url=url, ack="commit", refresh_seconds=0)
    with running(settings, keys=KeyRing([])) as server, ThreadPoolExecutor(1) as pool:
        split = {"experiment_id": "split", "variants": ["a=popularity", "b=none"]}
        assert server.client.post("/v1/experiments", json=split).status_code == 201
        readout = pool.submit(server.client.get, "/v1/experiments/split")
        try:
            assert reading.wait(timeout=30)
            event = {
                "event_id": f"ev-{uuid.uuid4().hex}",
                "event_type": "product_view",
                "event_ts": "2024-05-02T10:00:00Z",
                "session_id": "while-reading",
                "items": [{"item_id": "a"}],
            }
            posted = server.client.post("/v1/events", json=event, timeout=10)
            assert posted.json()["accepted"] == 1
            stats = server.client.get("/v1/stats", params={"fresh": "true"}, timeout=10)
            assert stats.json()["store_events"] == 101
            assert not readout.done()
        finally:
            release.set()
        answer = readout.result(timeout=60)
    assert answer.status_code == 200, answer.text
    assert answer.json()["experiment_id"] == "split"
