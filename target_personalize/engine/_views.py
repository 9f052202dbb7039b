"""SQL views over the store that the funnel miner and the rankers share.

Both run unchanged on DuckDB and PostgreSQL. Times are naive UTC ``TIMESTAMP``s.
"""

from __future__ import annotations

from typing import Literal

__all__ = ["DEFAULT_SESSION_GAP_MINUTES", "event_items_sql", "sessionized_events_sql"]

Dialect = Literal["duckdb", "postgresql"]

#: Inactivity that ends a derived session (sources without session ids, e.g. Mixpanel).
DEFAULT_SESSION_GAP_MINUTES = 30


def sessionized_events_sql(gap_minutes: int = DEFAULT_SESSION_GAP_MINUTES) -> str:
    """A SELECT of raw (non-aggregate) events with two more columns.

    ``visitor``: the known user, else the device or cookie id, else the session id.
    ``session_key``: the source's session id where it has one; otherwise the visitor plus the
    number of the session derived by ``gap_minutes`` of inactivity (``visitor#n``).
    """
    gap = int(gap_minutes)
    order = "ORDER BY event_ts, event_id"
    part = "PARTITION BY visitor, session_id IS NULL"
    return f"""
SELECT sessionized.* FROM (
    SELECT flagged.*,
        coalesce(session_id, visitor || '#' || CAST(
            sum(new_session) OVER ({part} {order} ROWS UNBOUNDED PRECEDING) AS VARCHAR
        )) AS session_key
    FROM (
        SELECT based.*,
            CASE WHEN session_id IS NULL AND (
                lag(event_ts) OVER ({part} {order}) IS NULL
                OR event_ts - lag(event_ts) OVER ({part} {order}) > INTERVAL '{gap} minutes'
            ) THEN 1 ELSE 0 END AS new_session
        FROM (
            SELECT events.*, coalesce(user_id, anonymous_id, session_id) AS visitor
            FROM events WHERE NOT is_aggregate
        ) based
    ) flagged
) sessionized"""


def event_items_sql(dialect: Dialect) -> str:
    """A SELECT of one row per (event, item), for events that name items.

    Columns: ``source, event_id, item_id, item_name, category, brand, price, quantity``.
    """
    if dialect == "duckdb":
        return """
SELECT source, event_id, i.item_id AS item_id, i.name AS item_name, i.category AS category,
       i.brand AS brand, i.price AS price, i.quantity AS quantity
FROM (SELECT source, event_id, unnest(items) AS i FROM events WHERE len(items) > 0) exploded"""
    return """
SELECT source, event_id, i ->> 'item_id' AS item_id, i ->> 'name' AS item_name,
       i ->> 'category' AS category, i ->> 'brand' AS brand,
       CAST(i ->> 'price' AS DOUBLE PRECISION) AS price,
       CAST(i ->> 'quantity' AS DOUBLE PRECISION) AS quantity
FROM events, jsonb_array_elements(items) AS i
WHERE jsonb_array_length(items) > 0"""
