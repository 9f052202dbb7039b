"""API keys: random tokens, stored only as salted scrypt hashes, each with a role.

A key looks like ``pk_<id>_<secret>``: ``id`` (8 hex digits) names its record, ``secret`` is
32 random bytes (URL-safe base64). What is stored (a key file, one record per line, or the
``PERSONALIZE_API_KEYS`` variable, records separated by commas or spaces) is::

    <id>:<role>:scrypt:<salt hex>:<hash hex>

so a leaked file or environment gives no key. Roles: ``read`` (rankings, funnel, stats) and
``write`` (also events and objectives). A presented key is looked up by its id and checked with
scrypt once; the server then remembers its SHA-256 (in memory only), so the cost is paid once
per key, not per request. Unknown ids are refused without hashing, and a client that presents
too many wrong keys is refused for a while (:class:`FailureLimiter`).
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import os
import re
import secrets
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

__all__ = [
    "ENV_VAR",
    "ApiKey",
    "BlockedError",
    "FailureLimiter",
    "KeyRing",
    "Role",
    "add_key",
    "hash_key",
    "new_key",
    "parse_records",
]

Role = Literal["read", "write"]
ENV_VAR = "PERSONALIZE_API_KEYS"
ROLES: tuple[Role, ...] = ("read", "write")
# scrypt cost: 2**14 x 8 x 1 takes ~16 MB and tens of milliseconds, once per key per process.
_N, _R, _P = 2**14, 8, 1
_KEY = re.compile(r"^pk_([0-9a-f]{8})_([A-Za-z0-9_-]{20,})$")
_RECORD = re.compile(r"^([0-9a-f]{8}):(read|write):scrypt:([0-9a-f]{32}):([0-9a-f]{64})$")


@dataclass(frozen=True)
class ApiKey:
    """One stored key: its id, role, salt and scrypt hash (never the key itself)."""

    key_id: str
    role: Role
    salt: bytes
    digest: bytes

    def record(self) -> str:
        """The stored line."""
        return f"{self.key_id}:{self.role}:scrypt:{self.salt.hex()}:{self.digest.hex()}"


def _scrypt(secret: str, salt: bytes) -> bytes:
    return hashlib.scrypt(secret.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)


def hash_key(key: str, role: Role) -> ApiKey:
    """The stored record of ``key`` with a fresh salt.

    Raises:
        ValueError: when ``key`` is not of the ``pk_<id>_<secret>`` form or the role is unknown.
    """
    match = _KEY.match(key)
    if match is None:
        msg = "an API key looks like pk_<8 hex digits>_<secret>"
        raise ValueError(msg)
    if role not in ROLES:
        msg = f"role must be read or write, not {role!r}"
        raise ValueError(msg)
    salt = secrets.token_bytes(16)
    return ApiKey(match.group(1), role, salt, _scrypt(match.group(2), salt))


def new_key(role: Role) -> tuple[str, ApiKey]:
    """A new random key and its stored record."""
    key = f"pk_{secrets.token_hex(4)}_{secrets.token_urlsafe(32)}"
    return key, hash_key(key, role)


def parse_records(text: str, origin: str = "keys") -> list[ApiKey]:
    """Stored records from a file's text or the environment variable.

    Blank lines and ``#`` comments are skipped.

    Raises:
        ValueError: naming the first malformed record.
    """
    keys: list[ApiKey] = []
    for number, line in enumerate(text.splitlines(), start=1):
        for token in line.split("#", 1)[0].replace(",", " ").split():
            match = _RECORD.match(token)
            if match is None:
                msg = (
                    f"{origin}, line {number}: not a key record (<id>:<role>:scrypt:<salt>:<hash>)"
                )
                raise ValueError(msg)
            key_id, role, salt, digest = match.groups()
            keys.append(ApiKey(key_id, role, bytes.fromhex(salt), bytes.fromhex(digest)))  # type: ignore[arg-type]
    return keys


def add_key(path: str | Path, role: Role) -> tuple[str, ApiKey]:
    """Create a key, append its record to the key file (created with mode 0600), return both."""
    key, record = new_key(role)
    target = Path(path).expanduser()
    target.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(descriptor, "a", encoding="utf-8") as handle:
        handle.write(record.record() + "\n")
    return key, record


class KeyRing:
    """The keys a server accepts, and the check of a presented key.

    Args:
        keys: stored records.
    """

    def __init__(self, keys: list[ApiKey]) -> None:
        self._keys = {key.key_id: key for key in keys}
        self._verified: dict[bytes, Role] = {}
        self._lock = threading.Lock()

    @classmethod
    def load(cls, path: str | Path | None = None, environ: dict[str, str] | None = None) -> KeyRing:
        """Keys from the file at ``path`` (if given) and the ``PERSONALIZE_API_KEYS`` variable."""
        env = os.environ if environ is None else environ
        keys: list[ApiKey] = []
        if path is not None:
            keys += parse_records(Path(path).expanduser().read_text(encoding="utf-8"), str(path))
        if env.get(ENV_VAR):
            keys += parse_records(env[ENV_VAR], ENV_VAR)
        return cls(keys)

    def __len__(self) -> int:
        return len(self._keys)

    def may_be_ours(self, presented: str) -> bool:
        """Whether ``presented`` has a key's form and one of our ids (no scrypt needed)."""
        match = _KEY.match(presented)
        return match is not None and match.group(1) in self._keys

    def cached_role(self, presented: str) -> Role | None:
        """The role of a key already verified by this process (no scrypt), else ``None``."""
        return self._verified.get(hashlib.sha256(presented.encode()).digest())

    def role_of(self, presented: str) -> Role | None:
        """The role of a presented key, or ``None`` when it is not one of ours.

        Runs scrypt the first time a key with a known id is seen (tens of milliseconds; call
        it off the event loop).
        """
        fingerprint = hashlib.sha256(presented.encode()).digest()
        known = self._verified.get(fingerprint)
        if known is not None:
            return known
        match = _KEY.match(presented)
        if match is None:
            return None
        stored = self._keys.get(match.group(1))
        if stored is None:
            return None
        if not hmac.compare_digest(_scrypt(match.group(2), stored.salt), stored.digest):
            return None
        with self._lock:
            self._verified[fingerprint] = stored.role
        return stored.role


