"""The depth scan that runs before any JSON parser, against a walk of the parsed value."""

from __future__ import annotations

import asyncio
import json
from typing import Any
from unittest.mock import patch

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from target_personalize.serve import limits
from target_personalize.serve.limits import BodyLimits, Limits, json_depth


def walked_depth(value: Any) -> int:
    """Nesting of lists and dicts in a parsed value, without recursion (deep values too)."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, list | dict):
            deepest = max(deepest, depth)
            stack.extend(
                (child, depth + 1) for child in (item.values() if isinstance(item, dict) else item)
            )
    return deepest


def nested(depth: int, inner: str = "1") -> str:
    """``depth`` arrays and objects, alternating, around ``inner``."""
    text = inner
    for level in range(depth):
        text = f'{{"k{level}": {text}}}' if level % 2 else f"[{text}]"
    return text


TRICKY = [
    '{"a": [1, {"b": "[[[{{{"}]}',  # brackets inside a string
    '["\\"[[[", "\\\\", [[]]]',  # escaped quote, escaped backslash
    '["\\\\\\"[", [["\\\\"]], "\\\\\\\\"]',  # a backslash run then an escaped quote
    '["\\u005b\\u007b", {"\\"}": ["]]]"]}]',  # escapes of brackets; a key with a quote and brace
    '"no brackets"',
    "[]",
    "{}",
    "3",
    '[{"x": "\\n\\"\\\\"}, [{}], "]"]',
    nested(32),  # exactly at the default limit
    nested(33),  # one over
    nested(500, '"[[[\\"{{{"'),
    "[" + ",".join(["[" * 500 + '"]]]["' + "]" * 500] * 5) + "]",  # many brackets: numpy
    json.dumps([{"items": [{"id": f"i{n}" + '\\"]'}]} for n in range(3000)]),  # numpy, strings
]


@pytest.mark.parametrize("few", [limits._FEW_BRACKETS, 0], ids=["python-or-numpy", "numpy"])
@pytest.mark.parametrize("text", TRICKY, ids=range(len(TRICKY)))
def test_json_depth_is_the_depth_of_the_parsed_value(text: str, few: int) -> None:
    with patch.object(limits, "_FEW_BRACKETS", few):  # 0: every body is added up with numpy
        assert json_depth(text.encode()) == walked_depth(json.loads(text))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet='"\\[]{}/ab\n\u00e9\u2028'),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(alphabet='"\\[]{}a'), children, max_size=4)
    ),
    max_leaves=60,
)


@settings(max_examples=300, deadline=None)
@given(
    value=json_values,
    ensure_ascii=st.booleans(),
    indent=st.sampled_from([None, 0, 2]),
    few=st.sampled_from([limits._FEW_BRACKETS, 0]),
)
def test_json_depth_agrees_with_the_walk_on_generated_bodies(
    value: Any, ensure_ascii: bool, indent: int | None, few: int
) -> None:
    text = json.dumps(value, ensure_ascii=ensure_ascii, indent=indent)
    with patch.object(limits, "_FEW_BRACKETS", few):
        assert json_depth(text.encode()) == walked_depth(value)


async def _status(limit: int, body: bytes) -> int:
    """What BodyLimits answers a POST of ``body`` (200: passed on to the app)."""
    sent: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "headers": []}
    await BodyLimits(app, Limits(max_json_depth=limit))(scope, receive, send)
    return int(sent[0]["status"])


def test_a_body_exactly_at_the_depth_limit_passes_and_one_deeper_is_refused() -> None:
    at_limit = nested(32, '"[{[{"').encode()
    assert asyncio.run(_status(32, at_limit)) == 200
    assert asyncio.run(_status(31, at_limit)) == 422
    assert asyncio.run(_status(32, nested(33).encode())) == 422
