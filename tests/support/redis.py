"""Redis for tests and benches: the local server (a key prefix per test), or one of our own."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

SERVER = os.environ.get("PERSONALIZE_TEST_REDIS", "redis://127.0.0.1:6379/0")
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


def _skip_or_fail(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"Redis is required in CI: {reason}")
    pytest.skip(f"Redis not usable ({reason}); CI runs these tests")


@contextlib.contextmanager
def redis_prefix() -> Iterator[tuple[str, str]]:
    """(URL, a fresh key prefix) on the local Redis; the prefix's keys are deleted afterwards."""
    redis = pytest.importorskip("redis")
    client = redis.Redis.from_url(SERVER, socket_timeout=3)
    try:
        client.ping()
    except redis.RedisError as error:
        _skip_or_fail(f"{SERVER}: {error}")
    prefix = f"test-{uuid.uuid4().hex[:12]}:"
    try:
        yield SERVER, prefix
    finally:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """A redis-server of our own on a free port (no persistence), to stop and start mid-run.

    For tests (:class:`OwnRedis`) and ``bench/serve.py --restart-redis``: never the Redis
    others use.

    Raises:
        FileNotFoundError: when there is no redis-server to run.
    """

    def __init__(self, workdir: Path) -> None:
        if not Path(REDIS_SERVER).exists():
            msg = f"no redis-server at {REDIS_SERVER}: install Redis or put redis-server on PATH"
            raise FileNotFoundError(msg)
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start it and wait until it accepts connections (it holds nothing)."""
        self.process = subprocess.Popen(
            [
                REDIS_SERVER,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), 0.2),
            ):
                return
            time.sleep(0.05)
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def stop(self) -> None:
        """Kill it (what it held is gone)."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None


class OwnRedis(RedisServer):
    """:class:`RedisServer` in a test: skipped without redis-server (failed in CI)."""

    def __init__(self, workdir: Path) -> None:
        try:
            super().__init__(workdir)
        except FileNotFoundError as error:
            _skip_or_fail(str(error))
