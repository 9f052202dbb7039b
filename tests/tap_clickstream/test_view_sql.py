"""The views' event typing in SQL, run on DuckDB, against the tap's EventTypeMapper."""

from __future__ import annotations

import duckdb

from tap_clickstream.events import EventTypeMapper
from tap_clickstream.view_sql import event_type_sql, quote

EVENT_MAP = {"Saw Test": "Experiment Exposure", "checkout done": "begin_checkout",
             "Order Completed": "refund"}  # fmt: skip
NAMES = [
    "Saw Test",  # by raw name
    "saw test", "SAW-TEST",  # by snake_case key
    "Checkout Done", "checkout_done",  # the map's key normalised
    "Order Completed", "order completed",  # the map before the crosswalk
    "Product Viewed", "add_to_cart", "experiment_viewed",  # the crosswalk
    "custom thing",  # neither: its key
]  # fmt: skip


def types_in_sql(names: list[str], event_map: dict[str, str] | None) -> list[str]:
    rows = " UNION ALL ".join(f"SELECT {n} AS i, {quote(name)} AS name" for n, name in
                              enumerate(names))  # fmt: skip
    sql = f"SELECT {event_type_sql('name', event_map)} FROM ({rows}) ORDER BY i"
    return [kind for (kind,) in duckdb.sql(sql).fetchall()]


def test_sql_types_events_as_the_tap_does() -> None:
    for event_map in (EVENT_MAP, None):
        assert types_in_sql(NAMES, event_map) == list(map(EventTypeMapper(event_map), NAMES))
    assert types_in_sql(NAMES[:7], EVENT_MAP) == [
        "experiment_exposure", "experiment_exposure", "experiment_exposure", "begin_checkout",
        "begin_checkout", "refund", "refund",
    ]  # fmt: skip


def test_camel_case_is_where_sql_and_the_tap_differ() -> None:
    # Documented: SQL's key does not split camelCase.
    assert types_in_sql(["OrderCompleted"], None) == ["ordercompleted"]
    assert EventTypeMapper()("OrderCompleted") == "purchase"
