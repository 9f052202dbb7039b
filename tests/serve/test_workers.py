"""``personalize serve --workers 2`` over PostgreSQL and Redis, end to end (issue 16)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from target_personalize.engine import EventStore
from tests.serve.conftest import T0, seed_events
from tests.support.postgres import postgres_schema_url
from tests.support.redis import free_port, redis_prefix

pytestmark = [pytest.mark.postgres, pytest.mark.e2e]
PERSONALIZE = str(Path(sys.executable).with_name("personalize"))


@contextlib.contextmanager
def workers(
    store_url: str, state_url: str, prefix: str, log: Path, refresh_minutes: float
) -> Iterator[str]:
    port = free_port()
    command = [
        PERSONALIZE, "serve", "--database-url", store_url, "--workers", "2",
        "--state-url", state_url, "--state-prefix", prefix, "--port", str(port),
        "--refresh-minutes", str(refresh_minutes), "--log-level", "info",
    ]  # fmt: skip
    with log.open("wb") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        # Generous: on a loaded machine each worker takes a while to load the model.
        deadline = time.monotonic() + 240
        while len(ready(base)) < 2:  # both workers up
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, f"the workers did not start:\n{log.read_text()}"
            time.sleep(0.5)
        yield base
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def ready(base: str) -> set[int]:
    """The workers that answered, on new connections (none while they start)."""
    found: set[int] = set()
    with contextlib.suppress(httpx.HTTPError, ValueError, KeyError):
        found.update(by_process(base, "/healthz", tries=16))
    return found


def by_process(base: str, path: str, tries: int = 60, **params: Any) -> dict[int, list[Any]]:
    """GET ``path`` on new connections from several threads: the answers of each worker."""

    def one(_: int) -> tuple[int, Any]:
        with httpx.Client(base_url=base, timeout=60) as client:
            pid = client.get("/v1/stats").json()["pid"]
            return pid, client.get(path, params=params).json()

    found: dict[int, list[Any]] = {}
    with ThreadPoolExecutor(8) as pool:
        for pid, body in pool.map(one, range(tries)):
            found.setdefault(pid, []).append(body)
    return found


def events(prefix: str, n: int) -> list[dict[str, Any]]:
    return [
        {
            "source": "load",
            "event_id": f"{prefix}-{i}",
            "event_type": "product_view",
            "event_ts": T0.replace(hour=13).isoformat(),
            "session_id": f"{prefix}-s{i % 7}",
            "items": [{"item_id": "pricey" if i % 3 else "a", "price": 5.0}],
        }
        for i in range(n)
    ]


@pytest.fixture
def stack(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """Two workers over a seeded PostgreSQL schema; a refresh every ``request.param`` minutes."""
    refresh = getattr(request, "param", 0.0)
    with postgres_schema_url() as store_url, redis_prefix() as (state_url, prefix):
        with EventStore(store_url) as store:
            store.load_events(seed_events())
        with workers(store_url, state_url, prefix, tmp_path / "serve.log", refresh) as base:
            yield base, store_url


def test_two_workers_answer_alike(stack: tuple[str, str]) -> None:
    base, _ = stack
    posted = httpx.post(f"{base}/v1/events", json=events("live", 6), timeout=10)
    assert posted.status_code == 200, posted.text
    answers = by_process(base, "/v1/recommendations", session_id="live-s1", k=5)
    assert len(answers) == 2, "both workers should have answered"
    distinct = {repr(body["items"]) for bodies in answers.values() for body in bodies}
    assert len(distinct) == 1
    assert answers[next(iter(answers))][0]["items"]  # the live session answers


@pytest.mark.parametrize("stack", [0.05], indirect=True)
def test_one_worker_refits_the_model_the_other_loads_it(stack: tuple[str, str]) -> None:
    base, _ = stack
    posted = httpx.post(f"{base}/v1/events", json=events("new", 30), timeout=10)
    assert posted.status_code == 200, posted.text
    # A refresh is due every 3 s on each worker; one refits, the other loads what it saved.
    deadline = time.monotonic() + 180
    while True:
        stats = {pid: bodies[-1] for pid, bodies in by_process(base, "/v1/stats", 24).items()}
        if len(stats) == 2 and all(body["model_refreshes"] for body in stats.values()):
            break
        assert time.monotonic() < deadline, stats
        time.sleep(1)
    time.sleep(4)  # more rounds: nothing new to refit
    stats = {pid: bodies[-1] for pid, bodies in by_process(base, "/v1/stats", 24).items()}
    assert sorted(body["model_refits"] for body in stats.values()) == [0, 1]
    assert len({body["model_version"] for body in stats.values()}) == 1


def test_a_killed_worker_loses_no_acknowledged_event(stack: tuple[str, str]) -> None:
    base, store_url = stack
    acknowledged: list[str] = []
    stop = threading.Event()

    def send(sender: int) -> None:
        batch = 0
        while not stop.is_set():
            chunk = events(f"w{sender}-b{batch}", 10)
            batch += 1
            with contextlib.suppress(httpx.HTTPError), httpx.Client(timeout=10) as client:
                if client.post(f"{base}/v1/events", json=chunk).status_code == 200:
                    acknowledged.extend(event["event_id"] for event in chunk)

    senders = [threading.Thread(target=send, args=(n,)) for n in range(4)]
    for thread in senders:
        thread.start()

    def acknowledged_more(than: int) -> None:
        deadline = time.monotonic() + 120
        while len(acknowledged) < than + 50:
            assert time.monotonic() < deadline, f"only {len(acknowledged)} events acknowledged"
            time.sleep(0.2)

    try:
        acknowledged_more(0)
        victim = next(iter(by_process(base, "/v1/stats", tries=8)))
        os.kill(victim, signal.SIGKILL)
        acknowledged_more(len(acknowledged))  # the other worker goes on acknowledging
    finally:
        stop.set()
        for thread in senders:
            thread.join(timeout=60)
    with EventStore(store_url) as store:
        stored = {
            row[0] for row in store.query("SELECT event_id FROM events WHERE source = 'load'")
        }
    assert set(acknowledged) <= stored
    deadline = time.monotonic() + 180
    while len(survivors := by_process(base, "/v1/stats", tries=24)) < 2:  # uvicorn replaces it
        assert time.monotonic() < deadline, survivors.keys()
        time.sleep(1)
    assert victim not in survivors
