"""The HTTP API against a real uvicorn server on 127.0.0.1."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import pytest

from target_personalize.engine import EVENT_COLUMNS, EventStore
from target_personalize.engine.store import event_store
from target_personalize.serve import app
from target_personalize.serve.models import CanonicalEvent
from tests.serve.conftest import Server


def _event(session: str, item: str, category: str = "shoes", **extra: Any) -> dict[str, Any]:
    return {
        "event_id": f"ev-{uuid.uuid4().hex}",
        "event_name": "Product Viewed",
        "event_ts": "2024-05-02T10:00:00Z",
        "session_id": session,
        "items": [{"item_id": item, "category": category, "price": 30}],
        **extra,
    }


def _store_count(server: Server) -> int:
    return int(server.client.get("/v1/stats", params={"fresh": "true"}).json()["store_events"])


def _items(answer: dict[str, Any]) -> list[str]:
    return [item["item_id"] for item in answer["items"]]


def test_health_and_openapi(server: Server) -> None:
    health = server.client.get("/healthz").json()
    assert health["status"] == "ok"
    assert health["auth"] is False
    spec = server.client.get("/openapi.json").json()
    for path in ("/v1/events", "/v1/recommendations", "/v1/rank", "/v1/funnel", "/healthz"):
        assert path in spec["paths"], path
    body = spec["paths"]["/v1/events"]["post"]["requestBody"]["content"]["application/json"]
    assert "CanonicalEvent" in str(body["schema"])
    assert "CanonicalEvent" in spec["components"]["schemas"]


def test_ingest_then_rank_reflects_the_new_event(server: Server) -> None:
    session = f"live-{uuid.uuid4().hex[:8]}"
    before = server.client.get("/v1/recommendations", params={"session_id": session, "k": 5})
    assert before.status_code == 200
    assert "brand-new-item" not in _items(before.json())

    posted = server.client.post("/v1/events", json=_event(session, "brand-new-item", "misc"))
    assert posted.status_code == 200, posted.text
    assert posted.json()["accepted"] == 1

    after = server.client.get("/v1/recommendations", params={"session_id": session, "k": 5})
    assert _items(after.json())[0] == "brand-new-item"
    ranked = server.client.post(
        "/v1/rank", json={"session_id": session, "items": ["cheap", "brand-new-item", "unknown"]}
    ).json()
    assert _items(ranked) == ["brand-new-item", "cheap", "unknown"]


def test_viewing_a_pulls_in_its_neighbours(server: Server) -> None:
    session = f"live-{uuid.uuid4().hex[:8]}"
    server.client.post("/v1/events", json=_event(session, "a")).raise_for_status()
    answer = server.client.get(
        "/v1/recommendations", params={"session_id": session, "k": 3, "exclude_seen": "true"}
    ).json()
    assert _items(answer)[:2] == ["cheap", "pricey"]
    # The objectives re-order the same candidates: what the dashboard's sliders do.
    valued = server.client.get(
        "/v1/recommendations",
        params={"session_id": session, "k": 3, "exclude_seen": "true", "objectives": "margin:3"},
    ).json()
    assert _items(valued)[0] == "pricey"
    assert valued["objectives"] == {
        "conversion": 0.0,
        "margin": 3.0,
        "revenue": 0.0,
        "engagement": 0.0,
    }


def test_duplicate_events_are_stored_once(server: Server) -> None:
    start = _store_count(server)
    event = _event("dup-session", "a")
    first = server.client.post("/v1/events", json=[event, event]).json()
    again = server.client.post("/v1/events", json=event).json()
    assert first["accepted"] == 2 and first["duplicates"] == 1
    assert again["duplicates"] == 1
    assert _store_count(server) == start + 1


def test_each_posted_event_is_checked_once(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    # The API checks an event (and answers 422 naming the field at fault); the store then
    # takes the checked row as it is.
    checked: list[str] = []
    coerce = app.coerce_event

    def counting(record: Any) -> tuple[Any, ...]:
        checked.append(str(record["event_id"]))
        return coerce(record)

    monkeypatch.setattr(app, "coerce_event", counting)
    monkeypatch.setattr(event_store, "coerce_event", counting)
    session = f"once-{uuid.uuid4().hex[:8]}"
    batch = [_event(session, f"item-{n}") for n in range(5)]
    before = _store_count(server)
    assert server.client.post("/v1/events", json=batch).json()["accepted"] == 5
    assert _store_count(server) == before + 5  # runs after the commit of the batch
    assert sorted(checked) == sorted(e["event_id"] for e in batch)


def test_times_with_an_offset_are_stored_and_observed_as_utc(server: Server) -> None:
    session = f"utc-{uuid.uuid4().hex[:8]}"
    posted = _event(session, "a", event_ts="2024-05-02T12:00:00+02:00")
    posted["ingested_at"] = "2024-05-02T07:30:00-03:00"
    assert server.client.post("/v1/events", json=posted).json()["accepted"] == 1
    _store_count(server)  # runs after the commit
    with EventStore(server.settings.database_url) as store:
        stored = store.query(
            "SELECT event_ts, ingested_at FROM events WHERE event_id = %s", [posted["event_id"]]
        )
    assert stored == [(datetime(2024, 5, 2, 10, 0), datetime(2024, 5, 2, 10, 30))]


def test_bad_payloads_get_422_with_field_paths_and_nothing_is_stored(server: Server) -> None:
    start = _store_count(server)
    good = _event("bad-batch", "a")
    batch = [
        good,
        {"event_id": "x", "event_ts": "not a time", "event_name": "v"},
        {"event_id": "y", "event_ts": "2024-05-02T10:00:00Z", "items": [{"price": 3}]},
        {"event_id": "z", "event_ts": "2024-05-02T10:00:00Z", "unknown_field": 1},
        {"type": "track", "userId": "u1"},
        "not an object",
    ]
    answer = server.client.post("/v1/events", json=batch)
    assert answer.status_code == 422
    detail = answer.json()["detail"]
    locs = {tuple(d["loc"]) for d in detail}
    assert ("body", 1, "event_ts") in locs
    assert ("body", 2, "items", 0, "item_id") in locs
    assert ("body", 3, "unknown_field") in locs
    assert ("body", 4, "event") in locs
    assert ("body", 5) in locs
    assert {d["index"] for d in detail} == {1, 2, 3, 4, 5}
    assert _store_count(server) == start

    single = server.client.post("/v1/events", json={"event_name": "v"})
    assert single.status_code == 422
    assert {tuple(d["loc"]) for d in single.json()["detail"]} == {
        ("body", "event_id"),
        ("body", "event_ts"),
    }
    assert server.client.post("/v1/events", content=b"{not json").status_code == 422

    partial = server.client.post("/v1/events", params={"partial": "true"}, json=batch)
    assert partial.status_code == 200
    assert partial.json()["accepted"] == 1
    assert len(partial.json()["rejected"]) == 5
    assert _store_count(server) == start + 1


def test_segment_track_and_page_calls(server: Server) -> None:
    anonymous = f"anon-{uuid.uuid4().hex[:8]}"
    calls = {
        "batch": [
            {
                "type": "page",
                "anonymousId": anonymous,
                "messageId": f"m-{uuid.uuid4().hex}",
                "timestamp": "2024-05-02T10:00:00Z",
                "properties": {"url": "https://shop.example/p/x", "path": "/p/x"},
            },
            {
                "type": "track",
                "event": "Product Viewed",
                "anonymousId": anonymous,
                "messageId": f"m-{uuid.uuid4().hex}",
                "timestamp": "2024-05-02T10:00:05Z",
                "properties": {"product_id": "seg-item", "price": 12.5, "category": "shoes"},
                "context": {"campaign": {"source": "news"}},
            },
            {"type": "identify", "anonymousId": anonymous, "traits": {"plan": "pro"}},
        ]
    }
    answer = server.client.post("/v1/events", json=calls)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"accepted": 2, "duplicates": 0, "skipped": 1, "rejected": []}
    # No Segment session: the visitor's live session answers for the user id.
    ranked = server.client.post(
        "/v1/rank", json={"user_id": anonymous, "items": ["cheap", "seg-item"]}
    ).json()
    assert _items(ranked)[0] == "seg-item"
    bad = server.client.post(
        "/v1/events", json={"type": "track", "event": "X", "properties": {"revenue": "lots"}}
    )
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["loc"] == ["body", "(mapped)", "revenue"]


def test_objectives_and_query_errors(server: Server) -> None:
    assert server.client.get("/v1/objectives").json() == {
        "conversion": 0.0,
        "margin": 0.0,
        "revenue": 0.0,
        "engagement": 0.0,
    }
    assert server.client.get("/v1/recommendations").status_code == 422
    wrong = server.client.get(
        "/v1/recommendations", params={"session_id": "s", "objectives": "clicks:1"}
    )
    assert wrong.status_code == 422
    assert wrong.json()["detail"][0]["loc"] == ["query", "objectives"]
    assert server.client.post("/v1/rank", json={"session_id": "s", "items": []}).status_code == 422
    put = server.client.put("/v1/objectives", json={"conversion": 1, "margin": 0.5})
    assert put.json() == {"conversion": 1.0, "margin": 0.5, "revenue": 0.0, "engagement": 0.0}
    answer = server.client.get("/v1/recommendations", params={"session_id": "seed-s1"}).json()
    assert answer["objectives"] == {
        "conversion": 1.0,
        "margin": 0.5,
        "revenue": 0.0,
        "engagement": 0.0,
    }
    server.client.put("/v1/objectives", json={"conversion": 0, "margin": 0}).raise_for_status()


def test_funnel_model_and_stats(server: Server) -> None:
    funnel = server.client.get("/v1/funnel").json()
    assert funnel["conversion"] == "purchase"
    assert funnel["event_weights"]["purchase"] == 1.0
    assert [step["event_type"] for step in funnel["steps"]][-1] == "purchase"
    model = server.client.get("/v1/model").json()
    assert model["key_conversion"] == "purchase"
    assert model["conversion_source"] == {"source": "item rates"}  # no served lists converted
    assert model["sample_session"]
    stats = server.client.get("/v1/stats").json()
    assert stats["store_events"] >= 100
    page = server.client.get("/")
    assert page.status_code == 200 and "dashboard.js" in page.text
    assert server.client.get("/static/dashboard.js").status_code == 200


def test_canonical_model_matches_the_store_columns() -> None:
    assert set(CanonicalEvent.model_fields) == set(EVENT_COLUMNS)
