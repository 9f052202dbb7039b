"""SQL pieces the canonical views share (written in DuckDB's SQL, transpiled by sqlglot)."""

from __future__ import annotations

from tap_clickstream.events import BUILTIN_CROSSWALK

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


def event_type_sql(name: str) -> str:
    """SQL mapping the raw name in ``name`` to its canonical type by the built-in crosswalk."""
    key = snake_sql(name)
    cases = "".join(
        f" WHEN {quote(raw)} THEN {quote(kind)}"
        for raw, kind in sorted(BUILTIN_CROSSWALK.items())
        if raw != kind
    )
    return f"CASE {key}{cases} ELSE {key} END"
