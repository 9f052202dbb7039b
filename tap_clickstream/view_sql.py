"""SQL pieces the canonical views share (written in DuckDB's SQL, transpiled by sqlglot)."""

from __future__ import annotations

import typing as t

from tap_clickstream.events import BUILTIN_CROSSWALK, snake_case

if t.TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["event_type_sql", "quote", "snake_sql"]


def quote(text: str) -> str:
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def snake_sql(expression: str) -> str:
    """SQL for the snake_case key of a raw name (lower case, spaces and dashes as ``_``).

    Simpler than :func:`tap_clickstream.events.snake_case` (camelCase boundaries and other
    punctuation are kept), so it runs the same on every dialect without regular expressions.
    """
    return f"lower(replace(replace(trim({expression}), ' ', '_'), '-', '_'))"


def event_type_sql(name: str, event_map: Mapping[str, str] | None = None) -> str:
    """SQL mapping the raw name in ``name`` to its canonical type.

    As :class:`tap_clickstream.events.EventTypeMapper` does: the ``event_map`` by exact raw
    name, then by snake_case key, then the built-in crosswalk, else the key itself.
    """
    key = snake_sql(name)
    user = {raw: snake_case(kind) for raw, kind in (event_map or {}).items()}
    by_key = {snake_case(raw): kind for raw, kind in user.items()}
    keyed = {**{raw: kind for raw, kind in BUILTIN_CROSSWALK.items() if raw != kind}, **by_key}
    cases = "".join(f" WHEN {quote(raw)} THEN {quote(kind)}" for raw, kind in sorted(keyed.items()))
    crosswalked = f"CASE {key}{cases} ELSE {key} END"
    if not user:
        return crosswalked
    exact = "".join(
        f" WHEN {name} = {quote(raw)} THEN {quote(kind)}" for raw, kind in sorted(user.items())
    )
    return f"CASE{exact} ELSE {crosswalked} END"
