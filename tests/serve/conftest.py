"""A real uvicorn server on 127.0.0.1 (a free port, in a thread) over a small seeded store."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from target_personalize.engine import EventStore
from target_personalize.serve import KeyRing, ServeSettings, create_app
from tests.serve.web import browser, shop  # noqa: F401 (the browser tests' fixtures)

T0 = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)


def seed_events() -> list[dict[str, Any]]:
    """Sessions that view "a" then "cheap" (30 of them) or "pricey" (10, which convert).

    So for a session that viewed "a", relevance puts "cheap" first, while the conversion or
    margin objective puts "pricey" first.
    """
    records: list[dict[str, Any]] = []

    def add(session: int, seconds: int, kind: str, item: str, price: float) -> None:
        records.append(
            {
                "source": "seed",
                "event_id": f"seed-{len(records)}",
                "event_name": kind,
                "event_type": kind,
                "event_ts": (T0 + timedelta(minutes=session * 3, seconds=seconds)).isoformat(),
                "user_id": f"user-{session}",
                "session_id": f"seed-s{session}",
                "items": [{"item_id": item, "price": price, "category": "shoes"}],
            }
        )

    for session in range(40):
        add(session, 0, "product_view", "a", 20.0)
        if session < 30:
            add(session, 10, "product_view", "cheap", 1.0)
        else:
            add(session, 10, "product_view", "pricey", 500.0)
            add(session, 20, "add_to_cart", "pricey", 500.0)
            add(session, 30, "purchase", "pricey", 500.0)
    return records


def seed_store(path: Path) -> str:
    url = f"duckdb:///{path}"
    with EventStore(url) as store:
        result = store.load_events(seed_events())
        assert not result.rejects
    return url


class Server:
    """A running server: its base URL and an httpx client."""

    def __init__(self, url: str, settings: ServeSettings) -> None:
        self.url = url
        self.settings = settings
        self.client = httpx.Client(base_url=url, timeout=30)


@contextlib.contextmanager
def running(
    settings: ServeSettings, keys: KeyRing | None = None, port: int = 0
) -> Iterator[Server]:
    """Start uvicorn in a thread on a loopback port (free by default); stop it on exit."""
    app = create_app(settings, keys=keys)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app, log_level="warning", access_log=False, lifespan="on", **settings.uvicorn_options()
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the server did not start")
        time.sleep(0.02)
    handle = Server(f"http://127.0.0.1:{port}", settings)
    try:
        yield handle
    finally:
        handle.client.close()
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server without API keys (loopback) over the seeded store."""
    url = seed_store(tmp_path_factory.mktemp("serve") / "store.duckdb")
    with running(ServeSettings(database_url=url), keys=KeyRing([])) as handle:
        yield handle
