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

import httpx
import pytest

from target_personalize.serve import KeyRing, ServeSettings
from target_personalize.serve.auth import FailureLimiter, new_key
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


def test_concurrent_wrong_keys_over_two_processes_stop_at_the_limit(
    tmp_path: Path, shared: tuple[str, str]
) -> None:
    # Each process checked the limit, then counted the failure, two steps with a Redis round
    # trip between: concurrent wrong keys passed the check together (here: far more than 5 x 401).
    _, record = new_key("read")
    limits = {"state_url": shared[0], "state_prefix": shared[1], "max_key_failures": 5}
    settings = ServeSettings(
        database_url=seed_store(tmp_path / "store.duckdb"),
        ack="commit",
        refresh_seconds=0,
        **limits,
    )
    same = f"pk_{record.key_id}_{'W' * 43}"  # one wrong secret of a known id: one shared check

    async def guesses(urls: list[str]) -> list[int]:
        async with httpx.AsyncClient(
            timeout=60, limits=httpx.Limits(max_connections=100)
        ) as client:

            async def guess(number: int) -> int:
                # Half the same wrong key (requests sharing its check), half unknown ids.
                key = same if number % 4 < 2 else f"pk_{number:08x}_{'U' * 43}"
                answer = await client.get(
                    urls[number % 2] + "/v1/stats", headers={"X-API-Key": key}
                )
                return answer.status_code

            return list(await asyncio.gather(*(guess(n) for n in range(60))))

    with (
        running(settings, keys=KeyRing([record])) as a,
        running(settings, keys=KeyRing([record])) as b,
    ):
        statuses = asyncio.run(guesses([a.url, b.url]))
        assert sorted(statuses) == [401] * 5 + [429] * 55
        assert b.client.get("/v1/stats", headers={"X-API-Key": same}).status_code == 429


def test_a_right_key_takes_back_its_own_failure_in_redis(shared: tuple[str, str]) -> None:
    url, prefix = shared

    async def scenario() -> list[bytes]:
        state = RedisState(url, prefix, FailureLimiter(max_failures=3))
        await state.start()
        try:
            pending = await state.failed("10.0.0.1")  # a right key's check
            wrong = await state.failed("10.0.0.1")  # a wrong key meanwhile
            await state.succeeded("10.0.0.1", pending)
            assert state._client is not None
            members: list[bytes] = await state._client.zrange(prefix + "f:10.0.0.1", 0, -1)
            return [*members, wrong.encode()]
        finally:
            await state.close()

    *members, wrong = asyncio.run(scenario())
    assert members == [wrong]  # ZPOPMAX once took back the newest (the wrong key's) instead


def test_wrong_keys_are_counted_per_process_while_redis_is_down(tmp_path: Path) -> None:
    key, record = new_key("read")
    own = OwnRedis(tmp_path)
    own.start()
    settings = ServeSettings(
        database_url=seed_store(tmp_path / "store.duckdb"),
        ack="commit",
        refresh_seconds=0,
        state_url=own.url,
        state_prefix="t:",
        max_key_failures=2,
    )
    wrong = {"X-API-Key": f"pk_{record.key_id}_{'W' * 43}"}
    try:
        with (
            running(settings, keys=KeyRing([record])) as a,
            running(settings, keys=KeyRing([record])) as b,
        ):
            own.stop()
            # Each process limits on its own: two wrong keys each, then 429, and no error.
            for server in (a, b):
                statuses = [
                    server.client.get("/v1/stats", headers=wrong).status_code for _ in range(3)
                ]
                assert statuses == [401, 401, 429]
            # At the limit, a key the process has not verified is refused, right or not.
            assert a.client.get("/v1/stats", headers={"X-API-Key": key}).status_code == 429
            own.start()
            time.sleep(1.1)  # the pause after a failure
            # Shared again (an empty Redis): the two processes' wrong keys count together.
            assert [
                server.client.get("/v1/stats", headers=wrong).status_code for server in (a, b, a)
            ] == [401, 401, 429]
    finally:
        own.stop()
