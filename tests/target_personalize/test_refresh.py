"""After a load, target-personalize refreshes a fitted ranking model with the new events."""

from __future__ import annotations

import io
import json

import pytest
from singer_sdk.exceptions import ConfigValidationError

from tap_clickstream.events import EVENT_SCHEMA
from target_personalize.engine import EventStore, Objectives, load_ranker, refresh_ranker
from target_personalize.target import TargetPersonalize
from tests.support.events import event

SCHEMA = {
    "type": "SCHEMA",
    "stream": "file_events",
    "schema": EVENT_SCHEMA,
    "key_properties": ["source", "event_id"],
}


def _load(url: str, records: list[dict[str, object]], **config: object) -> None:
    lines = [SCHEMA] + [{"type": "RECORD", "stream": "file_events", "record": r} for r in records]
    target = TargetPersonalize(config={"database_url": url, **config}, parse_env_config=False)
    target.listen(file_input=io.StringIO("".join(json.dumps(m) + "\n" for m in lines)))


def _new_item_events() -> list[dict[str, object]]:
    # Two sessions that view i1 and then the brand-new item "fresh".
    return [
        event(
            100 + n,
            session_id=f"new-{n // 2}",
            items=[{"item_id": "i1" if n % 2 == 0 else "fresh"}],
        )
        for n in range(4)
    ]


def test_a_fitted_model_learns_the_new_events_after_a_load(
    store_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _load(store_url, [event(n) for n in range(60)])
    with EventStore(store_url) as store:
        fitted = refresh_ranker(store, create=True)
        assert fitted is not None
        assert "fresh" not in set(fitted.items.item_ids)

    _load(store_url, _new_item_events())
    with EventStore(store_url) as store:
        refreshed = load_ranker(store)
    assert refreshed is not None
    assert "fresh" in set(refreshed.items.item_ids)
    recommended = [r.item_id for r in refreshed.rank(["fresh", "i5"], session_id="probe")]
    assert set(recommended) == {"fresh", "i5"}


def test_no_refresh_when_switched_off_or_never_fitted(
    store_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _load(store_url, [event(n) for n in range(60)])
    with EventStore(store_url) as store:
        assert load_ranker(store) is None  # nothing fitted: a load creates no model
        refresh_ranker(store, create=True)
    _load(store_url, _new_item_events(), refresh_after_load=False)
    with EventStore(store_url) as store:
        kept = load_ranker(store)
    assert kept is not None and "fresh" not in set(kept.items.item_ids)


def test_the_objectives_setting_is_saved_with_the_refreshed_model(
    store_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # Each dial Meltano can set (objectives.<name>) reaches the model a load refreshes.
    _load(store_url, [event(n) for n in range(60)])
    with EventStore(store_url) as store:
        refresh_ranker(store, create=True)
    weights = {"conversion": 0.5, "margin": 1.5, "revenue": 2.0, "engagement": 0.25}
    _load(store_url, _new_item_events(), objectives=weights)
    with EventStore(store_url) as store:
        refreshed = load_ranker(store)
    assert refreshed is not None
    assert refreshed.objectives == Objectives(**weights)


def test_an_unknown_objective_setting_is_refused_by_name() -> None:
    with pytest.raises(ConfigValidationError) as refused:
        TargetPersonalize(
            config={"database_url": "duckdb:///:memory:", "objectives": {"speed": 1.0}},
            parse_env_config=False,
        )
    assert any("'speed' was unexpected" in error for error in refused.value.errors)
