"""SIGKILL ``personalize serve`` at random points under load: every acknowledged event is
stored exactly once after the restart, and the restart always succeeds.

Two backends: a DuckDB file acknowledged from the journal (the replay at start completes the
store) and PostgreSQL acknowledged at commit. Events are small and large (about 180 KB, under
the default event limit). CI runs 3 kills per backend; ``PERSONALIZE_CRASH_ROUNDS=20`` more.
"""

from __future__ import annotations

import os
import random
import signal
import socket
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
from tests.serve.conftest import seed_events, seed_store
from tests.support.postgres import postgres_schema_url

ROOT = Path(__file__).resolve().parents[2]
ROUNDS = int(os.environ.get("PERSONALIZE_CRASH_ROUNDS", "3"))
SOURCE = "crash"
BLOB = "x" * 60_000  # three of them: an event of about 180 KB, each property under 64 KB


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(store URL, ack) of a seeded store."""
    if request.param == "duckdb":
        yield seed_store(tmp_path / "store.duckdb"), "journal"
        return
    with postgres_schema_url() as url:
        with EventStore(url) as store:
            store.load_events(seed_events())
        yield url, "commit"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(url: str, ack: str, directory: Path) -> tuple[subprocess.Popen[bytes], str]:
    """Start the server; return it once /healthz answers (fails the test if it never does)."""
    port = free_port()
    command = [
        sys.executable,
        "-c",
        "from target_personalize.cli import main; main()",
        "serve",
        "--database-url",
        url,
        "--port",
        str(port),
        "--ack",
        ack,
        "--journal-dir",
        str(directory / "journal"),
        "--refresh-minutes",
        "0",
        "--log-level",
        "warning",
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PERSONALIZE_API_KEYS")}
    log = (directory / "server.log").open("ab")
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=log)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log_text = (directory / "server.log").read_text(errors="replace")[-3000:]
            pytest.fail(f"the server did not restart (exit {process.returncode}):\n{log_text}")
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                return process, base
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    process.kill()
    pytest.fail("the server did not answer /healthz within 120 s")


def event(number: int, rng: random.Random) -> dict[str, Any]:
    large = rng.random() < 0.2
    return {
        "source": SOURCE,
        "event_id": f"c-{number}",
        "event_name": "product_view",
        "event_ts": "2024-05-02T10:00:00Z",
        "session_id": f"s-{number % 50}",
        "items": [{"item_id": rng.choice(["a", "cheap", "pricey"])}],
        "properties": {f"b{n}": BLOB for n in range(3)} if large else {"n": number},
    }


def load(base: str, seconds: float, first: int, rng: random.Random) -> tuple[set[str], int]:
    """Post events from 8 threads for ``seconds`` (the server may die meanwhile).

    Returns the acknowledged event ids and how many ids were used.
    """
    acked: set[str] = set()
    lock = threading.Lock()
    counter = iter(range(first, first + 10**7))
    stop_at = time.monotonic() + seconds

    def worker(seed: int) -> None:
        local = random.Random(seed)
        with httpx.Client(base_url=base, timeout=10) as client:
            while time.monotonic() < stop_at:
                with lock:
                    numbers = [next(counter) for _ in range(local.randint(1, 4))]
                batch = [event(n, local) for n in numbers]
                try:
                    answer = client.post("/v1/events", json=batch)
                except httpx.HTTPError:
                    return  # the server is gone
                if answer.status_code == 200:
                    with lock:
                        acked.update(e["event_id"] for e in batch)
                else:
                    assert answer.status_code != 500, answer.text

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(worker, [rng.random() for _ in range(8)]))
    return acked, next(counter)


def test_acknowledged_events_survive_sigkill(backend: tuple[str, str], tmp_path: Path) -> None:
    url, ack = backend
    rng = random.Random(20241206)
    acked: set[str] = set()
    used = 0
    for _ in range(ROUNDS):
        process, base = start(url, ack, tmp_path)
        killer = threading.Timer(rng.uniform(0.3, 2.0), process.send_signal, [signal.SIGKILL])
        killer.start()
        got, used = load(base, 2.5, used, rng)
        killer.join()
        process.wait(timeout=30)
        assert process.returncode == -signal.SIGKILL
        acked |= got
    # The last restart replays what is left; a clean stop then checkpoints the store.
    process, _ = start(url, ack, tmp_path)
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=120) == 0
    with EventStore(url) as store:
        stored = store.query(
            "SELECT event_id, count(*), max(length(CAST(properties AS VARCHAR))) "
            "FROM events WHERE source = %s GROUP BY event_id",
            [SOURCE],
        )
        rejects = store.query("SELECT count(*) FROM rejects")[0][0]
    counts = {event_id: count for event_id, count, _ in stored}
    assert acked, "no event was acknowledged: the load did not run"
    assert acked <= set(counts), f"{len(acked - set(counts))} acknowledged events lost"
    assert set(counts.values()) == {1}
    assert rejects == 0
    large = [size for _, _, size in stored if size > 100_000]
    assert large, "no large event was stored"
    print(  # figures for the report (pytest -s)
        f"{ack}: {ROUNDS} SIGKILLs, {len(acked)} acknowledged, {len(counts)} stored, "
        f"{len(large)} large"
    )
