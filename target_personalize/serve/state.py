"""Live state of a server: in this process (the default), or in Redis, shared by several.

What a server keeps between requests besides the model is behind :class:`LiveState`:

* the live sessions' recent events (what the ranker answers from at once, without a refit),
* the keys of events already applied (a re-sent event is applied once),
* the wrong-API-key counters of clients (:class:`FailureLimiter` semantics),
* the browser keys' rate-limit buckets, per address and per key (:class:`RateLimiter`'s),
* the version of the saved model and the default objectives, and a lock (one refresher).

:class:`InProcessState` is today's behaviour: the ranker's own live sessions. With
:class:`RedisState` (``--state-url redis://HOST:PORT/DB``) every process writes a session's
events to a Redis list (the last ``MAX_EVENTS``, kept ``SESSION_TTL`` seconds after the last
event) and, before answering for a session, brings its own copy of that session in step with the
list, so any process answers as one process holding every event would. One Lua script per
request; a short socket timeout and no retries: when Redis does not answer, the server answers
from the model without live state, logs it once, and tries Redis again a second later.

Not for Redis Cluster: a script reaches keys it finds in Redis (the visitor's session).
"""

from __future__ import annotations

import abc
import contextlib
import logging
import math
import secrets
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import msgspec

from target_personalize.serve.auth import BlockedError, FailureLimiter
from target_personalize.serve.browser import Limit, take_here

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from target_personalize.engine import RankerBase

__all__ = [
    "InProcessState",
    "LiveState",
    "LockHandle",
    "RedisState",
    "StateUnavailableError",
    "open_state",
    "redacted",
    "session_key",
]

logger = logging.getLogger(__name__)

#: Events kept per live session (the ranker keeps the last 100 items of a session too).
MAX_EVENTS = 100
#: Seconds a session stays live after its last event; also how long an event key is remembered.
SESSION_TTL = 1800
#: Event keys remembered in process to tell re-sent events from new ones.
_RECENT_KEYS = 200_000
#: Seconds Redis is left alone after it failed to answer.
_RETRY_AFTER = 1.0
_EPOCH = datetime(1970, 1, 1)  # the store holds naive UTC
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode


class StateUnavailableError(Exception):
    """The shared state did not answer (Redis down or too slow); the caller goes on without."""


def session_key(record: Mapping[str, Any]) -> str | None:
    """The live session an event belongs to: its ``session_id``, else ``<visitor>#live``."""
    visitor = record.get("user_id") or record.get("anonymous_id")
    key = record.get("session_id") or (f"{visitor}#live" if visitor else None)
    return None if key is None else str(key)


class LiveState(abc.ABC):
    """Where a server keeps live sessions, event keys, wrong-key counters and the model version."""

    #: Whether other processes share this state (and a model refresh needs the lock).
    shared = False

    @abc.abstractmethod
    async def start(self) -> None:
        """Connect (on the server's event loop)."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Disconnect."""

    @abc.abstractmethod
    async def observe(self, ranker: RankerBase, records: Sequence[Mapping[str, Any]]) -> int:
        """Apply stored events to their live sessions; returns how many were applied before."""

    @abc.abstractmethod
    async def prepare(
        self, ranker: RankerBase, user_id: str | None, session_id: str | None
    ) -> None:
        """Bring the ranker's copy of the request's live session in step before it answers."""

    async def get(self, name: str) -> bytes | None:
        """A value shared by the processes (``model``, ``objectives``); ``None``: not shared."""
        del name
        return None

    async def put(self, name: str, value: bytes | str) -> bool:
        """Share a value with the other processes; ``False`` when it could not be."""
        del name, value
        return False

    # Wrong API keys, per client (see FailureLimiter)

    @abc.abstractmethod
    async def failed(self, client: str) -> str:
        """Count a wrong key of ``client`` if under the limit; returns the failure's token.

        Raises:
            BlockedError: when ``client`` is at the limit (nothing counted).
        """

    @abc.abstractmethod
    async def succeeded(self, client: str, token: str) -> None:
        """Take back the failure ``token`` of ``client``: its key turned out right."""

    # Browser rate limits

    async def take(self, limits: Sequence[Limit]) -> tuple[int, float] | None:
        """A token from each bucket in turn (see :func:`take_here`); here: in this process."""
        return take_here(limits)


