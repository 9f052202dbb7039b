"""Browser keys and the guard in front of the API for pages that run ``personalize.js``.

A browser key (``wk_<id>_<secret>``) is public: it sits in a shop's page source. What makes it
safe is what it cannot do. It is bound to one origin (``https://shop.example``): a request that
presents it must come from a page of that origin (its ``Origin`` header, or its ``Referer``
for same-origin reads, which carry no ``Origin``). It can only

* send events (``POST /v1/events``), and
* read recommendations of a session (``GET /v1/recommendations?session_id=...``) whose id is
  at least :data:`MIN_SESSION_ID` characters: the SDK's random session ids, not guessable,
  never a ``user_id``;

never the store, the funnel, the stats or another visitor's history. Requests of one address
and of one key are rate-limited (429 with ``Retry-After``), and a browser request's body is
limited (413). All of this is answered before the body is read. The rates are counted by the
server's live state: in this process, or in Redis for every process that shares it
(:meth:`~target_personalize.serve.state.LiveState.take`).

Records (``personalize keys add-browser``), one per line of the browser key file::

    <id>:browser:<sha256 hex of the key>:<origin>

The file needs no secrecy (the keys are public); it holds digests so that it is not a list of
working keys either.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

__all__ = [
    "MIN_SESSION_ID",
    "BrowserGuard",
    "BrowserKey",
    "BrowserKeyRing",
    "BrowserSettings",
    "Limit",
    "RateCounter",
    "RateLimiter",
    "add_browser_key",
    "normalise_origin",
    "parse_origin",
    "refuse",
    "take_here",
]

#: Shortest session id a browser key may read recommendations for.
MIN_SESSION_ID = 16
_KEY = re.compile(r"^wk_([0-9a-f]{8})_([A-Za-z0-9_-]{20,})$")
_RECORD = re.compile(r"^([0-9a-f]{8}):browser:([0-9a-f]{64}):(\S+)$")
_ORIGIN = re.compile(r"^(https?)://([a-z0-9.-]+|\[[0-9a-f:.]+\])(:\d{1,5})?$")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def normalise_origin(origin: str) -> str:
    """``scheme://host[:port]`` in lower case, default ports dropped.

    Raises:
        ValueError: when ``origin`` is not an http(s) origin (a path, a query or a wildcard).
    """
    text = origin.strip().rstrip("/").lower()
    match = _ORIGIN.match(text)
    if match is None:
        msg = f"{origin!r} is not an origin: give scheme://host[:port], e.g. https://shop.example"
        raise ValueError(msg)
    scheme, host, port = match.groups()
    if port in {":80", ":443"} and port == {"http": ":80", "https": ":443"}[scheme]:
        port = None
    return f"{scheme}://{host}{port or ''}"


@dataclass(frozen=True)
class BrowserKey:
    """One browser key's record: its id, the digest of the key, and its origin."""

    key_id: str
    digest: bytes
    origin: str

    def record(self) -> str:
        """The stored line."""
        return f"{self.key_id}:browser:{self.digest.hex()}:{self.origin}"


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def add_browser_key(path: str | Path, origin: str) -> tuple[str, BrowserKey]:
    """Create a browser key for ``origin``, append its record to the file, return both.

    Raises:
        ValueError: when ``origin`` is not an origin.
    """
    bound = normalise_origin(origin)
    key = f"wk_{secrets.token_hex(4)}_{secrets.token_urlsafe(24)}"
    record = BrowserKey(key[3:11], _digest(key), bound)
    target = Path(path).expanduser()
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("a", encoding="utf-8") as handle:
        handle.write(record.record() + "\n")
    return key, record


