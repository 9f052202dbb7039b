"""Live state shared in Redis by several servers (issue 16).

Two servers in one test process hold separate rankers and live sessions, as two processes
would; what they share goes through Redis only. A third server keeps its state in process and
gets the same events: its answers are what one process holding every event gives.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from target_personalize.cli import main
from target_personalize.serve import KeyRing, ServeSettings
from target_personalize.serve.auth import FailureLimiter, new_key
from target_personalize.serve.browser import BrowserSettings, add_browser_key
from target_personalize.serve.state import RedisState
from target_personalize.serve.workers import (
    check_workers,
    settings_environment,
    settings_from_environment,
)
from tests.serve.conftest import T0, Server, running, seed_events, seed_store
from tests.support.redis import OwnRedis, free_port, redis_prefix


def live_events(session: str, user: str, items: list[str], start: int = 0) -> list[dict[str, Any]]:
    return [
        {
            "source": "web",
            "event_id": f"{session}-{start + n}",
            "event_type": kind,
            "event_ts": T0.replace(hour=12, second=start + n).isoformat(),
            "user_id": user,
            "session_id": session,
            "items": [{"item_id": item, "price": 9.0, "category": "shoes"}],
        }
        for n, (kind, item) in enumerate(
            ("add_to_cart" if item == "pricey" else "product_view", item) for item in items
        )
    ]


def answer(server: Server, **params: Any) -> list[tuple[str, float]]:
    response = server.client.get("/v1/recommendations", params={"k": 5, **params})
    assert response.status_code == 200, response.text
    return [(item["item_id"], round(item["score"], 9)) for item in response.json()["items"]]


def post(server: Server, events: list[dict[str, Any]]) -> dict[str, Any]:
    response = server.client.post("/v1/events", json=events)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.fixture
def stores(tmp_path: Path) -> tuple[str, str]:
    """The seeded store shared by the Redis-backed servers, and a copy for the lone one."""
    url = seed_store(tmp_path / "shared.duckdb")
    shutil.copy(tmp_path / "shared.duckdb", tmp_path / "alone.duckdb")
    return url, f"duckdb:///{tmp_path / 'alone.duckdb'}"


@pytest.fixture
def shared() -> Iterator[tuple[str, str]]:
    with redis_prefix() as found:
        yield found


def settings(url: str, **more: Any) -> ServeSettings:
    return ServeSettings(database_url=url, ack="commit", refresh_seconds=0, **more)


def test_events_posted_to_one_process_are_answered_alike_by_another(
    stores: tuple[str, str], shared: tuple[str, str]
) -> None:
    shared_url, alone_url = stores
    state_url, prefix = shared
    redis = {"state_url": state_url, "state_prefix": prefix}
    with (
        running(settings(shared_url, **redis), keys=KeyRing([])) as a,
        running(settings(shared_url, **redis), keys=KeyRing([])) as b,
        running(settings(alone_url), keys=KeyRing([])) as alone,
    ):
        first = live_events("s-live", "u-live", ["a", "a", "pricey"])
        assert post(a, first)["duplicates"] == 0
        post(alone, first)
        expected = answer(alone, session_id="s-live")
        assert expected != answer(alone, session_id="never-seen")  # the events matter
        assert answer(b, session_id="s-live") == expected
        assert answer(b, user_id="u-live") == answer(alone, user_id="u-live")

        # More events of the session, some through each process, one re-sent: B catches up
        # with what it lacks, A reads the whole session it never held.
        more = live_events("s-live", "u-live", ["cheap", "a"], start=3)
        assert post(b, [more[0]])["duplicates"] == 0
        assert post(a, [more[1], first[0]])["duplicates"] == 1
        post(alone, more)
        expected = answer(alone, session_id="s-live")
        assert answer(a, session_id="s-live") == expected
        assert answer(b, session_id="s-live") == expected
        ranked = {"items": ["cheap", "pricey", "a", "zzz"], "session_id": "s-live"}
        assert (
            a.client.post("/v1/rank", json=ranked).json()["items"]
            == alone.client.post("/v1/rank", json=ranked).json()["items"]
        )

        # A second session of the same user: requests by user id follow it on both.
        other = live_events("s-two", "u-live", ["pricey"])
        post(b, other)
        post(alone, other)
        assert answer(a, user_id="u-live") == answer(alone, user_id="u-live")


def test_concurrent_reads_while_another_process_ingests_apply_each_event_once(
    stores: tuple[str, str], shared: tuple[str, str]
) -> None:
    shared_url, alone_url = stores
    state_url, prefix = shared
    redis = {"state_url": state_url, "state_prefix": prefix}
    with (
        running(settings(shared_url, **redis), keys=KeyRing([])) as a,
        running(settings(shared_url, **redis), keys=KeyRing([])) as b,
        running(settings(alone_url), keys=KeyRing([])) as alone,
    ):
        stream = live_events("s-busy", "u-busy", ["a", "cheap", "pricey", "a", "cheap"] * 4)
        stop = threading.Event()

        def read() -> None:
            with httpx.Client(base_url=b.url, timeout=30) as client:
                while not stop.is_set():
                    assert client.get("/v1/recommendations?session_id=s-busy").status_code == 200

        readers = [threading.Thread(target=read) for _ in range(6)]
        for thread in readers:
            thread.start()
        try:
            for event in stream:
                post(a, [event])
        finally:
            stop.set()
            for thread in readers:
                thread.join(timeout=30)
        post(alone, stream)
        assert answer(b, session_id="s-busy") == answer(alone, session_id="s-busy")


def test_default_objectives_set_on_one_process_reach_the_others(
    stores: tuple[str, str], shared: tuple[str, str]
) -> None:
    state_url, prefix = shared
    redis = {"state_url": state_url, "state_prefix": prefix}
    with (
        running(settings(stores[0], **redis), keys=KeyRing([])) as a,
        running(settings(stores[0], **redis), keys=KeyRing([])) as b,
    ):
        wanted = {"conversion": 0.7, "margin": 0.2, "revenue": 0.0, "engagement": 0.0}
        assert a.client.put("/v1/objectives", json=wanted).status_code == 200
        deadline = time.monotonic() + 10
        while b.client.get("/v1/objectives").json() != wanted:
            assert time.monotonic() < deadline, "B never took the objectives set on A"
            time.sleep(0.2)


def test_wrong_key_counters_are_shared_by_the_processes(
    stores: tuple[str, str], shared: tuple[str, str]
) -> None:
    state_url, prefix = shared
    key, record = new_key("read")
    limits = {"state_url": state_url, "state_prefix": prefix, "max_key_failures": 3}
    with (
        running(settings(stores[0], **limits), keys=KeyRing([record])) as a,
        running(settings(stores[0], **limits), keys=KeyRing([record])) as b,
    ):
        wrong = {"X-API-Key": key[:-4] + "xxxx"}
        right = {"X-API-Key": key}
        # A right key is checked once by each process and never counted as a wrong one.
        assert a.client.get("/v1/stats", headers=right).status_code == 200
        assert b.client.get("/v1/stats", headers=right).status_code == 200
        assert a.client.get("/v1/stats", headers=wrong).status_code == 401
        assert b.client.get("/v1/stats", headers=wrong).status_code == 401
        assert a.client.get("/v1/stats", headers=wrong).status_code == 401
        # Three wrong keys over two processes: the client is refused by both now.
        for server in (a, b):
            refused = server.client.get("/v1/stats", headers=wrong)
            assert refused.status_code == 429
            assert 0 < int(refused.headers["Retry-After"]) <= 60
            # A key the process has verified still passes.
            assert server.client.get("/v1/stats", headers=right).status_code == 200


def test_redis_stopped_and_restarted_mid_run(stores: tuple[str, str], tmp_path: Path) -> None:
    own = OwnRedis(tmp_path)
    own.start()
    redis = {"state_url": own.url, "state_prefix": "t:"}
    try:
        with (
            running(settings(stores[0], **redis), keys=KeyRing([])) as a,
            running(settings(stores[0], **redis), keys=KeyRing([])) as b,
        ):
            cold = answer(b, session_id="never-seen")
            post(a, live_events("s-down", "u-down", ["a", "pricey", "pricey"]))
            live = answer(b, session_id="s-down")
            assert live != cold

            own.stop()
            # Without Redis: events are still stored, answers come from the model alone.
            stored = post(a, live_events("s-down", "u-down", ["cheap"], start=3))
            assert stored["accepted"] == 1
            assert answer(b, session_id="s-down") == cold
            assert answer(a, session_id="s-down") == cold
            stats = b.client.get("/v1/stats", params={"fresh": "true"}).json()
            assert stats["store_events"] == len(seed_events()) + 4

            own.start()  # empty again (no persistence): sessions are live from new events on
            time.sleep(1.1)  # the pause after a failure
            post(a, live_events("s-up", "u-up", ["a", "pricey", "pricey"]))
            assert answer(b, session_id="s-up") == live
    finally:
        own.stop()


def test_one_refresher_at_a_time(shared: tuple[str, str]) -> None:
    state_url, prefix = shared

    async def scenario() -> None:
        limiter = FailureLimiter()
        first, second = (
            RedisState(state_url, prefix, limiter),
            RedisState(state_url, prefix, limiter),
        )
        await first.start()
        await second.start()
        try:
            async with first.lock("refresh", 0.5) as held, second.lock("refresh", 0.5) as other:
                assert held is not None
                assert other is None
                for _ in range(4):  # held past its lifetime by extending it
                    await asyncio.sleep(0.2)
                    assert await held.extend()
                async with second.lock("refresh", 0.5) as still:
                    assert still is None
            async with second.lock("refresh", 0.3) as now:  # released: free again
                assert now is not None
                await asyncio.sleep(0.5)  # a holder that stops extending loses it
                assert not await now.extend()
            async with first.lock("refresh", 0.5) as again:
                assert again is not None
        finally:
            await first.close()
            await second.close()

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({}, "needs a store several processes can write"),
        ({"state_url": None}, "needs --state-url"),
        ({"database_url": "postgresql+psycopg://u@h/db", "ack": "journal"}, "needs --ack commit"),
    ],
)
def test_settings_several_processes_cannot_share_are_refused(
    tmp_path: Path, changes: dict[str, Any], message: str
) -> None:
    given: dict[str, Any] = {
        "database_url": f"duckdb:///{tmp_path / 'store.duckdb'}",
        "state_url": "redis://127.0.0.1:6379/0",
        "ack": "commit",
        **changes,
    }
    with pytest.raises(ValueError, match=message):
        check_workers(ServeSettings(**given), 2)
    check_workers(ServeSettings(**given), 1)  # one process: anything goes


def test_settings_reach_each_worker(tmp_path: Path) -> None:
    browser_key, _ = add_browser_key(tmp_path / "browser.keys", "https://shop.example")
    given = ServeSettings(
        database_url="postgresql+psycopg://shop@db/shop",
        ack="commit",
        state_url="redis://127.0.0.1:6379/3",
        state_prefix="shop:",
        max_key_failures=4,
        max_body_bytes=2048,
        max_json_depth=5,
        forwarded_allow_ips="10.0.0.1",
        open_docs=True,
        objectives={"conversion": 1.0, "revenue": 0.5},
        browser=BrowserSettings(
            keys_file=str(tmp_path / "browser.keys"), address_rate=3.0, demo=True
        ),
    )
    rebuilt = settings_from_environment(settings_environment(given))
    assert rebuilt.limits == given.limits
    assert rebuilt.uvicorn_options() == given.uvicorn_options()
    # The browser key ring is loaded again from its file in the worker.
    assert rebuilt.browser.keys.find(browser_key) is not None
    assert rebuilt.browser.address_rate == 3.0
    assert rebuilt.browser.demo
    for name in ServeSettings.__dataclass_fields__.keys() - {"browser"}:
        assert getattr(rebuilt, name) == getattr(given, name), name


def test_the_command_refuses_workers_on_duckdb(tmp_path: Path) -> None:
    url = f"duckdb:///{tmp_path / 'store.duckdb'}"
    result = CliRunner().invoke(
        main, ["serve", "--database-url", url, "--workers", "2", "--state-url", "redis://h:1/0"]
    )
    assert result.exit_code == 1
    assert "DuckDB allows one writing process" in result.output
    assert "postgresql+psycopg://" in result.output


def test_the_command_says_when_redis_does_not_answer(tmp_path: Path) -> None:
    url = "postgresql+psycopg://u@127.0.0.1:1/db"
    state = f"redis://:s3cret@127.0.0.1:{free_port()}/0"
    result = CliRunner().invoke(
        main, ["serve", "--database-url", url, "--workers", "2", "--state-url", state]
    )
    assert result.exit_code == 1
    assert "did not answer" in result.output
    assert "--state-url" in result.output
    assert "s3cret" not in result.output


def test_redis_down_is_logged_once_without_the_password(
    caplog: pytest.LogCaptureFixture,
) -> None:
    port = free_port()  # nothing listens there

    async def scenario() -> list[int]:
        state = RedisState(f"redis://:s3cret@127.0.0.1:{port}/0", "t:", FailureLimiter())
        await state.start()
        try:
            record = {"source": "web", "event_id": "1", "session_id": "s"}
            return [await state.observe(None, [record]) for _ in range(3)]  # type: ignore[arg-type]
        finally:
            await state.close()

    with caplog.at_level(logging.WARNING, logger="target_personalize.serve.state"):
        assert asyncio.run(scenario()) == [0, 0, 0]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert f"127.0.0.1:{port}" in warnings[0]
    assert "s3cret" not in caplog.text
