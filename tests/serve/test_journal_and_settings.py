"""ack="journal", settings shared with the target, and the Segment mapping."""

from __future__ import annotations

import json
import time
from pathlib import Path

import msgspec
import pytest

from target_personalize.engine import EventStore, RankerError
from target_personalize.serve import KeyRing, ServeSettings
from target_personalize.serve.models import SegmentPage, SegmentTrack
from target_personalize.serve.segment import from_segment, mapper
from target_personalize.serve.settings import target_environment
from tests.serve.conftest import running, seed_store


def _event(n: int) -> dict[str, object]:
    return {
        "source": "journal-test",
        "event_id": f"j{n}",
        "event_name": "Product Viewed",
        "event_ts": "2024-05-02T10:00:00Z",
        "session_id": "journal-session",
        "items": [{"item_id": "a"}],
    }


def _stored(url: str) -> int:
    with EventStore(url) as store:
        return int(store.query("SELECT count(*) FROM events WHERE source = 'journal-test'")[0][0])


def test_journal_ack_stores_everything_by_shutdown(tmp_path: Path) -> None:
    url = seed_store(tmp_path / "store.duckdb")
    journal = tmp_path / "journal"
    settings = ServeSettings(database_url=url, ack="journal", journal_dir=str(journal))
    assert settings.flush_ms == 250.0
    with running(settings, keys=KeyRing([])) as server:
        for n in range(5):
            answer = server.client.post("/v1/events", json=[_event(n), _event(n + 100)])
            assert answer.status_code == 200
        server.client.post("/v1/events", json=_event(0)).raise_for_status()  # a duplicate
        # Acknowledged events are on disk before the store has them.
        lines = b"".join(p.read_bytes() for p in journal.glob("*.jsonl")).splitlines()
        assert len(lines) == 11
        ranked = server.client.post(
            "/v1/rank", json={"session_id": "journal-session", "items": ["cheap", "a"]}
        ).json()
        assert ranked["items"][0]["item_id"] == "a"
    assert _stored(url) == 10
    assert list(journal.glob("*.jsonl")) == []


def test_leftover_journal_is_replayed_at_start(tmp_path: Path) -> None:
    url = seed_store(tmp_path / "store.duckdb")
    journal = tmp_path / "journal"
    journal.mkdir()
    lines = [msgspec.json.encode(_event(n)) for n in range(3)] + [b'{"torn']
    (journal / "events.0.jsonl").write_bytes(b"\n".join(lines))
    settings = ServeSettings(database_url=url, ack="journal", journal_dir=str(journal))
    with running(settings, keys=KeyRing([])) as server:
        stats = server.client.get("/v1/stats", params={"fresh": "true"}).json()
        assert stats["store_events"] == 103
        assert not (journal / "events.0.jsonl").exists()
    assert _stored(url) == 3


def test_settings_from_the_target_config(tmp_path: Path) -> None:
    config = tmp_path / "target.json"
    config.write_text(
        json.dumps(
            {
                "database_url": "duckdb:///x.duckdb",
                "key_conversion": "add_to_cart",
                "objectives": {"conversion": 1, "margin": 0.5},
                "refresh_after_load": True,
            }
        )
    )
    settings = ServeSettings.from_target(config, {}, host="127.0.0.1", key_conversion=None)
    assert settings.database_url == "duckdb:///x.duckdb"
    assert settings.key_conversion == "add_to_cart"
    assert settings.objectives == {"conversion": 1, "margin": 0.5}
    assert settings.journal_path() == Path("x.journal")
    overridden = ServeSettings.from_target(config, {}, key_conversion="purchase")
    assert overridden.key_conversion == "purchase"
    with pytest.raises(RankerError):
        ServeSettings(objectives={"clicks": 1})
    with pytest.raises(ValueError, match="ack"):
        ServeSettings(ack="never")  # type: ignore[arg-type]


