"""The training window (issue 15: "ranker fit on the latest 30 days"): events outside it never
reach the model, and the window is measured back from the store's latest event."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import click
import pytest
from click.testing import CliRunner

from target_personalize.commands.ranking import fit
from target_personalize.engine import (
    EventStore,
    SessionRanker,
    load_ranker,
    refresh_ranker,
    save_ranker,
)
from target_personalize.engine.exceptions import RankerError
from target_personalize.engine.ranking.interactions import (
    interactions_from_store,
    to_epoch,
    training_window_start,
)
from tests.support.events import event

# Long before the tests run: a window measured from the clock would hold nothing.
LATEST = datetime(2024, 6, 30, 12, 0)


def _view(n: int, session: str, item: str, days_back: float) -> dict[str, Any]:
    at = LATEST - timedelta(days=days_back)
    return event(
        n,
        session_id=session,
        user_id=f"u-{session}",
        event_ts=at.isoformat() + "Z",
        items=[{"item_id": item, "price": 5.0}],
    )


def _events(days_back: float = 0.0) -> list[dict[str, Any]]:
    """Two old sessions (60 days back), two recent ones, and one the 30-day window cuts."""
    views = [
        ("old1", "old-a", 60),
        ("old1", "old-b", 60),
        ("old2", "old-a", 61),
        ("new1", "new-a", 10),
        ("new1", "new-b", 10),
        ("new2", "new-b", 1),
        ("new2", "new-c", 0),  # the store's latest event
        ("cut", "old-c", 30.5),  # outside the window
        ("cut", "new-a", 29.5),  # inside
    ]
    return [
        _view(n, session, item, back + days_back) for n, (session, item, back) in enumerate(views)
    ]


@pytest.fixture
def shop(store_url: str) -> str:
    """The events in a DuckDB store, or a PostgreSQL one."""
    with EventStore(store_url) as store:
        store.load_events(_events())
    return store_url


def test_the_window_starts_days_back_from_the_latest_event_not_the_clock(shop: str) -> None:
    with EventStore(shop) as store:
        assert training_window_start(store, 30) == LATEST - timedelta(days=30)
        assert training_window_start(store, 0.5) == LATEST - timedelta(hours=12)
        for bad in (0, -1, float("nan")):
            with pytest.raises(RankerError, match="positive number of days"):
                training_window_start(store, bad)
    with EventStore("duckdb:///:memory:") as empty:
        assert training_window_start(empty, 30) is None


def test_events_outside_the_window_do_not_reach_the_model(shop: str) -> None:
    with EventStore(shop) as store:
        windowed = SessionRanker(random_state=0).fit(store, train_window_days=30)
        everything = SessionRanker(random_state=0).fit(store)
        since = training_window_start(store, 30)
        assert since is not None
        read = interactions_from_store(store, since=since)
    data = windowed.data
    assert windowed.train_window_days == 30
    assert len(data) == len(read) == 5  # new1 (2), new2 (2), cut's event inside the window
    assert sorted(data.session_keys) == ["cut", "new1", "new2"]
    assert sorted({str(i) for i in data.items.item_ids[data.item]}) == ["new-a", "new-b", "new-c"]
    assert data.ts.min() == to_epoch(LATEST - timedelta(days=29.5))
    # The old items are not even in the vocabulary: nothing of them reaches the model.
    assert not {"old-a", "old-b", "old-c"} & {str(i) for i in windowed.items.item_ids}
    assert everything.train_window_days is None
    assert len(everything.data) == 9
    assert "old-a" in {str(i) for i in everything.items.item_ids}


def test_a_windowed_model_keeps_its_window_saved_and_moves_it_when_updated(shop: str) -> None:
    with EventStore(shop) as store:
        ranker = SessionRanker(random_state=0).fit(store, train_window_days=30)
        save_ranker(ranker, store)
        loaded = load_ranker(store)
        assert loaded is not None and loaded.train_window_days == 30
        # 21 days later: the sessions of 10 and 29.5 days back leave the window.
        later = [
            {**e, "event_id": f"later-{e['event_id']}", "session_id": f"later-{e['session_id']}"}
            for e in _events(-21)
        ]
        store.load_events(later[3:7])  # later-new1 (10 days before its latest), later-new2
        loaded.update(store)
    assert sorted(loaded.data.session_keys) == ["later-new1", "later-new2", "new2"]
    assert loaded.train_window_days == 30


def test_the_target_setting_refits_a_saved_model_on_the_window(shop: str) -> None:
    # What target-personalize does after a load with `train_window_days: 30`.
    with EventStore(shop) as store:
        save_ranker(SessionRanker(random_state=0).fit(store), store)
        refreshed = refresh_ranker(store, train_window_days=30)
        assert refreshed is not None and len(refreshed.data) == 5
        saved = load_ranker(store)
        assert saved is not None and saved.train_window_days == 30 and len(saved.data) == 5
        # No setting: the model keeps its window.
        kept = refresh_ranker(store)
        assert kept is not None and kept.train_window_days == 30


def test_interactions_and_a_window_are_refused_together(shop: str) -> None:
    with EventStore(shop) as store:
        data = interactions_from_store(store)
    with pytest.raises(RankerError, match="applies to a store"):
        SessionRanker().fit(data, train_window_days=30)


def test_personalize_fit_trains_on_the_latest_days(shop: str) -> None:
    group = click.Group(commands={"fit": fit})
    runner = CliRunner()
    args = ["fit", "--database-url", shop, "--format", "json"]
    result = runner.invoke(group, [*args, "--train-window-days", "30"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["events"], summary["sessions"], summary["train_window_days"]) == (5, 3, 30)
    whole = json.loads(runner.invoke(group, args).stdout)
    assert (whole["events"], whole["train_window_days"]) == (9, None)
    refused = runner.invoke(group, [*args, "--train-window-days", "0"])
    assert refused.exit_code == 2 and "--train-window-days" in refused.output
