"""How often a readout reads ``events``: a warehouse bills each scan's columns (docs/scale.md)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest

from target_personalize.engine import EventStore
from target_personalize.engine.experiments import ExperimentError
from target_personalize.engine.experiments.report import readout_from_store
from target_personalize.engine.experiments.sql import read_experiment
from tests.engine.experiments.test_store_readout import _shop


def _events_scans(nodes: list[dict[str, Any]]) -> Iterator[set[str]]:
    """The columns each scan of ``events`` reads, in a DuckDB JSON plan (as the bench reads)."""
    for node in nodes:
        info = node.get("extra_info", {})
        if str(info.get("Table", "")).split(".")[-1] == "events":
            columns = set(info.get("Projections", []))
            yield columns | set(re.findall(r"[a-z_]+", str(info.get("Filters", ""))))
        yield from _events_scans(node.get("children", []))


def _planned_scans(store: EventStore, work: Callable[[], object]) -> list[set[str]]:
    """Run ``work``; the scans of ``events`` in DuckDB's plan of each statement it ran."""
    scans: list[set[str]] = []
    backend = store.backend
    execute, execute_arrays = backend.execute, backend.execute_arrays

    def planned(run: Callable[..., Any]) -> Callable[..., Any]:
        def call(sql: str, params: Sequence[Any] = ()) -> Any:
            if re.search(r"\bevents\b", sql):  # planned before it runs: it may drop a table
                plan = execute(f"EXPLAIN (FORMAT json) {sql}", params)[0][1]
                scans.extend(_events_scans(json.loads(plan)))
            return run(sql, params)

        return call

    backend.execute = planned(execute)  # type: ignore[method-assign]
    backend.execute_arrays = planned(execute_arrays)  # type: ignore[method-assign]
    try:
        work()
    finally:
        backend.execute, backend.execute_arrays = execute, execute_arrays  # type: ignore[method-assign]
    return scans


@pytest.fixture
def shop() -> Iterator[EventStore]:
    with EventStore("duckdb:///:memory:") as store:
        _shop(store)
        yield store


def test_a_readout_reads_each_column_of_events_once(shop: EventStore) -> None:
    # Before: eleven scans (the identity map and the exposures per statement, the key
    # conversions' items three times). Now the identity map once, then every other event the
    # readout needs once; only the two id columns are read by both.
    scans = _planned_scans(shop, lambda: readout_from_store(shop, "exp", min_sample=1))
    assert len(scans) == 2, scans
    identities, picked = scans
    assert identities == {"anonymous_id", "user_id"}
    assert {"event_type", "experiment_id", "variant_id", "rec_id", "items"} <= picked
    assert identities & picked == {"anonymous_id", "user_id"}


def test_the_temporary_tables_are_dropped_even_on_error(shop: EventStore) -> None:
    def temporary() -> list[tuple[Any, ...]]:
        return shop.query(
            "SELECT table_name FROM information_schema.tables WHERE table_name LIKE '_readout%'"
        )

    assert readout_from_store(shop, "exp", min_sample=1)["variants"]
    assert temporary() == []
    with pytest.raises(ExperimentError, match="'engine'"):
        read_experiment(shop, "exp", ("control", "other"))
    assert temporary() == []
