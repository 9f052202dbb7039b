"""Engine fixtures: an empty store on each backend (DuckDB in memory; PostgreSQL in a fresh schema)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest

from target_personalize.engine import EventStore
from tests.support.postgres import postgres_schema_url

BACKENDS = ["duckdb", pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest.fixture(params=BACKENDS)
def any_store(request: pytest.FixtureRequest) -> Iterator[EventStore]:
    """An empty store, once on DuckDB and once on PostgreSQL (skipped there without a server,
    unless CI=true)."""
    if request.param == "duckdb":
        with EventStore("duckdb:///:memory:") as store:
            yield store
        return
    with postgres_schema_url() as url, EventStore(url) as store:
        yield store


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A PostgreSQL store URL with its own empty schema."""
    with postgres_schema_url() as url:
        yield url


class Journeys:
    """Builds canonical events for hand-made journeys.

    ``add(session, user, (seconds, event_type[, overrides]), ...)`` appends one event per step,
    ``seconds`` after :data:`T0`, with ids in order of addition.
    """

    T0 = "2024-01-01T00:00:00"

    def __init__(self) -> None:
        self.records: list[dict[str, object]] = []

    def add(self, session: str | None, user: str | None, *steps: tuple[object, ...]) -> Journeys:
        start = datetime.fromisoformat(self.T0)
        for step in steps:
            seconds, event_type, *rest = step
            overrides = dict(rest[0]) if rest else {}
            record: dict[str, object] = {
                "source": "test",
                "event_id": f"e{len(self.records):05d}",
                "event_name": event_type,
                "event_type": event_type,
                "event_ts": (start + timedelta(seconds=float(seconds))).isoformat(),  # type: ignore[arg-type]
                "user_id": user,
                "session_id": session,
            }
            record.update(overrides)
            self.records.append(record)
        return self

    def load(self, store: EventStore) -> EventStore:
        result = store.load_events(self.records)
        assert not result.rejects, result.rejects
        return store


@pytest.fixture
def journeys() -> Journeys:
    """A builder of hand-made journeys."""
    return Journeys()
