"""The Snowflake store on fakesnow (the connector's API over DuckDB): loads, funnels, readouts.

Each result is compared with the same work on a DuckDB store. fakesnow proves the statements
parse and run as fakesnow emulates Snowflake; docs/store.md says what it cannot prove.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import fakesnow
import numpy as np
import pytest
import snowflake.connector

from target_personalize.engine import EventStore, StoreError, discover_funnel, explicit_funnel
from target_personalize.engine.experiments.report import readout_from_store
from target_personalize.engine.ranking.interactions import interactions_from_store
from target_personalize.engine.store.snowflake import snowflake_params
from target_personalize.target import TargetPersonalize
from tests.engine.experiments.test_store_readout import _shop
from tests.engine.funnel.test_funnels import BUY, CART, VIEW, assert_same, generated_records
from tests.support.events import event
from tests.target_personalize.test_target import SCHEMA

pytestmark = [
    pytest.mark.filterwarnings("ignore::UserWarning"),  # fakesnow's note on Arrow copies
    # fakesnow's write_pandas selects object columns the way pandas 4 will change
    pytest.mark.filterwarnings("ignore:For backward compatibility, 'str' dtypes"),
]

URL = "snowflake://me:hunter2@account/analytics/shop?warehouse=wh"


@pytest.fixture
def snowflake_store() -> Iterator[EventStore]:
    """A store in a fresh fakesnow database."""
    with fakesnow.patch(), EventStore(URL) as store:
        yield store


def _event(event_id: str, event_type: str, minute: int, **fields: Any) -> dict[str, Any]:
    return {
        "source": "web",
        "event_id": event_id,
        "event_name": event_type,
        "event_ts": f"2025-01-01T00:{minute:02d}:00Z",
        "session_id": "s1",
        "anonymous_id": "a1",
        **fields,
    }


def test_the_store_creates_its_tables(snowflake_store: EventStore) -> None:
    tables = {
        str(row[0]).lower()
        for row in snowflake_store.query(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
        )
    }
    assert tables >= {
        "events", "items", "rejects", "experiments", "exposures", "impressions",
        "impression_items",
    }  # fmt: skip


def test_loading_a_batch_twice_stores_it_once(snowflake_store: EventStore) -> None:
    batch = [
        _event("e1", "page_view", 1, items=[{"item_id": "i1", "price": 2.5}]),
        _event("e2", "page_view", 2),
        _event("e2", "add_to_cart", 3, items=[{"item_id": "i2", "quantity": 2}]),  # later
    ]
    assert snowflake_store.load_events(batch).loaded == 3
    snowflake_store.load_events(batch)
    rows = snowflake_store.query("SELECT event_id, event_type, items FROM events ORDER BY event_id")
    assert [(r[0], r[1]) for r in rows] == [("e1", "page_view"), ("e2", "add_to_cart")]
    # Item lists are VARIANT, read back as Python values.
    assert rows[1][2][0]["item_id"] == "i2"
    assert rows[1][2][0]["quantity"] == 2
    summary = snowflake_store.summary()
    assert (summary.events, summary.items, summary.sessions) == (2, 2, 1)


def test_a_newer_version_replaces_the_stored_event(snowflake_store: EventStore) -> None:
    snowflake_store.load_events([_event("e1", "page_view", 1)])
    snowflake_store.load_events([_event("e1", "purchase", 1, revenue=9.5)])
    assert snowflake_store.query("SELECT event_type, revenue FROM events") == [("purchase", 9.5)]


def test_items_merge_and_rejects_append(snowflake_store: EventStore) -> None:
    snowflake_store.load_items([{"item_id": "i1", "title": "Mug", "properties": {"a": 1}}])
    snowflake_store.load_items([{"item_id": "i1", "price": 3}, {"item_id": "i2", "title": "Cup"}])
    rows = snowflake_store.query("SELECT item_id, title, price, properties FROM items ORDER BY 1")
    assert rows == [("i1", "Mug", 3.0, {"a": 1}), ("i2", "Cup", None, None)]
    bad = {"source": "web", "event_id": "x", "event_ts": "not a time", "event_name": "v"}
    for _ in range(2):
        assert snowflake_store.load_events([bad]).rejected == 1
    rejects = snowflake_store.query("SELECT field, record FROM rejects")
    assert [r[0] for r in rejects] == ["event_ts", "event_ts"]
    assert rejects[0][1]["event_id"] == "x"


@pytest.mark.xfail(
    strict=True,
    reason="fakesnow runs a MERGE as several DuckDB statements that write its own catalog, "
    "another DuckDB database: inside an explicit transaction DuckDB refuses that. On "
    "Snowflake the MERGE and the rejects' INSERT commit together.",
)
def test_a_batch_with_rejects_loads_in_one_transaction(snowflake_store: EventStore) -> None:
    result = snowflake_store.load_events([_event("e1", "page_view", 1), {"source": "web"}])
    assert (result.loaded, result.rejected) == (1, 1)


def test_the_target_loads_into_snowflake(capsys: pytest.CaptureFixture[str]) -> None:
    messages: list[dict[str, Any]] = [SCHEMA]
    for n in [*range(25), *range(20, 40)]:  # a lookback overlap
        messages.append({"type": "RECORD", "stream": "file_events", "record": event(n)})
    messages.append({"type": "STATE", "value": {"bookmarks": {"file_events": {"n": 40}}}})
    with fakesnow.patch():
        target = TargetPersonalize(
            config={"database_url": URL, "batch_size_rows": 10}, parse_env_config=False
        )
        target.listen(file_input=io.StringIO("".join(json.dumps(m) + "\n" for m in messages)))
        with EventStore(URL) as store:
            stored = store.query("SELECT count(*), count(DISTINCT event_id) FROM events")
    assert stored == [(40, 40)]
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["bookmarks"]["file_events"]


def test_funnels_equal_duckdb_s() -> None:
    records = generated_records()
    with (
        fakesnow.patch(),
        EventStore(URL) as snow,
        EventStore("duckdb:///:memory:") as duck,
    ):
        snow.load_events(records)
        duck.load_events(records)
        for unit in ("session", "user"):
            for order in ("loose", "strict"):
                for steps in ([VIEW, CART, BUY], [VIEW, VIEW, "search", BUY]):
                    for window in (timedelta(hours=6), None):
                        expected = explicit_funnel(
                            duck, steps, unit=unit, order=order, window=window
                        )
                        found = explicit_funnel(snow, steps, unit=unit, order=order, window=window)
                        assert expected.entered > 10
                        assert_same(found.as_dict(), expected.as_dict())


@pytest.mark.xfail(
    strict=True,
    reason="fakesnow runs Snowflake's ARRAY_AGG as DuckDB's list(), which keeps the NULLs "
    "Snowflake drops (sqlglot writes FILTER as ARRAY_AGG(IFF(..., NULL))), so discovered "
    "paths differ under fakesnow only",
)
def test_discovered_funnels_equal_duckdb_s() -> None:
    records = generated_records()
    with (
        fakesnow.patch(),
        EventStore(URL) as snow,
        EventStore("duckdb:///:memory:") as duck,
    ):
        snow.load_events(records)
        duck.load_events(records)
        expected = discover_funnel(duck, BUY, min_share=0.2)
        assert_same(discover_funnel(snow, BUY, min_share=0.2).as_dict(), expected.as_dict())


def test_experiment_readout_equals_duckdb_s() -> None:
    with (
        fakesnow.patch(),
        EventStore(URL) as snow,
        EventStore("duckdb:///:memory:") as duck,
    ):
        _shop(snow)
        _shop(duck)
        expected = readout_from_store(duck, "exp", min_sample=1)
        found = readout_from_store(snow, "exp", min_sample=1)
    assert expected["variants"]
    assert_same(found, expected)


def test_the_rankers_training_read_equals_duckdb_s() -> None:
    records = [
        {**r, "items": [{"item_id": f"i{n % 17}", "price": float(n % 5)}]}
        for n, r in enumerate(generated_records(sessions=60))
    ]
    with (
        fakesnow.patch(),
        EventStore(URL) as snow,
        EventStore("duckdb:///:memory:") as duck,
    ):
        snow.load_events(records)
        duck.load_events(records)
        expected = interactions_from_store(duck)
        found = interactions_from_store(snow)
    assert len(expected) == len(records)
    for name, values in expected.arrays().items():
        np.testing.assert_array_equal(found.arrays()[name], values, err_msg=name)


@pytest.mark.parametrize(
    ("sql", "params", "expected"),
    [
        (
            "INSERT INTO experiments (experiment_id, definition) VALUES (%s, %s)",
            ["e", "{}"],
            "INSERT INTO experiments (experiment_id, definition) SELECT ?, PARSE_JSON(?)",
        ),
        (
            "SELECT a.ts - INTERVAL '1 second' * p.pre_s, b.ts + %s FROM a, p, b",
            [timedelta(hours=6)],
            "SELECT DATEADD(SECOND, -(p.pre_s), a.ts), DATEADD(MICROSECOND, ?, b.ts) FROM a, p, b",
        ),
        (
            "SELECT DISTINCT ON (r.unit) p.*, r.ts FROM r JOIN p ON r.unit = p.unit "
            "ORDER BY r.unit, r.pos",
            [],
            "SELECT p.*, r.ts FROM r JOIN p ON r.unit = p.unit QUALIFY ROW_NUMBER() OVER "
            "(PARTITION BY r.unit ORDER BY r.unit, r.pos) = 1 ORDER BY r.unit, r.pos",
        ),
    ],
    ids=["variant-values", "durations", "distinct-on"],
)
def test_statements_are_rewritten_where_snowflake_differs(
    sql: str, params: list[Any], expected: str
) -> None:
    # What fakesnow accepts either way: DuckDB multiplies intervals, parses JSON text bound to
    # a JSON column, and sqlglot's DISTINCT ON rewrite keeps a stray _row_number in p.*.
    assert snowflake_params(sql, params)[0] == expected
    assert snowflake_params(sql, params)[1] == [
        6 * 3600 * 10**6 if isinstance(p, timedelta) else p for p in params
    ]


def test_the_password_is_never_shown(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def refuse(**kwargs: Any) -> None:
        raise snowflake.connector.DatabaseError(f"login for {kwargs['password']} refused")

    monkeypatch.setattr(snowflake.connector, "connect", refuse)
    with pytest.raises(StoreError) as raised:
        EventStore(URL)
    assert "hunter2" not in str(raised.value)
    assert "me:***@account/analytics/shop" in str(raised.value)
    monkeypatch.undo()
    with caplog.at_level(logging.DEBUG), fakesnow.patch(), EventStore(URL) as store:
        store.load_events([_event("e1", "page_view", 1)])
        explicit_funnel(store, ["page_view"])
    assert caplog.records
    assert "hunter2" not in caplog.text
