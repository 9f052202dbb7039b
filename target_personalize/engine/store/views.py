"""SQL views over the store that the funnel miner and the rankers share.

They run unchanged on DuckDB and PostgreSQL (and on Snowflake once transpiled, see
:mod:`~target_personalize.engine.store.snowflake`), except the unnesting of ``items``, written
per dialect. Times are naive UTC ``TIMESTAMP``s.
"""

from __future__ import annotations

from typing import Literal

from target_personalize.engine.store.columns import EVENT_COLUMNS

__all__ = ["DEFAULT_SESSION_GAP_MINUTES", "event_items_sql", "sessionized_events_sql"]

Dialect = Literal["duckdb", "postgresql", "snowflake"]

#: Inactivity that ends a derived session (sources without session ids, e.g. Mixpanel).
DEFAULT_SESSION_GAP_MINUTES = 30


def sessionized_events_sql(
    gap_minutes: int = DEFAULT_SESSION_GAP_MINUTES, events: str = "events"
) -> str:
    """A SELECT of raw (non-aggregate) events of ``events`` with two more columns.

    ``events`` is the store's table or a relation with its columns (a canonical view over a
    warehouse's events, see :attr:`EventStore.events_table`).

    ``visitor``: the known user, else the device or cookie id, else the session id.
    ``session_key``: the source's session id where it has one; otherwise the visitor plus the
    number of the session derived by ``gap_minutes`` of inactivity (``visitor#n``). Only events
    without a session id go through the window functions, which keeps the view cheap for
    sources that send sessions.
    """
    gap = int(gap_minutes)
    columns = ", ".join([*EVENT_COLUMNS, "loaded_at"])
    window = "PARTITION BY visitor ORDER BY event_ts, event_id"
    based = f"SELECT e.*, coalesce(user_id, anonymous_id, session_id) AS visitor FROM {events} e"
    return f"""
SELECT {columns}, visitor, session_id AS session_key
FROM ({based} WHERE NOT is_aggregate AND session_id IS NOT NULL) with_session
UNION ALL
SELECT {columns}, visitor, visitor || '#' || CAST(CAST(
        sum(new_session) OVER ({window} ROWS UNBOUNDED PRECEDING) AS BIGINT) AS VARCHAR)
    AS session_key
FROM (
    SELECT based.*, CASE WHEN lag(event_ts) OVER ({window}) IS NULL
        OR event_ts - lag(event_ts) OVER ({window}) > INTERVAL '{gap} minutes'
        THEN 1 ELSE 0 END AS new_session
    FROM ({based} WHERE NOT is_aggregate AND session_id IS NULL) based
) flagged"""


def event_items_sql(dialect: Dialect, where: str = "", events: str = "events") -> str:
    """A SELECT of one row per (event, item), for events of ``events`` that name items.

    Columns: ``source, event_id, item_id, item_name, category, brand, price, quantity``.
    ``where``: an SQL condition on the events' columns that only the events to unnest meet
    (cheaper than filtering the items afterwards). ``events`` is the store's table or a
    relation with its ``source``, ``event_id`` and ``items`` columns.
    """
    also = f" AND ({where})" if where else ""
    if dialect == "duckdb":
        return f"""
SELECT source, event_id, i.item_id AS item_id, i.name AS item_name, i.category AS category,
       i.brand AS brand, i.price AS price, i.quantity AS quantity
FROM (SELECT source, event_id, unnest(items) AS i FROM {events}
      WHERE len(items) > 0{also}) exploded"""
    if dialect == "snowflake":
        # In PostgreSQL's dialect, as every statement: the UNNEST becomes a FLATTEN.
        fields = ", ".join(
            f"CAST(GET_PATH(i.item, '{name}') AS {kind}) AS {alias}"
            for name, kind, alias in (
                ("item_id", "VARCHAR", "item_id"),
                ("name", "VARCHAR", "item_name"),
                ("category", "VARCHAR", "category"),
                ("brand", "VARCHAR", "brand"),
                ("price", "DOUBLE PRECISION", "price"),
                ("quantity", "DOUBLE PRECISION", "quantity"),
            )
        )
        return f"""
SELECT source, event_id, {fields}
FROM {events} CROSS JOIN UNNEST(items) AS i(item)
WHERE ARRAY_SIZE(items) > 0{also}"""
    return f"""
SELECT source, event_id, i ->> 'item_id' AS item_id, i ->> 'name' AS item_name,
       i ->> 'category' AS category, i ->> 'brand' AS brand,
       CAST(i ->> 'price' AS DOUBLE PRECISION) AS price,
       CAST(i ->> 'quantity' AS DOUBLE PRECISION) AS quantity
FROM {events}, jsonb_array_elements(items) AS i
WHERE jsonb_array_length(items) > 0{also}"""
