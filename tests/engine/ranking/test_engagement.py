"""The engagement dial: relevance x the item's mean engagement, with known orderings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from target_personalize.commands.ranking import fit, recommend
from target_personalize.engine import EventStore, Objectives, SessionRanker, load_ranker
from target_personalize.engine.ranking.interactions import ItemTable


def _events(signal: str | None, long_value: float, short_value: float) -> list[dict[str, Any]]:
    """20 sessions view "x" then "short", 10 view "x" then "long".

    So relevance after "x" puts "short" first (twice the co-views). ``signal`` (a column
    name) carries ``long_value`` on views of "long" and ``short_value`` on views of "short".
    """
    events: list[dict[str, Any]] = []
    for n in range(30):
        item = "short" if n < 20 else "long"
        for step, viewed in enumerate(("x", item)):
            event: dict[str, Any] = {
                "source": "test",
                "event_id": f"e{n}-{step}",
                "event_name": "product_view",
                "event_type": "product_view",
                "event_ts": f"2024-05-01T{10 + n // 6:02d}:{(n % 6) * 10:02d}:{step * 5:02d}Z",
                "session_id": f"s{n}",
                "items": [{"item_id": viewed}],
            }
            if signal is not None and viewed != "x":
                event[signal] = long_value if viewed == "long" else short_value
            events.append(event)
    return events


def _store(tmp_path: Path, events: list[dict[str, Any]]) -> str:
    url = f"duckdb:///{tmp_path / 'media.duckdb'}"
    with EventStore(url) as store:
        assert not store.load_events(events).rejects
    return url


def _order(ranker: SessionRanker, objectives: Objectives) -> list[str]:
    ranker.observe({"session_id": "q", "event_type": "product_view", "items": [{"item_id": "x"}]})
    items = ranker.recommend(session_id="q", k=3, objectives=objectives, exclude_seen=True)
    return [item.item_id for item in items]


@pytest.mark.parametrize(
    ("signal", "long_value", "short_value"),
    [("engagement_ms", 60_000.0, 5_000.0), ("media_progress_pct", 90.0, 10.0)],
)
def test_the_engagement_dial_puts_the_longer_engagement_first(
    tmp_path: Path, signal: str, long_value: float, short_value: float
) -> None:
    url = _store(tmp_path, _events(signal, long_value, short_value))
    with EventStore(url) as store:
        ranker = SessionRanker(random_state=0).fit(store)
    assert ranker.items.engagement_kind == signal
    assert _order(ranker, Objectives()) == ["short", "long"]
    # Relevance about 2:1 for short, engagement 12:1 or 9:1 for long.
    assert _order(ranker, Objectives(engagement=1)) == ["long", "short"]
    scored = {
        item.item_id: item
        for item in ranker.recommend(session_id="q", k=3, objectives=Objectives(engagement=1))
    }
    assert scored["long"].engagement == pytest.approx(long_value)
    assert scored["short"].engagement == pytest.approx(short_value)
    # Relevance x engagement: the score ratio is the relevance ratio times 12 (or 9).
    ratio = (scored["long"].score / scored["short"].score) / (
        scored["long"].relevance / scored["short"].relevance
    )
    assert ratio == pytest.approx(long_value / short_value)


def test_engagement_ms_wins_over_media_progress(tmp_path: Path) -> None:
    events = _events("media_progress_pct", 10.0, 90.0)  # progress favours short...
    for event in events:
        item = event["items"][0]["item_id"]
        if item != "x":
            event["engagement_ms"] = 50_000.0 if item == "long" else 5_000.0  # ...time, long
    url = _store(tmp_path, events)
    with EventStore(url) as store:
        ranker = SessionRanker(random_state=0).fit(store)
    assert ranker.items.engagement_kind == "engagement_ms"
    index = ranker.items.index(["long", "short", "x"])
    assert ranker.items.engagement[index[:2]].tolist() == [50_000.0, 5_000.0]
    assert np.isnan(ranker.items.engagement[index[2]])  # no signal on "x"
    assert _order(ranker, Objectives(engagement=1)) == ["long", "short"]


def test_without_a_signal_engagement_is_none_and_changes_nothing(tmp_path: Path) -> None:
    url = _store(tmp_path, _events(None, 0.0, 0.0))
    with EventStore(url) as store:
        ranker = SessionRanker(random_state=0).fit(store)
    assert ranker.items.engagement_kind == "none"
    assert _order(ranker, Objectives(engagement=1)) == _order(ranker, Objectives())
    items = ranker.recommend(session_id="q", k=3, objectives=Objectives(engagement=1))
    assert [item.engagement for item in items] == [None] * len(items)  # never a silent zero

    runner = CliRunner()
    fitted = runner.invoke(fit, ["--database-url", url])
    assert fitted.exit_code == 0, fitted.output
    assert "engagement = none" in fitted.output
    summary = runner.invoke(fit, ["--database-url", url, "--format", "json"])
    assert json.loads(summary.stdout)["engagement"] == "none"
    shown = runner.invoke(
        recommend, ["--database-url", url, "--session", "s0", "--objective", "engagement=1"]
    )
    assert shown.exit_code == 0, shown.output
    assert "engagement = none" in shown.stderr  # the warning
    assert "engagement = none" in shown.stdout  # the table's caption


def test_engagement_is_saved_with_the_model_and_old_models_have_none(tmp_path: Path) -> None:
    url = _store(tmp_path, _events("engagement_ms", 60_000.0, 5_000.0))
    runner = CliRunner()
    assert runner.invoke(fit, ["--database-url", url]).exit_code == 0
    with EventStore(url) as store:
        loaded = load_ranker(store)
    assert loaded is not None
    assert loaded.items.engagement_kind == "engagement_ms"
    assert _order(loaded, Objectives(engagement=1)) == ["long", "short"]
    arrays = loaded.items.arrays()
    before = {k: v for k, v in arrays.items() if not k.startswith("item_engagement")}
    old = ItemTable.from_arrays(before)
    assert old.engagement_kind == "none"
    assert np.isnan(old.engagement).all() and old.engagement.size == len(old)


def _moved(events: list[dict[str, Any]], prefix: str, day: str) -> list[dict[str, Any]]:
    for event in events:
        event["event_id"] = f"{prefix}-{event['event_id']}"
        event["session_id"] = f"{prefix}-{event['session_id']}"
        event["event_ts"] = event["event_ts"].replace("2024-05-01", day)
    return events


def test_a_refresh_never_mixes_two_signals(tmp_path: Path) -> None:
    url = _store(tmp_path, _events("engagement_ms", 60_000.0, 5_000.0))
    with EventStore(url) as store:
        # A second load without any signal: the refresh reads from this load's time on.
        store.load_events(_moved(_events(None, 0, 0), "quiet", "2024-05-02"))
        ranker = SessionRanker(random_state=0).fit(store)
        # Fresh sessions carry only progress (another unit), favouring "short".
        store.load_events(_moved(_events("media_progress_pct", 1.0, 99.0), "fresh", "2024-05-03"))
        ranker = ranker.update(store)
    items = ranker.items
    assert items.engagement_kind == "engagement_ms"
    long_at, short_at = items.index(["long", "short"]).tolist()
    assert items.engagement[[long_at, short_at]].tolist() == [60_000.0, 5_000.0]
    assert _order(ranker, Objectives(engagement=1)) == ["long", "short"]


def test_a_refresh_takes_the_means_of_the_sessions_it_reads(tmp_path: Path) -> None:
    url = _store(tmp_path, _events("engagement_ms", 60_000.0, 5_000.0))
    with EventStore(url) as store:
        ranker = SessionRanker(random_state=0).fit(store)
        fresh = _moved(_events("engagement_ms", 60_000.0, 8_000.0)[:2], "fresh", "2024-05-02")
        store.load_events(fresh)  # one session: x, then short engaged 8 s
        ranker = ranker.update(store)
    items = ranker.items
    long_at, short_at = items.index(["long", "short"]).tolist()
    # The refresh reads the new session and those of the model's last load again (one load
    # time): "short" is the mean of 20 at 5 s and the new 8 s.
    assert items.engagement[long_at] == 60_000.0
    assert items.engagement[short_at] == pytest.approx((20 * 5_000.0 + 8_000.0) / 21)
