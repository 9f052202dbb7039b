"""GET /v1/tradeoff: the dials' frontier, computed in a worker thread, answered when ready."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from target_personalize.serve import KeyRing, ServeSettings, frontier
from tests.serve.conftest import Server, running, seed_store

GRID = [
    "relevance",
    "margin 1",
    "margin 2",
    "conversion 0.5",
    "conversion 0.5, margin 1",
    "conversion 0.5, margin 2",
    "conversion 1",
    "conversion 1, margin 1",
    "conversion 1, margin 2",
]


class Gate:
    """Holds ``frontier_report`` until opened; records the threads and data it ran with."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.open = threading.Event()
        self.threads: list[str] = []
        self.sessions: list[int] = []
        real = frontier.frontier_report

        def held(data: Any, *args: Any, **kwargs: Any) -> Any:
            self.threads.append(threading.current_thread().name)
            self.sessions.append(int(data.n_sessions))
            assert self.open.wait(30), "the test never opened the gate"
            return real(data, *args, **kwargs)

        monkeypatch.setattr(frontier, "frontier_report", held)


def ready(server: Server, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        answer = server.client.get("/v1/tradeoff")
        if answer.status_code == 200:
            body: dict[str, Any] = answer.json()
            return body
        assert answer.status_code == 202, answer.text
        assert time.monotonic() < deadline, "the frontier was not ready in time"
        time.sleep(0.1)


@pytest.fixture
def gate(monkeypatch: pytest.MonkeyPatch) -> Gate:
    return Gate(monkeypatch)


@pytest.fixture
def one_item_server(tmp_path: Path) -> Iterator[Server]:
    url = seed_store(tmp_path / "store.duckdb")
    settings = ServeSettings(database_url=url, refresh_seconds=0, tradeoff_k=1)
    with running(settings, keys=KeyRing([])) as server:
        yield server


def test_computing_until_ready_then_the_frontier_of_the_known_store(
    gate: Gate, one_item_server: Server
) -> None:
    client = one_item_server.client
    waiting = client.get("/v1/tradeoff")
    assert waiting.status_code == 202
    assert waiting.headers["retry-after"] == "2"
    assert waiting.json()["status"] == "computing"
    gate.open.set()
    body = ready(one_item_server)
    # Neither a request's thread nor the store's writer computed it.
    assert len(gate.threads) == 1
    assert gate.threads[0].startswith("AnyIO worker thread")

    # The seeded store: the last 8 of 40 sessions (view a, view pricey, cart, buy) are held
    # out, 3 predictions each, all converting; at k=1, after "a" relevance shows "cheap" (30
    # sessions went a -> cheap) and misses, the other two predictions show "pricey".
    assert body["status"] == "ready"
    assert (body["k"], body["sessions"], body["predictions"]) == (1, 8, 24)
    assert body["conversion_predictions"] == 24
    assert body["value_kind"] == "price"
    points = {p["label"]: p for p in body["points"]}
    assert list(points) == GRID
    relevance = points["relevance"]
    assert relevance["conversion_hit_rate"]["value"] == pytest.approx(2 / 3)
    assert relevance["realized_value"]["value"] == pytest.approx(2 / 3)
    assert not relevance["on_frontier"]
    # Any margin weight, or conversion 1, puts "pricey" first: every conversion is hit.
    for label in ("margin 1", "conversion 1", "conversion 0.5, margin 2"):
        assert points[label]["conversion_hit_rate"]["value"] == pytest.approx(1.0)
        assert points[label]["on_frontier"]
    interval = points["margin 1"]["realized_value"]
    assert interval["low"] <= interval["value"] <= interval["high"]
    # The server's setting (relevance, the saved model's default) is marked, and only it.
    assert body["current_label"] == "relevance"
    assert [p["label"] for p in body["points"] if p["current"]] == ["relevance"]


def test_a_setting_off_the_grid_is_added_and_a_refresh_recomputes(
    gate: Gate, tmp_path: Path
) -> None:
    gate.open.set()
    url = seed_store(tmp_path / "store.duckdb")
    settings = ServeSettings(database_url=url, refresh_seconds=0.3, tradeoff_k=1)
    with running(settings, keys=KeyRing([])) as server:
        client = server.client
        ready(server)
        assert client.put("/v1/objectives", json={"margin": 3}).status_code == 200
        body = ready(server)
        marked = [p for p in body["points"] if p["current"]]
        assert [p["label"] for p in marked] == ["margin 3"]
        assert marked[0]["conversion_hit_rate"]["value"] == pytest.approx(1.0)
        assert len(body["points"]) == len(GRID) + 1
        assert len(gate.sessions) == 2

        # New sessions, then a refresh: the frontier is computed again on the new model.
        batch = [
            {
                "event_id": f"late-{n}-{item}",
                "event_name": "Product Viewed",
                "event_ts": f"2024-05-01T12:{n:02d}:{seconds:02d}Z",
                "session_id": f"late-{n}",
                "items": [{"item_id": item, "price": 20.0}],
            }
            for n in range(5)
            for seconds, item in ((0, "a"), (10, "cheap"))
        ]
        client.post("/v1/events", json=batch).raise_for_status()
        deadline = time.monotonic() + 30
        while len(gate.sessions) < 3:
            assert time.monotonic() < deadline, "no frontier for the refreshed model"
            time.sleep(0.1)
        assert gate.sessions[-1] == gate.sessions[0] + 5
        assert client.get("/v1/stats").json()["model_refreshes"] >= 1
        assert ready(server)["current_label"] == "margin 3"


def test_nothing_is_replayed_until_the_frontier_is_asked_for(gate: Gate, tmp_path: Path) -> None:
    # A server nobody asks for its frontier spends no CPU on it: not at start, not after a
    # setting change or a refresh. The first ask starts it.
    gate.open.set()
    url = seed_store(tmp_path / "store.duckdb")
    settings = ServeSettings(database_url=url, refresh_seconds=0.2, tradeoff_k=1)
    with running(settings, keys=KeyRing([])) as server:
        client = server.client
        assert client.put("/v1/objectives", json={"margin": 3}).status_code == 200
        late = {
            "event_id": "late",
            "event_name": "Product Viewed",
            "event_ts": "2024-05-01T12:00:00Z",
            "session_id": "late",
            "items": [{"item_id": "a"}],
        }
        client.post("/v1/events", json=[late]).raise_for_status()
        deadline = time.monotonic() + 30
        while client.get("/v1/stats").json()["model_refreshes"] < 1:
            assert time.monotonic() < deadline, "no refresh"
            time.sleep(0.1)
        assert gate.threads == []
        assert ready(server)["current_label"] == "margin 3"
        assert len(gate.threads) == 1


def test_one_replay_at_a_time_and_the_latest_setting_wins(
    gate: Gate, one_item_server: Server
) -> None:
    client = one_item_server.client
    assert client.get("/v1/tradeoff").status_code == 202  # the first ask starts a replay
    deadline = time.monotonic() + 30
    while not gate.threads:  # the first replay is under way, held by the gate
        assert time.monotonic() < deadline, "no replay started"
        time.sleep(0.05)
    for margin in (3, 4):  # two settings off the grid while it runs
        assert client.put("/v1/objectives", json={"margin": margin}).status_code == 200
        assert client.get("/v1/tradeoff").status_code == 202
    time.sleep(0.3)
    assert len(gate.threads) == 1  # no second replay while the first runs
    gate.open.set()
    body = ready(one_item_server)
    labels = [p["label"] for p in body["points"]]
    assert "margin 4" in labels and "margin 3" not in labels
    assert [p["label"] for p in body["points"] if p["current"]] == ["margin 4"]
    assert len(gate.threads) == 2  # the first ask's, then the latest setting's


def test_a_store_without_held_out_sessions_says_so(tmp_path: Path) -> None:
    settings = ServeSettings(database_url="duckdb:///:memory:", refresh_seconds=0)
    with running(settings, keys=KeyRing([])) as server:
        body = ready(server)
    assert body["status"] == "unavailable"
    assert "no held-out sessions" in body["detail"]
