"""Browser keys and origins: write-only, origin-bound, rate-limited; CORS and the origin guard."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from target_personalize.cli import main
from target_personalize.serve import KeyRing, ServeSettings
from target_personalize.serve.auth import new_key
from target_personalize.serve.browser import (
    BrowserKeyRing,
    BrowserSettings,
    RateLimiter,
    add_browser_key,
    normalise_origin,
)
from tests.serve.conftest import Server, running, seed_store
from tests.serve.web import Sent, Shop, tracker_page, wait_until

SHOP = "https://shop.example"
SESSION = "s" * 32


def batch(event_id: str) -> bytes:
    event = {"event_id": event_id, "event_ts": "2024-05-02T10:00:00Z", "event_name": "page_view"}
    return json.dumps([{**event, "source": "browser", "session_id": SESSION}]).encode()


@pytest.fixture
def keyed(tmp_path: Path) -> Iterator[tuple[Server, str]]:
    """A server with API keys (so nothing is open) and a browser key for SHOP."""
    key, _ = add_browser_key(tmp_path / "browser-keys", SHOP)
    _, api_record = new_key("write")
    browser = BrowserSettings(keys_file=str(tmp_path / "browser-keys"), address_rate=1000)
    settings = ServeSettings(
        database_url=seed_store(tmp_path / "store.duckdb"), ack="commit", browser=browser
    )
    with running(settings, keys=KeyRing([api_record])) as server:
        yield server, key


def post(server: Server, key: str, origin: str | None, body: bytes, **params: str) -> Any:
    headers = {"content-type": "text/plain"}
    if origin is not None:
        headers["origin"] = origin
    return server.client.post(
        "/v1/events",
        params={"partial": "true", "writeKey": key, **params},
        content=body,
        headers=headers,
    )


def test_origins_are_normalised_and_checked() -> None:
    assert normalise_origin("HTTPS://Shop.Example:443/") == SHOP
    assert normalise_origin("http://localhost:3000") == "http://localhost:3000"
    for bad in ("shop.example", "https://shop.example/path", "*", "ftp://x"):
        with pytest.raises(ValueError, match="not an origin"):
            normalise_origin(bad)


def test_key_file_holds_digests_and_the_origin(tmp_path: Path) -> None:
    key, record = add_browser_key(tmp_path / "keys", "https://shop.example/")
    text = (tmp_path / "keys").read_text()
    assert key not in text and text.strip().endswith(":" + SHOP)
    ring = BrowserKeyRing.load(tmp_path / "keys")
    assert ring.find(key) == record and ring.origins() == {SHOP}
    assert ring.find(key[:-1] + ("A" if key[-1] != "A" else "B")) is None
    assert ring.find("pk_" + key[3:]) is None
    (tmp_path / "bad").write_text("nonsense\n")
    with pytest.raises(ValueError, match="line 1"):
        BrowserKeyRing.load(tmp_path / "bad")


def test_cli_adds_a_browser_key(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["keys", "add-browser", "--origin", SHOP, "--file", str(tmp_path / "k")]
    )
    assert result.exit_code == 0, result.output
    key = result.stdout.strip()
    assert BrowserKeyRing.load(tmp_path / "k").find(key) is not None
    bad = CliRunner().invoke(
        main, ["keys", "add-browser", "--origin", "shop.example", "--file", str(tmp_path / "k")]
    )
    assert bad.exit_code != 0 and "not an origin" in bad.output


def test_rate_limiter_refills() -> None:
    now = [0.0]
    limiter = RateLimiter(2, clock=lambda: now[0])
    assert limiter.wait("a") is None and limiter.wait("a") is None
    assert limiter.wait("a") == pytest.approx(0.5)
    assert limiter.wait("b") is None  # per name
    now[0] = 0.5
    assert limiter.wait("a") is None


def test_a_browser_key_writes_from_its_origin_only(keyed: tuple[Server, str]) -> None:
    server, key = keyed
    sent = post(server, key, SHOP, batch("bk-1"))
    assert sent.status_code == 200, sent.text
    assert sent.json()["accepted"] == 1
    assert sent.headers["access-control-allow-origin"] == SHOP
    wrong = post(server, key, "https://evil.example", batch("bk-2"))
    assert wrong.status_code == 403 and "evil.example" in wrong.json()["detail"]
    local = post(server, key, "http://localhost:3000", batch("bk-5"))
    assert local.status_code == 403  # an allowed origin, but not the key's
    assert "bound to https://shop.example" in local.json()["detail"]
    assert post(server, key, None, batch("bk-3")).status_code == 403
    unknown = post(server, "wk_00000000_" + "A" * 32, SHOP, batch("bk-4"))
    assert unknown.status_code == 401
    stats = server.client.get("/v1/stats", params={"writeKey": key}, headers={"origin": SHOP})
    assert stats.status_code == 403  # write-only: no reads of the store


def test_a_browser_key_reads_only_random_sessions(keyed: tuple[Server, str]) -> None:
    server, key = keyed

    def recommend(**params: str) -> Any:
        return server.client.get(
            "/v1/recommendations", params={"writeKey": key, **params}, headers={"origin": SHOP}
        )

    mine = recommend(session_id=SESSION)
    assert mine.status_code == 200 and mine.json()["session_id"] == SESSION
    assert recommend(session_id="seed-s1").status_code == 403  # short: guessable
    assert recommend(user_id="user-1").status_code == 403
    assert recommend(session_id=SESSION, user_id="user-1").status_code == 403
    # A second session_id (the API reads the last one) is no way around the rule.
    twice = server.client.get(
        f"/v1/recommendations?writeKey={key}&session_id={SESSION}&session_id=seed-s1",
        headers={"origin": SHOP},
    )
    assert twice.status_code == 403
    # A same-origin page's GET carries no Origin: its Referer names it.
    referred = server.client.get(
        "/v1/recommendations",
        params={"writeKey": key, "session_id": SESSION},
        headers={"referer": SHOP + "/product/1"},
    )
    assert referred.status_code == 200


def test_rates_and_body_limits(tmp_path: Path) -> None:
    key, _ = add_browser_key(tmp_path / "browser-keys", SHOP)
    browser = BrowserSettings(
        keys_file=str(tmp_path / "browser-keys"), address_rate=3, max_body_bytes=2_000
    )
    settings = ServeSettings(database_url=seed_store(tmp_path / "s.duckdb"), browser=browser)
    with running(settings, keys=KeyRing([])) as server:
        answers = [post(server, key, SHOP, batch(f"r-{i}")).status_code for i in range(5)]
        assert answers[:3] == [200, 200, 200] and answers[3] == 429
        limited = post(server, key, SHOP, batch("r-9"))
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
    settings = ServeSettings(
        database_url=seed_store(tmp_path / "t.duckdb"),
        browser=BrowserSettings(keys_file=str(tmp_path / "browser-keys"), max_body_bytes=2_000),
    )
    with running(settings, keys=KeyRing([])) as server:
        big = post(server, key, SHOP, b"[" + b" " * 3_000 + b"]")
        assert big.status_code == 413 and "at most 2000 bytes" in big.json()["detail"]
        chunked = server.client.post(
            "/v1/events",
            params={"writeKey": key},
            content=iter([b"[", b" " * 1_500, b" " * 1_500, b"]"]),
            headers={"origin": SHOP},
        )
        assert chunked.status_code == 413


def test_pages_of_other_sites_cannot_write_to_an_open_server(tmp_path: Path) -> None:
    settings = ServeSettings(database_url=seed_store(tmp_path / "s.duckdb"))
    with running(settings, keys=KeyRing([])) as server:
        client = server.client
        body = batch("o-1")
        evil = client.post("/v1/events", content=body, headers={"origin": "https://evil.example"})
        assert evil.status_code == 403 and "--allow-origin" in evil.json()["detail"]
        local = client.post("/v1/events", content=body, headers={"origin": "http://localhost:3000"})
        assert local.status_code == 200
        assert local.headers["access-control-allow-origin"] == "http://localhost:3000"
        assert client.post("/v1/events", content=batch("o-2")).status_code == 200  # no Origin
        preflight = client.options(
            "/v1/events",
            headers={
                "origin": "http://127.0.0.1:5173",
                "access-control-request-method": "POST",
                "access-control-request-headers": "content-type",
            },
        )
        assert preflight.status_code == 200
    allowed = BrowserSettings(allow_origins=[SHOP])
    settings = ServeSettings(database_url=seed_store(tmp_path / "t.duckdb"), browser=allowed)
    with running(settings, keys=KeyRing([])) as server:
        assert (
            server.client.post(
                "/v1/events", content=batch("o-3"), headers={"origin": SHOP}
            ).status_code
            == 200
        )
        local = server.client.post(
            "/v1/events", content=batch("o-4"), headers={"origin": "http://localhost:3000"}
        )
        assert local.status_code == 403  # an explicit list replaces the loopback default


def test_a_page_of_the_wrong_origin_is_refused(tmp_path: Path, shop: Shop, browser: Any) -> None:
    right = Shop()
    try:
        key, _ = add_browser_key(tmp_path / "browser-keys", right.origin)
        browser_settings = BrowserSettings(keys_file=str(tmp_path / "browser-keys"))
        url = seed_store(tmp_path / "s.duckdb")
        settings = ServeSettings(database_url=url, ack="commit", browser=browser_settings)
        with running(settings, keys=KeyRing([])) as server:
            context = browser.new_context()
            page = context.new_page()
            sent = Sent(page)
            options = {"writeKey": key, "flushMs": 50}
            page.goto(right.add("/p", tracker_page(server.url, options)))
            wait_until(page, lambda: sent.statuses == [200], "the right origin's page view")
            # The same key on a page of another origin (the `shop` fixture's port).
            page.goto(shop.add("/p", tracker_page(server.url, options)))
            wait_until(page, lambda: 403 in sent.statuses, "the other page's refusal")
            page.wait_for_timeout(300)
            # The right page's view and, by beacon as it was left, its scroll depth.
            assert server.client.get("/v1/stats").json()["events_received"] == 2
            context.close()
    finally:
        right.close()


def test_serve_refuses_a_bad_origin_option(tmp_path: Path) -> None:
    url = f"duckdb:///{tmp_path / 's.duckdb'}"
    result = CliRunner().invoke(
        main, ["serve", "--database-url", url, "--allow-origin", "shop.example/x"]
    )
    assert result.exit_code != 0 and "not an origin" in result.output
