"""Browser test helpers: Debian's Chromium through Playwright, a shop on another origin.

The shop is a plain HTTP server on ``localhost`` (the API runs on ``127.0.0.1``, so the two
are different origins, as a real shop and its API are); its pages load ``personalize.js``
from the API server, as a shop's pages would.
"""

from __future__ import annotations

import http.server
import json
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from target_personalize.engine import EventStore

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def browser_missing() -> str | None:
    """Why the browser tests cannot run here, or ``None``."""
    try:
        import playwright.sync_api  # noqa: F401, PLC0415
    except ImportError:
        return "the playwright Python package is not installed (pip install playwright)"
    if not (Path(CHROMIUM).exists() or shutil.which("chromium")):
        return f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """A headless Chromium for the module (skipped without one, failed in CI)."""
    reason = browser_missing()
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI needs the browser tests: {reason}")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright  # noqa: PLC0415

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


class Shop:
    """A static site on ``http://localhost:<port>``: ``pages`` maps paths to bodies."""

    def __init__(self) -> None:
        self.pages: dict[str, tuple[bytes, str]] = {}
        pages = self.pages

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body, kind = pages.get(self.path.split("?")[0], (b"not found", "text/plain"))
                self.send_response(200 if self.path.split("?")[0] in pages else 404)
                self.send_header("content-type", kind)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://localhost:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def add(self, path: str, body: str | bytes, kind: str = "text/html") -> str:
        """Serve ``body`` at ``path``; its URL."""
        self.pages[path] = (body.encode() if isinstance(body, str) else body, kind)
        return self.origin + path

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def shop() -> Iterator[Shop]:
    site = Shop()
    try:
        yield site
    finally:
        site.close()


def tracker_page(api: str, options: dict[str, Any], body: str = "") -> str:
    """A page that loads personalize.js from ``api`` and calls ``init(options)``."""
    settings = json.dumps({"endpoint": api, **options})
    return (
        "<!doctype html><html><head><title>Test shop</title>"
        "<style>body{margin:0}</style></head><body>"
        f"{body}<script src='{api}/sdk/personalize.js'></script>"
        f"<script>personalize.init({settings})</script></body></html>"
    )


class Sent:
    """Every event batch the page posted to /v1/events, and the answers' statuses."""

    def __init__(self, page: Any) -> None:
        self.batches: list[list[dict[str, Any]]] = []
        self.statuses: list[int] = []
        page.on("request", self._request)
        page.on("requestfinished", self._finished)

    def _request(self, request: Any) -> None:
        # Playwright shows no body of a beacon: those are checked in the store.
        if "/v1/events" in request.url and request.method == "POST" and request.post_data:
            self.batches.append(json.loads(request.post_data))

    def _finished(self, request: Any) -> None:
        if "/v1/events" in request.url:
            response = request.response()
            if response is not None:
                self.statuses.append(response.status)

    @property
    def events(self) -> list[dict[str, Any]]:
        return [event for batch in self.batches for event in batch]

    def named(self, name: str) -> list[dict[str, Any]]:
        return [event for event in self.events if event["event_name"] == name]


def attributes(page: Any, selector: str, name: str) -> list[str | None]:
    """``name`` of every element ``selector`` matches, read in one step.

    One ``evaluate`` in the page, not a locator per element: a list rerendered between
    counting the elements and reading them would otherwise wait for an element now gone.
    """
    script = f"els => els.map(e => e.getAttribute({json.dumps(name)}))"
    return list(page.eval_on_selector_all(selector, script))


def wait_until(page: Any, check: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    """Poll ``check`` (real time) until it holds; fail naming ``what`` otherwise.

    Waits through the page, so that Playwright delivers the page's events meanwhile.
    """
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        page.wait_for_timeout(50)


def received(server: Any) -> int:
    """Events the server has received so far."""
    count: int = server.client.get("/v1/stats").json()["events_received"]
    return count


def stored_browser_events(database_url: str) -> list[tuple[str, str, str]]:
    """``(event_id, event_name, session_id)`` of the browser's events in a stopped server's store."""
    with EventStore(database_url) as store:
        rows = store.query(
            "SELECT event_id, event_name, session_id FROM events WHERE source = 'browser' "
            "ORDER BY event_ts, event_id"
        )
    return [(str(a), str(b), str(c)) for a, b, c in rows]


def freeze_clock(page: Any) -> None:
    """Fake the page's clock, paused: time moves only with ``page.clock.run_for``."""
    start = datetime(2024, 5, 2, 10, 0, tzinfo=UTC)
    page.clock.install(time=start)
    page.clock.pause_at(start + timedelta(minutes=1))
