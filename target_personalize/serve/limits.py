"""Size and depth limits on request bodies, checked before anything big is parsed or stored.

:class:`BodyLimits` is an ASGI middleware: a body whose ``Content-Length`` exceeds
``max_body_bytes`` is answered 413 before it is read, a streamed one is counted and cut at the
limit, and a JSON body nested deeper than ``max_json_depth`` is answered 422 before any JSON
parser (each recursive) sees it. :func:`event_problems` checks one event of POST /v1/events
against ``max_event_bytes`` and ``max_property_bytes``. Each answer names the setting.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import accumulate
from typing import Any

import msgspec
import numpy as np
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["BodyLimits", "Limits", "event_problems", "json_depth"]

_encode = msgspec.json.Encoder().encode
#: Every byte but quotes and brackets (what ``bytes.translate`` deletes).
_NOT_MARKS = bytes(c for c in range(256) if c not in b'"[]{}')
#: How each byte changes the depth.
_STEP = [0] * 256
_STEP[ord("[")] = _STEP[ord("{")] = 1
_STEP[ord("]")] = _STEP[ord("}")] = -1
_STEPS = np.array(_STEP, dtype=np.int64)
#: Brackets up to which :func:`json_depth` adds the steps up in Python (above: numpy).
_FEW_BRACKETS = 4096


@dataclass(frozen=True)
class Limits:
    """What a request may hold (each a ``personalize serve`` option and a setting).

    Attributes:
        max_body_bytes: a request body (413 above it).
        max_event_bytes: one event of POST /v1/events, as JSON (413 above it).
        max_property_bytes: one value of an event's ``properties``, as JSON (422 above it).
        max_json_depth: nesting of arrays and objects in a JSON body (422 above it).
    """

    max_body_bytes: int = 10 << 20
    max_event_bytes: int = 256 << 10
    max_property_bytes: int = 64 << 10
    max_json_depth: int = 32


def json_depth(data: bytes) -> int:
    """The deepest nesting of ``[`` and ``{`` in JSON text, brackets inside strings ignored.

    Without recursion and without parsing: escapes are dropped with ``bytes.replace`` (pairs
    of backslashes, then the escaped quotes left), everything but quotes and brackets with
    ``bytes.translate``; brackets after an odd number of quotes are inside a string. Many
    brackets are added up with numpy, so 100,000 opening brackets cost milliseconds, not a
    stack overflow. Malformed JSON gets a number too (the parser refuses it afterwards).
    """
    plain = data.replace(b"\\\\", b"").replace(b'\\"', b"") if b"\\" in data else data
    marks = plain.translate(None, _NOT_MARKS)
    outside = b"".join(marks.split(b'"')[::2])
    if len(outside) <= _FEW_BRACKETS:
        return max(accumulate(map(_STEP.__getitem__, outside), initial=0))
    steps = _STEPS[np.frombuffer(outside, dtype=np.uint8)]
    return int(np.cumsum(steps).max(initial=0))


def event_problems(raw: dict[str, Any], limits: Limits) -> list[tuple[list[str | int], str]]:
    """Where one event breaks ``max_event_bytes`` or ``max_property_bytes``, and how.

    Returns (path below the event, message) pairs; empty when the event is within limits.
    """
    size = len(_encode(raw))
    if size > limits.max_event_bytes:
        return [
            (
                [],
                f"the event is {size} bytes of JSON, over max_event_bytes="
                f"{limits.max_event_bytes}: send big payloads elsewhere and a reference here",
            )
        ]
    properties = raw.get("properties")
    if not isinstance(properties, dict):
        return []
    found: list[tuple[list[str | int], str]] = []
    for name, value in properties.items():
        length = len(_encode(value))
        if length > limits.max_property_bytes:
            found.append(
                (
                    ["properties", name],
                    f"property {name!r} is {length} bytes of JSON, over max_property_bytes="
                    f"{limits.max_property_bytes}",
                )
            )
    return found


class _TooLargeError(Exception):
    pass


class BodyLimits:
    """ASGI middleware enforcing ``max_body_bytes`` and ``max_json_depth`` on every request.

    The body is read (up to the limit) before the app sees it, and handed on whole.

    Args:
        app: the wrapped app.
        limits: the limits.
    """

    def __init__(self, app: ASGIApp, limits: Limits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer 413 or 422 for a body over the limits, else pass the request on."""
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        limit = self.limits.max_body_bytes
        too_large = (
            f"the request body is over max_body_bytes={limit}: send fewer events per request"
        )
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _answer(send, 413, ["body"], too_large)
            return
        try:
            body = await _read(receive, limit)
        except _TooLargeError:
            await _answer(send, 413, ["body"], too_large)
            return
        depth_limit = self.limits.max_json_depth
        if body and json_depth(body) > depth_limit:
            message = (
                f"the JSON body is nested deeper than max_json_depth={depth_limit}: "
                "flatten the properties"
            )
            await _answer(send, 422, ["body"], message)
            return
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


async def _read(receive: Receive, limit: int) -> bytes:
    parts: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _TooLargeError
        parts.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(parts)


async def _answer(send: Send, status: int, loc: list[str | int], msg: str) -> None:
    kind = "too_large" if status == 413 else "too_deep"
    body = _encode({"detail": [{"loc": loc, "msg": msg, "type": kind}]})
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
