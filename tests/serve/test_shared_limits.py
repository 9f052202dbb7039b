"""Rate limits counted in Redis by several servers (issue 16).

Two servers in one test process keep their own in-process counters, as two processes would;
what they share goes through Redis only (a fresh key prefix per test, or a redis-server of the
test's own when it is stopped and started again).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from target_personalize.serve import KeyRing, ServeSettings
from target_personalize.serve.auth import FailureLimiter
from target_personalize.serve.browser import BrowserSettings, RateLimiter, add_browser_key
from target_personalize.serve.state import RedisState
from tests.serve.conftest import Server, running, seed_store
from tests.support.redis import OwnRedis, redis_prefix

SHOP = "https://shop.example"
SESSION = "s" * 32
#: One request allowed, then one every 5 s: a test's requests all fall in one refill.
SLOW = 0.2


@pytest.fixture
def shared() -> Iterator[tuple[str, str]]:
    with redis_prefix() as found:
        yield found


def browser_settings(tmp_path: Path, state_url: str, prefix: str, **rates: float) -> ServeSettings:
    browser = BrowserSettings(keys_file=str(tmp_path / "browser-keys"), **rates)
    return ServeSettings(
        database_url=seed_store(tmp_path / "store.duckdb"),
        ack="commit",
        refresh_seconds=0,
        state_url=state_url,
        state_prefix=prefix,
        browser=browser,
    )


def recommend(server: Server, key: str) -> Any:
    return server.client.get(
        "/v1/recommendations",
        params={"writeKey": key, "session_id": SESSION},
        headers={"origin": SHOP},
    )


def alternate(a: Server, b: Server, key: str, times: int = 3) -> list[int]:
    """Statuses of A, B, A, B, ... requests with the browser key."""
    return [recommend(server, key).status_code for _ in range(times) for server in (a, b)]


@pytest.mark.parametrize(
    ("rates", "named"),
    [
        ({"address_rate": SLOW, "key_rate": 1000}, "address 127.0.0.1"),
        ({"address_rate": 1000, "key_rate": SLOW}, "browser key "),
    ],
)
def test_browser_rates_hold_over_every_process(
    tmp_path: Path, shared: tuple[str, str], rates: dict[str, float], named: str
) -> None:
    key, _ = add_browser_key(tmp_path / "browser-keys", SHOP)
    settings = browser_settings(tmp_path, *shared, **rates)
    with running(settings, keys=KeyRing([])) as a, running(settings, keys=KeyRing([])) as b:
        # One request in all, not one per process.
        assert alternate(a, b, key) == [200, 429, 429, 429, 429, 429]
        refused = recommend(a, key)
        assert refused.status_code == 429
        assert named in refused.json()["detail"]
        assert 1 <= int(refused.headers["retry-after"]) <= 5


def test_browser_rates_are_counted_per_process_while_redis_is_down(tmp_path: Path) -> None:
    key, _ = add_browser_key(tmp_path / "browser-keys", SHOP)
    own = OwnRedis(tmp_path)
    own.start()
    settings = browser_settings(tmp_path, own.url, "t:", address_rate=SLOW)
    try:
        with running(settings, keys=KeyRing([])) as a, running(settings, keys=KeyRing([])) as b:
            own.stop()
            # Each process limits on its own: one request each, and no error.
            assert alternate(a, b, key) == [200, 200, 429, 429, 429, 429]

            own.start()  # empty: a fresh shared bucket
            time.sleep(1.1)  # the pause after a failure
            # Shared again: one request in all (each process's own bucket is still empty, so
            # an answer from it would be 429 on both).
            assert alternate(a, b, key) == [200, 429, 429, 429, 429, 429]
    finally:
        own.stop()


def test_shared_buckets_say_which_limit_is_reached_and_refill(shared: tuple[str, str]) -> None:
    url, prefix = shared

    async def scenario() -> list[tuple[int, float] | None]:
        first, second = (
            RedisState(url, prefix, FailureLimiter()),
            RedisState(url, prefix, FailureLimiter()),
        )
        await first.start()
        await second.start()
        limits = [
            (RateLimiter(0, "off"), "x"),  # no limit: never counted
            (RateLimiter(1000, "address"), "10.0.0.1"),
            (RateLimiter(2, "key"), "k1"),
        ]
        try:
            taken = [await state.take(limits) for state in (first, second, first)]
            await asyncio.sleep(0.6)  # more than a token's refill (0.5 s at 2 a second)
            return [*taken, await second.take(limits)]
        finally:
            await first.close()
            await second.close()

    *allowed, refused, refilled = asyncio.run(scenario())
    assert allowed == [None, None]  # the key's burst of 2, over both processes
    assert refused is not None
    assert refused[0] == 2  # the key's limit, by its index in the limits given
    assert 0 < refused[1] <= 0.5
    assert refilled is None