class InProcessState(LiveState):
    """The ranker's own live sessions and counters, in this process (one server process).

    Args:
        limiter: the wrong-key counters.
    """

    def __init__(self, limiter: FailureLimiter) -> None:
        self.limiter = limiter
        self._recent_keys: OrderedDict[tuple[str, str], None] = OrderedDict()

    async def start(self) -> None:
        """Nothing to connect."""

    async def close(self) -> None:
        """Nothing to disconnect."""

    async def observe(self, ranker: RankerBase, records: Sequence[Mapping[str, Any]]) -> int:
        """Apply each event not seen recently to the ranker's live sessions."""
        duplicates = 0
        for record in records:
            key = (str(record["source"]), str(record["event_id"]))
            if key in self._recent_keys:
                duplicates += 1
                self._recent_keys.move_to_end(key)
                continue
            self._recent_keys[key] = None
            if len(self._recent_keys) > _RECENT_KEYS:
                self._recent_keys.popitem(last=False)
            ranker.observe(record)
        return duplicates

    async def prepare(
        self, ranker: RankerBase, user_id: str | None, session_id: str | None
    ) -> None:
        """Nothing to do: the ranker holds every live session."""

    async def failed(self, client: str) -> str:
        """See :meth:`FailureLimiter.failed`."""
        return self.limiter.failed(client)

    async def succeeded(self, client: str, token: str) -> None:
        """See :meth:`FailureLimiter.succeeded`."""
        self.limiter.succeeded(client, token)


# KEYS: 4 per event (event key, session list, session counter, visitor pointer).
# ARGV: ttl, max events, then 3 per event (payload, session key or '', visitor or '').
# Returns the number of events seen before.
_OBSERVE = """
local ttl, cap, seen = tonumber(ARGV[1]), tonumber(ARGV[2]), 0
for i = 0, #KEYS / 4 - 1 do
  local k, a = i * 4, 3 + i * 3
  if redis.call('SET', KEYS[k + 1], '1', 'NX', 'EX', ttl) then
    if ARGV[a + 1] ~= '' then
      redis.call('RPUSH', KEYS[k + 2], ARGV[a])
      redis.call('LTRIM', KEYS[k + 2], -cap, -1)
      redis.call('EXPIRE', KEYS[k + 2], ttl)
      redis.call('INCR', KEYS[k + 3])
      redis.call('EXPIRE', KEYS[k + 3], ttl)
      if ARGV[a + 2] ~= '' then
        redis.call('SET', KEYS[k + 4], ARGV[a + 1], 'EX', ttl)
      end
    end
  else
    seen = seen + 1
  end
end
return seen
"""

# KEYS[1]: the visitor's pointer (read when ARGV[2] is ''). ARGV: prefix, session key or '',
# the session key the caller holds events of, and how many it holds.
# Returns {session key, count, replace (0/1), payloads...}, or {} when there is no session.
_READ = """
local key = ARGV[2]
if key == '' then
  key = redis.call('GET', KEYS[1])
  if not key then return {} end
end
local list, counter = ARGV[1] .. 's:' .. key, ARGV[1] .. 'n:' .. key
local count = tonumber(redis.call('GET', counter) or '0')
if count == 0 then return {} end
local held, length = 0, redis.call('LLEN', list)
if key == ARGV[3] then held = tonumber(ARGV[4]) end
local result
if held > 0 and held <= count and count - held <= length then
  result = {key, count, 0}
  if count > held then
    for _, event in ipairs(redis.call('LRANGE', list, held - count, -1)) do
      table.insert(result, event)
    end
  end
else
  result = {key, count, 1}
  for _, event in ipairs(redis.call('LRANGE', list, 0, -1)) do table.insert(result, event) end
end
return result
"""

# A sliding window of failures per client (a sorted set of tokens by time), on Redis's clock.
# KEYS[1]: the client's set. ARGV: window (s), max failures, action (fail/undo), token.
# fail: counts the token when the client is under the limit and returns -1, else returns the
# wait in ms (nothing counted), in one step, so concurrent failures cannot overshoot the limit.
# undo: takes back that token's failure (its key was right); returns -1.
_FAILURES = """
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local window = tonumber(ARGV[1]) * 1000
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ms - window)
if ARGV[3] == 'undo' then
  redis.call('ZREM', KEYS[1], ARGV[4])
  return -1
end
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return math.max(tonumber(oldest[2]) + window - ms, 0)
end
redis.call('ZADD', KEYS[1], ms, ARGV[4])
redis.call('PEXPIRE', KEYS[1], window)
return -1
"""