class BrowserKeyRing:
    """The browser keys a server accepts.

    Args:
        keys: their records.
    """

    def __init__(self, keys: list[BrowserKey]) -> None:
        self._keys = {key.key_id: key for key in keys}

    @classmethod
    def load(cls, path: str | Path | None) -> BrowserKeyRing:
        """Records from the file at ``path`` (none: no keys).

        Raises:
            ValueError: naming the line that is not a browser key record.
        """
        if path is None:
            return cls([])
        keys: list[BrowserKey] = []
        text = Path(path).expanduser().read_text(encoding="utf-8")
        for number, line in enumerate(text.splitlines(), start=1):
            token = line.split("#", 1)[0].strip()
            if not token:
                continue
            match = _RECORD.match(token)
            if match is None:
                msg = f"{path}, line {number}: not a browser key record (<id>:browser:<sha256>:<origin>)"
                raise ValueError(msg)
            key_id, digest, origin = match.groups()
            keys.append(BrowserKey(key_id, bytes.fromhex(digest), normalise_origin(origin)))
        return cls(keys)

    def __len__(self) -> int:
        return len(self._keys)

    def origins(self) -> set[str]:
        """The origins the keys are bound to."""
        return {key.origin for key in self._keys.values()}

    def find(self, presented: str) -> BrowserKey | None:
        """The record of a presented key, or ``None`` when it is not one of ours."""
        match = _KEY.match(presented)
        stored = self._keys.get(match.group(1)) if match else None
        if stored is None or not hmac.compare_digest(_digest(presented), stored.digest):
            return None
        return stored