class BlockedError(Exception):
    """The client presented too many wrong keys; ``wait`` seconds until it may try again."""

    def __init__(self, wait: float) -> None:
        super().__init__(f"retry in {wait:.0f} s")
        self.wait = wait


class FailureLimiter:
    """Refuses, for a while, a client that presented too many wrong keys.

    Each client (its address) may present ``max_failures`` unknown keys within
    ``window_seconds``; then it is refused (429) until its oldest failure leaves the window,
    whatever key it sends. This bounds guessing, and the scrypt work a known key id with wrong
    secrets costs the server. Used on the event loop only.

    Args:
        max_failures: wrong keys allowed per client within the window (0: no limit).
        window_seconds: how long a failure counts.
        clock: seconds, monotonic (for tests).
    """

    #: Clients remembered at most; the least recently failing are forgotten first.
    MAX_CLIENTS = 10_000

    def __init__(
        self,
        max_failures: int = 10,
        window_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_failures = max_failures
        self.window_seconds = window_seconds
        self._clock = clock
        self._failures: OrderedDict[str, deque[tuple[float, str]]] = OrderedDict()
        self._tokens = itertools.count(1)

    def _recent(self, client: str) -> deque[tuple[float, str]] | None:
        times = self._failures.get(client)
        if times is None:
            return None
        horizon = self._clock() - self.window_seconds
        while times and times[0][0] <= horizon:
            times.popleft()
        if not times:
            del self._failures[client]
            return None
        return times

    def retry_after(self, client: str) -> float | None:
        """Seconds ``client`` must wait before it may present a key again; ``None``: it may."""
        if self.max_failures <= 0:
            return None
        times = self._recent(client)
        if times is None or len(times) < self.max_failures:
            return None
        return max(times[0][0] + self.window_seconds - self._clock(), 0.0)

    def failed(self, client: str) -> str:
        """Count a wrong key presented by ``client`` (or one about to be checked).

        A key is counted as a failure before it is checked, in the same step as the limit is
        checked, so concurrent guesses cannot all pass while their checks run.

        Returns:
            The failure's token, to take it back with :meth:`succeeded` (``""`` without a limit).

        Raises:
            BlockedError: when ``client`` is at the limit already (nothing is counted).
        """
        if self.max_failures <= 0:
            return ""
        wait = self.retry_after(client)
        if wait is not None:
            raise BlockedError(wait)
        token = str(next(self._tokens))
        times = self._recent(client) or deque()
        times.append((self._clock(), token))
        self._failures[client] = times
        self._failures.move_to_end(client)
        while len(self._failures) > self.MAX_CLIENTS:
            self._failures.popitem(last=False)
        return token

    def succeeded(self, client: str, token: str) -> None:
        """Take back the failure ``token`` counted for a key of ``client`` that turned out right.

        That failure only: others counted meanwhile keep their times.
        """
        times = self._failures.get(client)
        if not times:
            return
        for entry in times:
            if entry[1] == token:
                times.remove(entry)
                break
        if not times:
            del self._failures[client]