# Token buckets (RateLimiter's) on Redis's clock, taken in turn until one is empty.
# KEYS: a bucket (hash of tokens and time) per limit. ARGV: rate and burst per limit.
# Returns -1 when every bucket gave a token, else {index of the empty one, wait in microseconds}.
_TOKENS = """
local now = redis.call('TIME')
local t = tonumber(now[1]) + tonumber(now[2]) / 1000000
for i, key in ipairs(KEYS) do
  local rate, burst = tonumber(ARGV[2 * i - 1]), tonumber(ARGV[2 * i])
  local held = redis.call('HMGET', key, 'tokens', 'at')
  local tokens = tonumber(held[1]) or burst
  tokens = math.min(burst, tokens + math.max(t - (tonumber(held[2]) or t), 0) * rate)
  local empty = tokens < 1
  if not empty then tokens = tokens - 1 end
  redis.call('HSET', key, 'tokens', string.format('%.17g', tokens), 'at', string.format('%.6f', t))
  redis.call('PEXPIRE', key, math.ceil(burst / rate * 1000) + 1000)  -- full again by then
  if empty then return {i - 1, math.ceil((1 - tokens) / rate * 1000000)} end
end
return -1
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

_EXTEND = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""


def _slim(record: Mapping[str, Any]) -> bytes:
    """What a live session needs of an event, as JSON (times as epoch seconds)."""
    moment = record.get("event_ts")
    if isinstance(moment, datetime):
        moment = moment.timestamp() if moment.tzinfo else (moment - _EPOCH).total_seconds()
    slim: dict[str, Any] = {
        name: record.get(name)
        for name in ("session_id", "user_id", "anonymous_id", "event_type", "event_name")
    }
    slim["event_ts"] = moment if not (isinstance(moment, float) and math.isnan(moment)) else None
    slim["items"] = [
        {name: item.get(name) for name in ("item_id", "category", "brand", "price")}
        for item in record.get("items") or []
        if isinstance(item, Mapping)
    ]
    for name in ("search_query", "filters"):
        if record.get(name):
            slim[name] = record[name]
    properties = record.get("properties")
    if isinstance(properties, Mapping):
        kept = {name: properties[name] for name in ("category", "brand") if name in properties}
        if kept:
            slim["properties"] = kept
    return _encode(slim)


class RedisState(LiveState):
    """Live state in Redis, shared by every server process that names the same URL and prefix.

    Args:
        url: ``redis://HOST:PORT/DB`` (``rediss://`` for TLS; a password in the URL works).
        prefix: prepended to every key (several deployments can share one Redis).
        limiter: the wrong-key limits (``max_failures``, ``window_seconds``); its own
            counters are not used.
        timeout: seconds a command may take before the server goes on without Redis.
    """

    shared = True

    def __init__(
        self, url: str, prefix: str, limiter: FailureLimiter, *, timeout: float = 0.25
    ) -> None:
        self.url = url
        self.prefix = prefix
        self.limiter = limiter
        self.timeout = timeout
        self._client: Redis | None = None
        self._held: OrderedDict[str, int] = OrderedDict()  # session key -> events applied here
        self._latest: OrderedDict[str, str] = OrderedDict()  # visitor -> session key read last
        self._down_until = 0.0
        self._down = False
        self._scripts: dict[str, Any] = {}

    async def start(self) -> None:
        """Create the client (connections are opened on first use)."""
        from redis.asyncio import Redis  # noqa: PLC0415 - an optional dependency
        from redis.asyncio.retry import Retry  # noqa: PLC0415
        from redis.backoff import NoBackoff  # noqa: PLC0415

        self._client = Redis.from_url(
            self.url,
            socket_timeout=self.timeout,
            socket_connect_timeout=self.timeout,
            retry=Retry(NoBackoff(), 0),  # a request never waits for a second try
            health_check_interval=0,
        )
        for name, text in (
            ("observe", _OBSERVE),
            ("read", _READ),
            ("failures", _FAILURES),
            ("tokens", _TOKENS),
            ("release", _RELEASE),
            ("extend", _EXTEND),
        ):
            self._scripts[name] = self._client.register_script(text)

    async def close(self) -> None:
        """Close the client's connections."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    @property
    def available(self) -> bool:
        """Whether Redis answered last time (or the pause after a failure is over)."""
        return not self._down or time.monotonic() >= self._down_until

    async def _run(self, script: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """Run a script; raises StateUnavailableError (logged once per outage) when Redis fails."""
        if self._client is None or not self.available:
            raise StateUnavailableError(redacted(self.url))
        try:
            result = await self._scripts[script](keys=list(keys), args=list(args))
        except _errors() as error:
            self._down_until = time.monotonic() + _RETRY_AFTER
            if not self._down:
                self._down = True
                self._held.clear()  # sessions are read in full once Redis is back
                self._latest.clear()
                logger.warning(
                    "Redis at %s does not answer (%s): serving without live state until it does",
                    redacted(self.url),
                    type(error).__name__,
                )
            raise StateUnavailableError(redacted(self.url)) from error
        if self._down:
            self._down = False
            logger.info("Redis at %s answers again: live state is back", redacted(self.url))
        return result

    def _key(self, kind: str, name: str) -> str:
        return f"{self.prefix}{kind}:{name}"

    # Live sessions

    async def observe(self, ranker: RankerBase, records: Sequence[Mapping[str, Any]]) -> int:
        """Append events not seen before to their sessions' lists (one script).

        The ranker is not touched: a process brings its copy of a session in step when it
        answers for it (:meth:`prepare`). When Redis is down the events are stored but not live.
        """
        del ranker
        keys: list[str] = []
        args: list[Any] = [SESSION_TTL, MAX_EVENTS]
        for record in records:
            key = session_key(record)
            visitor = record.get("user_id") or record.get("anonymous_id")
            keys += [
                self._key("e", f"{record['source']}\x1f{record['event_id']}"),
                self._key("s", key or ""),
                self._key("n", key or ""),
                self._key("v", str(visitor or "")),
            ]
            args += [_slim(record), key or "", str(visitor or "")]
        if not records:
            return 0
        try:
            return int(await self._run("observe", keys, args))
        except StateUnavailableError:
            return 0

    async def prepare(
        self, ranker: RankerBase, user_id: str | None, session_id: str | None
    ) -> None:
        """Read the session's events this process lacks (one script) and apply them.

        The session is ``session_id``'s, else the user's latest. Without Redis, or when Redis
        holds no such session, the ranker answers from the model alone.
        """
        visitor = None if session_id is not None else user_id
        guess = session_id if session_id is not None else self._latest.get(user_id or "")
        held = self._held.get(guess, 0) if guess is not None else 0
        if guess is not None and not ranker.holds_live(guess):
            held = 0
        try:
            found = await self._run(
                "read",
                [self._key("v", visitor or "")],
                [self.prefix, session_id or "", guess or "", held],
            )
        except StateUnavailableError:
            ranker.forget_live(session_id, visitor)
            return
        if not found:
            ranker.forget_live(session_id, visitor)
            if session_id is not None:
                self._held.pop(session_id, None)
            return
        key = found[0].decode() if isinstance(found[0], bytes) else str(found[0])
        count, replace, payloads = int(found[1]), bool(int(found[2])), found[3:]
        # Another request for this session may have applied events while this one waited.
        now = self._held.get(key, 0) if ranker.holds_live(key) else 0
        if replace and now > count:
            payloads = []  # this process holds a newer state already
        elif not replace:
            sent = held if key == guess else 0
            if now < sent:  # dropped meanwhile: read in full next time, answer from the model
                ranker.forget_live(key, visitor)
                self._held.pop(key, None)
                return
            payloads = payloads[now - sent :]
        if payloads or visitor is not None:
            events = [_decode(event) for event in payloads]
            ranker.sync_live(key, events, replace=replace and bool(payloads), visitor=visitor)
        self._held[key] = max(count, now)
        self._held.move_to_end(key)
        while len(self._held) > ranker.max_live_sessions:
            self._held.popitem(last=False)
        if visitor is not None:
            self._latest[visitor] = key
            self._latest.move_to_end(visitor)
            while len(self._latest) > ranker.max_live_sessions:
                self._latest.popitem(last=False)

    # Wrong API keys

    async def _failures(self, client: str, action: str, token: str) -> int:
        """The failures script's answer (see ``_FAILURES``); raises StateUnavailableError."""
        return int(
            await self._run(
                "failures",
                [self._key("f", client)],
                [self.limiter.window_seconds, self.limiter.max_failures, action, token],
            )
        )

    async def failed(self, client: str) -> str:
        """Count a wrong key of ``client`` for every process, if it is under the limit.

        Without Redis, this process counts on its own.

        Raises:
            BlockedError: when ``client`` is at the limit (nothing counted).
        """
        if self.limiter.max_failures <= 0:
            return ""
        token = secrets.token_hex(8)
        try:
            wait = await self._failures(client, "fail", token)
        except StateUnavailableError:
            return self.limiter.failed(client)
        if wait >= 0:
            raise BlockedError(wait / 1000)
        return token

    async def succeeded(self, client: str, token: str) -> None:
        """Take back the failure ``token`` of ``client`` (where it was counted)."""
        self.limiter.succeeded(client, token)  # counted here if Redis was down then
        if self.limiter.max_failures > 0:
            with contextlib.suppress(StateUnavailableError):
                await self._failures(client, "undo", token)

    # Browser rate limits

    async def take(self, limits: Sequence[Limit]) -> tuple[int, float] | None:
        """A token from each bucket in turn, counted over every process (one script).

        Without Redis, this process counts on its own (its limiters' buckets).
        """
        active = [index for index, (limiter, _) in enumerate(limits) if limiter.rate > 0]
        if not active:
            return None
        keys = [self._key("r", f"{limits[i][0].scope}:{limits[i][1]}") for i in active]
        args = [value for i in active for value in (limits[i][0].rate, limits[i][0].burst)]
        try:
            found = await self._run("tokens", keys, args)
        except StateUnavailableError:
            return take_here(limits)
        if not isinstance(found, list):
            return None
        return active[int(found[0])], int(found[1]) / 1_000_000

    # The model version, the default objectives, the refresh lock

    async def get(self, name: str) -> bytes | None:
        """A shared value (``model``, ``objectives``); ``None`` when unset or Redis is down."""
        if self._client is None or not self.available:
            return None
        try:
            value = await self._client.get(self.prefix + name)
        except _errors():  # any Redis failure means: not known now
            return None
        return value.encode() if isinstance(value, str) else value

    async def put(self, name: str, value: bytes | str) -> bool:
        """Set a shared value; ``False`` when Redis is down."""
        if self._client is None:
            return False
        try:
            await self._client.set(self.prefix + name, value)
        except _errors():  # the caller keeps its own value
            return False
        return True

    @contextlib.asynccontextmanager
    async def lock(self, name: str, seconds: float) -> AsyncIterator[LockHandle | None]:
        """Hold the lock ``name`` (a handle to extend it), or ``None`` when another holds it.

        The lock expires after ``seconds`` unless extended, so a holder that dies frees it.
        """
        token = secrets.token_hex(16)
        key = self.prefix + "lock:" + name
        acquired = False
        if self._client is not None and self.available:
            try:
                acquired = bool(await self._client.set(key, token, nx=True, px=int(seconds * 1000)))
            except _errors():  # no Redis: nobody refreshes now
                acquired = False
        if not acquired:
            yield None
            return
        try:
            yield LockHandle(self, key, token, seconds)
        finally:
            with contextlib.suppress(StateUnavailableError):
                await self._run("release", [key], [token])


class LockHandle:
    """A held lock: :meth:`extend` it while the work goes on."""

    def __init__(self, state: RedisState, key: str, token: str, seconds: float) -> None:
        self._state, self._key, self._token, self.seconds = state, key, token, seconds

    async def extend(self) -> bool:
        """Push the expiry ``seconds`` ahead; ``False`` when the lock was lost."""
        try:
            return bool(
                await self._state._run(
                    "extend", [self._key], [self._token, int(self.seconds * 1000)]
                )
            )
        except StateUnavailableError:
            return False


def _errors() -> tuple[type[BaseException], ...]:
    """What a Redis call raises when Redis is down, slow or refuses (redis-py is optional)."""
    from redis.exceptions import RedisError  # noqa: PLC0415

    return (RedisError, OSError)


def redacted(url: str) -> str:
    """The URL without its password."""
    if "@" not in url:
        return url
    scheme, _, rest = url.partition("://")
    return f"{scheme}://***@{rest.rpartition('@')[2]}"


def open_state(url: str | None, prefix: str, limiter: FailureLimiter) -> LiveState:
    """The live state named by ``url`` (``None``: this process only).

    Raises:
        ValueError: for a URL that is not ``redis://``/``rediss://``/``unix://``, or when
            redis-py is not installed.
    """
    if not url:
        return InProcessState(limiter)
    if not url.startswith(("redis://", "rediss://", "unix://")):
        msg = (
            f"state_url must be redis://HOST:PORT/DB (or rediss://, unix://), not {redacted(url)!r}"
        )
        raise ValueError(msg)
    try:
        import redis  # noqa: F401, PLC0415
    except ImportError:
        msg = "state_url needs redis-py: pip install 'clickstream-personalize[redis]'"
        raise ValueError(msg) from None
    return RedisState(url, prefix, limiter)
