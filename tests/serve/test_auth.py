"""API keys: hashed at rest, roles, and required off loopback."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from click.testing import CliRunner

from target_personalize.cli import main
from target_personalize.serve import KeyRing, ServeConfigError, ServeSettings, create_app
from target_personalize.serve.auth import (
    ENV_VAR,
    BlockedError,
    FailureLimiter,
    add_key,
    hash_key,
    new_key,
    parse_records,
)
from target_personalize.serve.settings import is_loopback
from tests.serve.conftest import running, seed_store

EVENT = {"event_id": "auth-1", "event_ts": "2024-05-02T10:00:00Z", "event_name": "page_view"}


def test_keys_are_stored_hashed_and_verified(tmp_path: Path) -> None:
    key_file = tmp_path / "keys"
    read_key, read_record = add_key(key_file, "read")
    write_key, _ = add_key(key_file, "write")
    text = key_file.read_text()
    assert read_key.split("_")[2] not in text and write_key.split("_")[2] not in text
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    ring = KeyRing.load(key_file, environ={})
    assert len(ring) == 2
    assert ring.role_of(read_key) == "read"
    assert ring.role_of(read_key) == "read"  # cached the second time
    assert ring.role_of(write_key) == "write"
    assert ring.role_of(read_key + "x") is None
    assert ring.role_of(f"pk_{read_record.key_id}_{'A' * 43}") is None
    assert ring.role_of("pk_00000000_" + "A" * 43) is None
    assert ring.role_of("nonsense") is None
    # Two hashes of the same key differ (salted).
    assert hash_key(read_key, "read").digest != read_record.digest


def test_environment_variable_and_bad_records() -> None:
    key, record = new_key("write")
    ring = KeyRing.load(None, environ={ENV_VAR: f"{record.record()}, "})
    assert ring.role_of(key) == "write"
    with pytest.raises(ValueError, match="line 1"):
        parse_records("abc:read:scrypt:00:00")


def test_keys_are_required_off_loopback(tmp_path: Path) -> None:
    settings = ServeSettings(database_url=f"duckdb:///{tmp_path / 's.duckdb'}", host="0.0.0.0")
    with pytest.raises(ServeConfigError, match="needs API keys"):
        create_app(settings, keys=KeyRing([]))
    _, record = new_key("read")
    create_app(settings, keys=KeyRing([record]))
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.1.2.3")


def test_requests_without_a_key_are_refused(tmp_path: Path) -> None:
    read_key, read_record = new_key("read")
    write_key, write_record = new_key("write")
    url = seed_store(tmp_path / "store.duckdb")
    with running(
        ServeSettings(database_url=url), keys=KeyRing([read_record, write_record])
    ) as server:
        client = server.client
        assert client.get("/healthz").status_code == 200
        assert client.get("/").status_code == 200
        refused = client.get("/v1/recommendations", params={"session_id": "seed-s1"})
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"] == "Bearer"
        assert client.post("/v1/events", json=EVENT).status_code == 401
        wrong = {"X-API-Key": write_key[:-2] + "zz"}
        assert client.get("/v1/stats", headers=wrong).status_code == 401
        read = {"Authorization": f"Bearer {read_key}"}
        assert (
            client.get(
                "/v1/recommendations", params={"session_id": "seed-s1"}, headers=read
            ).status_code
            == 200
        )
        assert (
            client.post(
                "/v1/rank", json={"session_id": "seed-s1", "items": ["a"]}, headers=read
            ).status_code
            == 200
        )
        assert client.post("/v1/events", json=EVENT, headers=read).status_code == 403
        assert client.put("/v1/objectives", json={"margin": 1}, headers=read).status_code == 403
        write = {"X-API-Key": write_key}
        assert client.post("/v1/events", json=EVENT, headers=write).status_code == 200
        assert client.put("/v1/objectives", json={"margin": 1}, headers=write).status_code == 200


def test_failures_block_a_client_until_they_leave_the_window() -> None:
    now = [100.0]
    limiter = FailureLimiter(max_failures=3, window_seconds=60, clock=lambda: now[0])
    for _ in range(3):
        assert limiter.retry_after("10.0.0.1") is None
        limiter.failed("10.0.0.1")
        now[0] += 10
    assert limiter.retry_after("10.0.0.1") == pytest.approx(30)  # first failure at 100, now 130
    assert limiter.retry_after("10.0.0.2") is None  # other clients are not affected
    now[0] = 160.5  # the first failure has left the window
    assert limiter.retry_after("10.0.0.1") is None
    limiter.failed("10.0.0.1")
    assert limiter.retry_after("10.0.0.1") == pytest.approx(9.5)  # failures at 110, 120, 160.5
    assert FailureLimiter(max_failures=0).retry_after("10.0.0.1") is None


def test_a_failure_is_counted_only_under_the_limit() -> None:
    now = [0.0]
    limiter = FailureLimiter(max_failures=2, window_seconds=60, clock=lambda: now[0])
    limiter.failed("10.0.0.1")
    now[0] = 10.0
    limiter.failed("10.0.0.1")
    now[0] = 20.0
    with pytest.raises(BlockedError) as blocked:
        limiter.failed("10.0.0.1")
    assert blocked.value.wait == pytest.approx(40)  # the first failure leaves at 60
    now[0] = 70.0
    # One failure left (at 10): the refused one was not counted.
    assert limiter.retry_after("10.0.0.1") is None
    assert FailureLimiter(max_failures=0).failed("10.0.0.1") == ""  # no limit: none counted


def test_a_right_key_takes_back_its_own_pending_failure_not_the_newest() -> None:
    # succeeded() once removed the newest failure: a wrong key counted while a right key's
    # check ran was forgiven instead, and the client's block ended 30 s early.
    now = [0.0]
    limiter = FailureLimiter(max_failures=2, window_seconds=60, clock=lambda: now[0])
    pending = limiter.failed("10.0.0.1")  # a right key, being checked
    now[0] = 30.0
    limiter.failed("10.0.0.1")  # a wrong key meanwhile
    limiter.succeeded("10.0.0.1", pending)  # the check ends: the key was right
    now[0] = 40.0
    limiter.failed("10.0.0.1")  # another wrong key
    now[0] = 65.0
    assert limiter.retry_after("10.0.0.1") == pytest.approx(25)  # wrong keys at 30, 40
    now[0] = 90.0
    assert limiter.retry_after("10.0.0.1") is None


def test_a_client_guessing_keys_gets_429_but_known_keys_still_pass(tmp_path: Path) -> None:
    read_key, read_record = new_key("read")
    url = seed_store(tmp_path / "store.duckdb")
    settings = ServeSettings(database_url=url, max_key_failures=3, key_failure_window_seconds=30)
    with running(settings, keys=KeyRing([read_record])) as server:
        client = server.client
        good = {"X-API-Key": read_key}
        assert client.get("/v1/stats", headers=good).status_code == 200  # verified, remembered
        guess = {"X-API-Key": f"pk_{read_record.key_id}_{'A' * 43}"}
        assert [client.get("/v1/stats", headers=guess).status_code for _ in range(3)] == [401] * 3
        blocked = client.get("/v1/stats", headers=guess)
        assert blocked.status_code == 429
        assert 1 <= int(blocked.headers["retry-after"]) <= 30
        assert "too many wrong API keys" in blocked.json()["detail"]
        assert client.get("/v1/stats", headers=good).status_code == 200
        # (The window's expiry is tested on FailureLimiter with a clock of its own.)


def test_guesses_sent_together_are_limited_too(tmp_path: Path) -> None:
    _, record = new_key("read")
    url = seed_store(tmp_path / "store.duckdb")
    settings = ServeSettings(database_url=url, max_key_failures=3, key_failure_window_seconds=30)
    with running(settings, keys=KeyRing([record])) as server:

        def guess(number: int) -> int:
            key = f"pk_{record.key_id}_{number:043d}"  # a different secret each time
            return server.client.get("/v1/stats", headers={"X-API-Key": key}).status_code

        with ThreadPoolExecutor(20) as pool:
            statuses = sorted(pool.map(guess, range(20)))
    assert statuses == [401] * 3 + [429] * 17  # only three keys were checked with scrypt


def test_parallel_first_requests_with_a_right_key_all_pass(tmp_path: Path) -> None:
    # Each first request was once counted as a wrong key until its check ended: 16 parallel
    # first requests with a valid key got 10 x 200 and 6 x 429.
    key, record = new_key("write")
    url = seed_store(tmp_path / "store.duckdb")
    with running(ServeSettings(database_url=url), keys=KeyRing([record])) as server:
        with ThreadPoolExecutor(16) as pool:
            statuses = list(
                pool.map(
                    lambda _: (
                        server.client.get("/v1/stats", headers={"X-API-Key": key}).status_code
                    ),
                    range(16),
                )
            )
        assert statuses == [200] * 16
        # Wrong keys are still limited afterwards: nothing was left counted against the client.
        wrong = [
            server.client.get("/v1/stats", headers={"X-API-Key": f"pk_{record.key_id}_{n:043d}"})
            for n in range(11)
        ]
        assert [answer.status_code for answer in wrong] == [401] * 10 + [429]


def test_forwarded_for_does_not_rotate_past_the_limit_on_loopback(tmp_path: Path) -> None:
    # uvicorn believed X-Forwarded-For from loopback by default, so a client on this machine
    # (or behind a proxy on it) could present a new address with each wrong key.
    _, record = new_key("read")
    url = seed_store(tmp_path / "store.duckdb")
    with running(ServeSettings(database_url=url), keys=KeyRing([record])) as server:
        statuses = [
            server.client.get(
                "/v1/stats",
                headers={
                    "X-API-Key": f"pk_{record.key_id}_{n:043d}",
                    "X-Forwarded-For": f"10.0.0.{n}",
                },
            ).status_code
            for n in range(12)
        ]
    assert statuses == [401] * 10 + [429] * 2


def test_forwarded_for_is_believed_from_configured_proxies(tmp_path: Path) -> None:
    _, record = new_key("read")
    url = seed_store(tmp_path / "store.duckdb")
    settings = ServeSettings(database_url=url, forwarded_allow_ips="127.0.0.1")
    with running(settings, keys=KeyRing([record])) as server:
        statuses = [
            server.client.get(
                "/v1/stats",
                headers={
                    "X-API-Key": f"pk_{record.key_id}_{n:043d}",
                    "X-Forwarded-For": f"10.0.0.{n}",
                },
            ).status_code
            for n in range(12)
        ]
    assert statuses == [401] * 12  # each address its own client, as the proxy says


def test_keys_command(tmp_path: Path) -> None:
    key_file = tmp_path / "keys"
    runner = CliRunner()
    added = runner.invoke(main, ["keys", "add", "--role", "read", "--file", str(key_file)])
    assert added.exit_code == 0, added.output
    key = added.stdout.strip().splitlines()[0]
    assert KeyRing.load(key_file, environ={}).role_of(key) == "read"
    listed = runner.invoke(main, ["keys", "list", "--file", str(key_file)])
    assert listed.stdout.strip().endswith("\tread")


def test_serve_command_refuses_a_public_address_without_keys(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main,
        ["serve", "--database-url", f"duckdb:///{tmp_path / 's.duckdb'}", "--host", "0.0.0.0"],
        env={ENV_VAR: "", "PERSONALIZE_API_KEYS_FILE": ""},
    )
    assert result.exit_code != 0
    assert "needs API keys" in result.output


def test_the_same_wrong_key_sent_together_is_checked_once_and_still_counted(
    tmp_path: Path,
) -> None:
    _, record = new_key("read")
    url = seed_store(tmp_path / "store.duckdb")
    settings = ServeSettings(database_url=url, max_key_failures=3, key_failure_window_seconds=30)
    wrong = {"X-API-Key": f"pk_{record.key_id}_{'C' * 43}"}
    with running(settings, keys=KeyRing([record])) as server:
        with ThreadPoolExecutor(12) as pool:
            statuses = list(
                pool.map(
                    lambda _: server.client.get("/v1/stats", headers=wrong).status_code, range(12)
                )
            )
        # Requests sharing one check are each a wrong key, counted only while the client is
        # under the limit: they once passed the limit together, before the check ended.
        assert sorted(statuses) == [401] * 3 + [429] * 9
        assert server.client.get("/v1/stats", headers=wrong).status_code == 429
