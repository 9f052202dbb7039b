"""POST /v1/events carries ``rec_id`` and exposures (issue 12): the request normaliser."""

from __future__ import annotations

from typing import Any

from target_personalize.serve.app import _Normaliser


def _record(raw: dict[str, Any]) -> dict[str, Any]:
    checked, errors = _Normaliser({}).one(raw, 0, [])
    assert errors == []
    assert checked is not None
    return checked[0]


def test_rec_id_top_level_or_in_properties() -> None:
    base = {"event_id": "e1", "event_name": "Product Clicked", "event_ts": "2024-03-01T10:00:00Z"}
    assert _record({**base, "rec_id": "r-1"})["rec_id"] == "r-1"
    moved = _record({**base, "properties": {"rec_id": "r-2", "other": 1}})
    assert moved["rec_id"] == "r-2"
    assert moved["properties"] == {"other": 1}
    both = _record({**base, "rec_id": "r-1", "properties": {"rec_id": "r-2"}})
    assert both["rec_id"] == "r-1"


def test_segment_experiment_viewed_and_clicked_list() -> None:
    exposure = _record(
        {
            "type": "track",
            "event": "Experiment Viewed",
            "userId": "u1",
            "messageId": "m1",
            "timestamp": "2024-03-01T10:00:00Z",
            "properties": {"experiment_id": "checkout", "variation_id": "engine"},
        }
    )
    assert exposure["event_type"] == "experiment_exposure"
    assert (exposure["experiment_id"], exposure["variant_id"]) == ("checkout", "engine")
    click = _record(
        {
            "type": "track",
            "event": "Product Clicked",
            "userId": "u1",
            "messageId": "m2",
            "timestamp": "2024-03-01T10:00:05Z",
            "properties": {"product_id": "p1", "rec_id": "r-7"},
        }
    )
    assert (click["rec_id"], click["items"][0]["item_id"]) == ("r-7", "p1")
    assert "rec_id" not in click["properties"]


def test_segment_amplitude_exposure_keeps_its_variant() -> None:
    exposure = _record(
        {
            "type": "track",
            "event": "$exposure",
            "anonymousId": "a1",
            "messageId": "m3",
            "timestamp": "2024-03-01T10:00:00Z",
            "properties": {"flag_key": "ranker", "variant": "treatment"},
        }
    )
    assert (exposure["experiment_id"], exposure["variant_id"]) == ("ranker", "treatment")
    assert exposure["items"] == []