def test_settings_from_the_targets_variables_then_its_config(tmp_path: Path) -> None:
    environ = {
        "TARGET_PERSONALIZE_DATABASE_URL": "postgresql+psycopg://me@db/shop",
        "TARGET_PERSONALIZE_KEY_CONVERSION": "booking",
        "TARGET_PERSONALIZE_OBJECTIVES_CONVERSION": "1.5",
        "TARGET_PERSONALIZE_OBJECTIVES_MARGIN": "0.25",
        "TARGET_PERSONALIZE_REFRESH_AFTER_LOAD": "true",  # the target's own: ignored
    }
    settings = ServeSettings.from_target(None, environ)
    assert settings.database_url == "postgresql+psycopg://me@db/shop"
    assert settings.key_conversion == "booking"
    assert settings.objectives == {"conversion": 1.5, "margin": 0.25}
    assert settings.ack == "commit"  # PostgreSQL: answered after the commit
    config = tmp_path / "target.json"
    config.write_text(json.dumps({"database_url": "duckdb:///shop.duckdb"}))
    from_both = ServeSettings.from_target(config, environ, key_conversion="purchase")
    assert from_both.database_url == "duckdb:///shop.duckdb"
    assert from_both.key_conversion == "purchase"
    assert from_both.ack == "journal"  # a DuckDB file: answered after the journal
    assert ServeSettings.from_target(None, {}).database_url == "duckdb:///personalize.duckdb"


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("TARGET_PERSONALIZE_OBJECTIVES_MARGIN", "lots", "TARGET_PERSONALIZE_OBJECTIVES_MARGIN"),
        ("TARGET_PERSONALIZE_OBJECTIVES", "{conversion: 1}", "TARGET_PERSONALIZE_OBJECTIVES"),
        ("TARGET_PERSONALIZE_EVENT_MAP", "[1]", "TARGET_PERSONALIZE_EVENT_MAP"),
    ],
)
def test_a_bad_target_variable_is_named(variable: str, value: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        target_environment({variable: value})


def test_segment_ecommerce_mapping() -> None:
    to_type = mapper({"Checkout Done": "purchase"})
    track = SegmentTrack.model_validate(
        {
            "type": "track",
            "event": "Order Completed",
            "userId": 42,
            "anonymousId": "anon",
            "messageId": "m1",
            "timestamp": "2024-05-02T10:00:00+02:00",
            "properties": {
                "order_id": "o1",
                "revenue": 25.5,
                "currency": "EUR",
                "coupon": "SPRING",
                "products": [
                    {"product_id": "p1", "price": 10, "quantity": 2, "brand": "acme"},
                    {"sku": "p2", "price": 5.5},
                    {"name": "no id"},
                ],
            },
            "context": {
                "page": {"url": "https://shop.example/checkout", "path": "/checkout"},
                "campaign": {"source": "news", "medium": "email", "name": "spring"},
                "location": {"country": "DE"},
                "traits": {"plan": "pro"},
                "sessionId": "sess-9",
            },
        }
    )
    event = from_segment(track, to_type)
    assert event["source"] == "segment" and event["event_id"] == "m1"
    assert event["event_type"] == "purchase" and event["event_name"] == "Order Completed"
    assert event["user_id"] == "42" and event["session_id"] == "sess-9"
    assert [item["item_id"] for item in event["items"]] == ["p1", "p2"]
    assert event["items"][0] == {"item_id": "p1", "price": 10, "quantity": 2, "brand": "acme"}
    assert (event["order_id"], event["revenue"], event["currency"]) == ("o1", 25.5, "EUR")
    assert (event["utm_source"], event["utm_medium"], event["utm_campaign"]) == (
        "news",
        "email",
        "spring",
    )
    assert event["page_path"] == "/checkout" and event["country"] == "DE"
    assert event["properties"] == {"coupon": "SPRING"}
    assert event["user_properties"] == {"plan": "pro"}
    custom = from_segment(
        SegmentTrack.model_validate({"type": "track", "event": "Checkout Done", "userId": "u"}),
        to_type,
    )
    assert custom["event_type"] == "purchase"
    assert len(custom["event_id"]) == 32  # hashed from the call when there is no messageId
    page = from_segment(
        SegmentPage.model_validate(
            {"type": "page", "anonymousId": "a", "properties": {"path": "/", "title": "Home"}}
        ),
        to_type,
    )
    assert page["event_type"] == "page_view" and page["page_title"] == "Home"
    filtered = from_segment(
        SegmentTrack.model_validate(
            {
                "type": "track",
                "event": "Product List Filtered",
                "userId": "u",
                "properties": {"filters": [{"type": "brand", "value": "acme"}]},
            }
        ),
        to_type,
    )
    assert filtered["filters"] == {"brand": "acme"}


def test_the_model_is_refreshed_in_the_background_and_learns_the_new_sessions(
    tmp_path: Path,
) -> None:
    url = seed_store(tmp_path / "store.duckdb")
    settings = ServeSettings(database_url=url, refresh_seconds=0.5)

    def view(session: str, item: str, category: str) -> dict[str, object]:
        return {
            "event_id": f"{session}-{item}",
            "event_name": "Product Viewed",
            "event_ts": "2024-05-02T10:00:00Z",
            "session_id": session,
            "items": [{"item_id": item, "category": category}],
        }

    def top(session: str) -> str:
        answer = server.client.get(
            "/v1/recommendations", params={"session_id": session, "k": 3, "exclude_seen": "true"}
        ).json()
        return str(answer["items"][0]["item_id"])

    with running(settings, keys=KeyRing([])) as server:
        client = server.client
        sessions = client.get("/v1/model").json()["sessions"]
        time.sleep(1.2)  # two refresh intervals with nothing new: no model is rebuilt
        assert client.get("/v1/stats").json()["model_refreshes"] == 0
        client.post("/v1/events", json=view("early", "kite", "toys")).raise_for_status()
        # Sessions that pair the two new items, stored through the API.
        batch = [
            view(f"pair{n}", item, c)
            for n in range(5)
            for item, c in (("kite", "toys"), ("string", "tools"))
        ]
        client.post("/v1/events", json=batch).raise_for_status()
        deadline = time.monotonic() + 30
        # A refresh swaps in a model holding the 6 new sessions.
        while client.get("/v1/model").json()["sessions"] < sessions + 6:
            assert time.monotonic() < deadline, "no refresh within 30 s"
            time.sleep(0.2)
        assert client.get("/v1/model").json()["sessions"] == sessions + 6
        assert client.get("/v1/stats").json()["model_refreshes"] >= 1
        # It learned kite -> string; the live session kept its events.
        assert top("early") == "string"
        client.post("/v1/events", json=view("late", "kite", "toys")).raise_for_status()
        assert top("late") == "string"


def test_an_in_memory_store_is_not_refreshed_from_a_second_empty_connection() -> None:
    settings = ServeSettings(database_url="duckdb:///:memory:", refresh_seconds=0.2)
    with running(settings, keys=KeyRing([])) as server:
        server.client.post("/v1/events", json=_event(1)).raise_for_status()
        time.sleep(1.0)
        stats = server.client.get("/v1/stats", params={"fresh": "true"}).json()
    assert stats["store_events"] == 1
    assert stats["model_refreshes"] == 0
