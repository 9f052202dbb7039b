"""The depth scan that runs before any JSON parser."""

from __future__ import annotations

from target_personalize.serve.limits import json_depth


def test_json_depth_ignores_brackets_in_strings() -> None:
    assert json_depth(b'{"a": [1, {"b": "[[[{{{"}]}') == 3
    assert json_depth(b'["\\"[[[", "\\\\", [[]]]') == 3  # escaped quote, escaped backslash
    assert json_depth(b'"no brackets"') == 0
    assert json_depth(b"[" * 40) == 40