class RateLimiter:
    """Token buckets per name (an address or a key): ``rate`` a second, bursts of ``rate``.

    Args:
        rate: requests a second (0: no limit).
        scope: what the names are (``address``, ``key``): where shared buckets are kept.
        clock: seconds, monotonic (for tests).
    """

    #: Names remembered at most; the least recently seen are forgotten first.
    MAX_NAMES = 100_000

    def __init__(
        self, rate: float, scope: str = "", clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = max(rate, 1.0)
        self.scope = scope
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def wait(self, name: str) -> float | None:
        """Take a token for ``name``: ``None`` when it may go on, else seconds until it may."""
        if self.rate <= 0:
            return None
        now = self._clock()
        tokens, then = self._buckets.get(name, (self.burst, now))
        tokens = min(self.burst, tokens + (now - then) * self.rate)
        if tokens < 1:
            self._buckets[name] = (tokens, now)
            return (1 - tokens) / self.rate
        self._buckets[name] = (tokens - 1, now)
        self._buckets.move_to_end(name)
        while len(self._buckets) > self.MAX_NAMES:
            self._buckets.popitem(last=False)
        return None


#: A limit to take a token from: the limiter and the name (address, key id) of the bucket.
Limit = tuple[RateLimiter, str]


def take_here(limits: Sequence[Limit]) -> tuple[int, float] | None:
    """Take a token from each bucket in turn, in this process, until one is empty.

    Returns:
        ``None`` when every bucket gave one, else the empty one's index in ``limits`` and the
        seconds until it has a token again.
    """
    for index, (limiter, name) in enumerate(limits):
        wait = limiter.wait(name)
        if wait is not None:
            return index, wait
    return None


class RateCounter(Protocol):
    """Where the buckets are kept (the server's live state: here, or shared in Redis)."""

    async def take(self, limits: Sequence[Limit]) -> tuple[int, float] | None:
        """As :func:`take_here`, over the buckets of every process sharing them."""
        ...


class _Here:
    async def take(self, limits: Sequence[Limit]) -> tuple[int, float] | None:
        return take_here(limits)


@dataclass
class BrowserSettings:
    """How the server treats pages that run ``personalize.js``.

    Attributes:
        allow_origins: origins whose pages may call the API (CORS); ``None``: any loopback
            origin when the server binds loopback, none otherwise. Browser keys' origins are
            always allowed.
        keys_file: the browser key file (``personalize keys add-browser``).
        address_rate: requests a second one address may make with a browser key.
        key_rate: requests a second all pages together may make with one browser key.
        max_body_bytes: the largest event batch a browser may send (413 above).
        demo: serve the live storefront at ``/demo``.
    """

    allow_origins: list[str] | None = None
    keys_file: str | None = None
    address_rate: float = 20.0
    key_rate: float = 1000.0
    max_body_bytes: int = 64 * 1024
    demo: bool = False
    keys: BrowserKeyRing = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.allow_origins is not None:
            self.allow_origins = [normalise_origin(origin) for origin in self.allow_origins]
        self.keys = BrowserKeyRing.load(self.keys_file)


def _origin_of(scope: Scope) -> str | None:
    headers: dict[bytes, bytes] = dict(scope.get("headers") or [])
    origin = headers.get(b"origin")
    if origin and origin != b"null":
        return origin.decode("latin-1")
    referer = headers.get(b"referer")
    if referer:
        parts = urlsplit(referer.decode("latin-1"))
        return f"{parts.scheme}://{parts.netloc}"
    return None


async def refuse(
    send: Send, status: int, detail: str, headers: dict[str, str] | None = None
) -> None:
    """Answer ``status`` with a JSON ``detail``, as the API's errors look."""
    body = json.dumps({"detail": detail}).encode()
    extra = [(name.lower().encode(), value.encode()) for name, value in (headers or {}).items()]
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *extra,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class BrowserGuard:
    """ASGI middleware: the rules of browser keys, checked before a request's body is read.

    A request that presents ``writeKey`` is a browser's: the key must be known and bound to
    the request's origin, the request one a browser key may make, within the rates and the
    body limit. It then passes with ``scope["state"]["browser_key"]`` set, which the API's key
    check accepts. Without browser keys configured, ``writeKey`` is ignored (the API's own
    keys, or none on loopback, decide).

    Args:
        app: the wrapped application.
        settings: the browser settings.
        rates: where the rates are counted (default: in this process).
    """

    def __init__(
        self, app: ASGIApp, settings: BrowserSettings, rates: RateCounter | None = None
    ) -> None:
        self.app = app
        self.settings = settings
        self.rates = rates or _Here()
        self.by_address = RateLimiter(settings.address_rate, "address")
        self.by_key = RateLimiter(settings.key_rate, "key")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check a browser request, then pass it on or answer the refusal."""
        if scope["type"] != "http" or not len(self.settings.keys):
            await self.app(scope, receive, send)
            return
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        presented = query.get("writeKey", [None])[0]
        if presented is None or scope["method"] == "OPTIONS":
            await self.app(scope, receive, send)
            return
        problem = await self._check(scope, query, presented)
        if problem is not None:
            await refuse(send, *problem)
            return
        await self.app(scope, self._limited(receive), send)

    async def _check(
        self, scope: Scope, query: dict[str, list[str]], presented: str
    ) -> tuple[int, str, dict[str, str]] | tuple[int, str] | None:
        key = self.settings.keys.find(presented)
        if key is None:
            return (
                401,
                "unknown browser key (writeKey): create one with `personalize keys add-browser`",
            )
        origin = _origin_of(scope)
        if origin is None or parse_origin(origin) != key.origin:
            return (
                403,
                f"browser key {key.key_id} is bound to {key.origin}, not to {origin or 'this page'}",
            )
        method, path = scope["method"], scope["path"]
        if (method, path) == ("GET", "/v1/recommendations"):
            # Exactly one session_id: with two, the API would read the last one given.
            sessions = query.get("session_id", [])
            if "user_id" in query or len(sessions) != 1 or len(sessions[0]) < MIN_SESSION_ID:
                return 403, (
                    "a browser key reads recommendations only for a session_id of at least "
                    f"{MIN_SESSION_ID} characters, never for a user_id"
                )
        elif (method, path) != ("POST", "/v1/events"):
            return 403, "a browser key may only POST /v1/events and GET /v1/recommendations"
        client = scope.get("client")
        address = client[0] if client else "unknown"
        limited = await self.rates.take([(self.by_address, address), (self.by_key, key.key_id)])
        if limited is not None:
            index, wait = limited
            what = f"address {address}" if index == 0 else f"browser key {key.key_id}"
            seconds = str(math.ceil(wait))
            return (
                429,
                f"too many requests from {what}: retry in {seconds} s",
                {"Retry-After": seconds},
            )
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and (
            not length.isdigit() or int(length) > self.settings.max_body_bytes
        ):
            return 413, self._too_large()
        scope.setdefault("state", {})["browser_key"] = key.key_id
        return None

    def _too_large(self) -> str:
        return f"a browser batch is at most {self.settings.max_body_bytes} bytes: send fewer events per request"

    def _limited(self, receive: Receive) -> Receive:
        """``receive`` that stops a body without Content-Length at the limit."""
        seen = 0
        limit = self.settings.max_body_bytes

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:
                from fastapi import HTTPException  # noqa: PLC0415

                raise HTTPException(413, self._too_large())
            return message

        return counted


def parse_origin(origin: str) -> str | None:
    """:func:`normalise_origin`, or ``None`` for something that is not an origin."""
    try:
        return normalise_origin(origin)
    except ValueError:
        return None
