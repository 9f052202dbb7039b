"""Hostile bodies: huge, deep, non-finite weights; each refused with the limit or field named."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from target_personalize.serve import KeyRing, ServeSettings
from target_personalize.serve.auth import new_key
from tests.serve.conftest import Server, running, seed_store

EVENT = {
    "source": "api",
    "event_id": "e-1",
    "event_name": "product_view",
    "event_ts": "2024-05-02T10:00:00Z",
    "session_id": "s-hostile",
    "items": [{"item_id": "a"}],
}


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server with small limits, so that crossing them costs little."""
    url = seed_store(tmp_path_factory.mktemp("hostile") / "store.duckdb")
    settings = ServeSettings(
        database_url=url,
        max_body_bytes=300_000,
        max_event_bytes=50_000,
        max_property_bytes=10_000,
        max_json_depth=32,
    )
    with running(settings, keys=KeyRing([])) as handle:
        yield handle


def post(server: Server, body: bytes, path: str = "/v1/events") -> httpx.Response:
    return server.client.post(path, content=body, headers={"content-type": "application/json"})


def test_a_body_over_the_limit_is_refused_before_it_is_read(small: Server) -> None:
    body = json.dumps([{**EVENT, "event_id": f"e-{n}"} for n in range(3000)]).encode()
    answer = post(small, body)
    assert answer.status_code == 413
    assert "max_body_bytes=300000" in answer.json()["detail"][0]["msg"]


def test_a_streamed_body_is_cut_at_the_limit(small: Server) -> None:
    def chunks() -> Iterator[bytes]:  # no Content-Length: chunked transfer
        yield b"["
        for n in range(5000):
            yield json.dumps({**EVENT, "event_id": f"s-{n}"}).encode() + b","
        yield b"{}]"

    answer = small.client.post(
        "/v1/events", content=chunks(), headers={"content-type": "application/json"}
    )
    assert answer.status_code == 413
    assert "max_body_bytes" in answer.json()["detail"][0]["msg"]


def test_an_event_over_the_limit_is_refused_and_named(small: Server) -> None:
    big = {**EVENT, "event_id": "big", "properties": {f"p{n}": "x" * 9000 for n in range(8)}}
    answer = post(small, json.dumps([EVENT, big]).encode())
    assert answer.status_code == 413
    (error,) = answer.json()["detail"]
    assert error["loc"] == ["body", 1]
    assert "max_event_bytes=50000" in error["msg"]
    # With partial=true the others are stored and the big one is reported.
    stored = small.client.post("/v1/events?partial=true", json=[EVENT, big])
    assert stored.status_code == 200
    assert stored.json()["accepted"] == 1
    assert stored.json()["rejected"][0]["type"] == "too_large"


def test_a_property_over_the_limit_is_refused_with_its_path(small: Server) -> None:
    event = {**EVENT, "event_id": "prop", "properties": {"note": "x" * 20_000, "ok": 1}}
    answer = post(small, json.dumps(event).encode())
    assert answer.status_code == 422
    (error,) = answer.json()["detail"]
    assert error["loc"] == ["body", "properties", "note"]
    assert "max_property_bytes=10000" in error["msg"]


@pytest.mark.parametrize(
    "body",
    [
        # properties nested 500 deep, and a 100,000-deep array: once a RecursionError (500)
        json.dumps({**EVENT, "properties": {"a": json.loads("[" * 500 + "]" * 500)}}).encode(),
        b"[" * 100_000 + b"]" * 100_000,
        b'{"conversion": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    ],
    ids=["properties-500", "array-100k", "objectives-100k"],
)
def test_deep_json_is_refused_with_the_depth_limit(server: Server, body: bytes) -> None:
    for path in ("/v1/events", "/v1/rank"):
        answer = post(server, body, path)
        assert answer.status_code == 422
        assert "max_json_depth=32" in answer.json()["detail"][0]["msg"]
    answer = server.client.put(
        "/v1/objectives", content=body, headers={"content-type": "application/json"}
    )
    assert answer.status_code == 422


@pytest.mark.parametrize(
    "body",
    [
        b'{"conversion": 1e999}',
        b'{"conversion": 1e308}',
        b'{"margin": NaN}',
        b'{"margin": -Infinity}',
    ],
)
def test_absurd_objective_weights_are_refused(server: Server, body: bytes) -> None:
    before = server.client.get("/v1/objectives").json()
    answer = server.client.put(
        "/v1/objectives", content=body, headers={"content-type": "application/json"}
    )
    assert answer.status_code == 422  # NaN once made the 422 itself fail to serialize: a 500
    (error,) = answer.json()["detail"]
    assert error["loc"][:1] == ["body"]
    assert server.client.get("/v1/objectives").json() == before
    ranked = server.client.get("/v1/recommendations", params={"session_id": "seed-s1"})
    assert all(item["score"] is not None for item in ranked.json()["items"])


@pytest.mark.parametrize("weights", ["conversion:1e309", "margin:1e308", "conversion:nan"])
def test_absurd_objective_weights_in_a_query_are_refused(server: Server, weights: str) -> None:
    answer = server.client.get(
        "/v1/recommendations", params={"session_id": "seed-s1", "objectives": weights}
    )
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"] == ["query", "objectives"]
    ranked = server.client.post(
        "/v1/rank",
        content=b'{"session_id": "seed-s1", "items": ["a"], "objectives": {"margin": 1e999}}',
        headers={"content-type": "application/json"},
    )
    assert ranked.status_code == 422
    assert ranked.json()["detail"][0]["loc"] == ["body", "objectives"]


def test_docs_need_a_read_key_off_loopback_unless_opened(tmp_path: Path) -> None:
    read_key, record = new_key("read")
    url = seed_store(tmp_path / "store.duckdb")
    public = ServeSettings(database_url=url, host="0.0.0.0")
    with running(public, keys=KeyRing([record])) as server:
        for path in ("/docs", "/redoc", "/openapi.json"):
            assert server.client.get(path).status_code == 401
            assert server.client.get(path, headers={"X-API-Key": read_key}).status_code == 200
        assert (
            "/v1/events"
            in server.client.get("/openapi.json", headers={"X-API-Key": read_key}).json()["paths"]
        )
    opened = ServeSettings(database_url=url, host="0.0.0.0", open_docs=True)
    with running(opened, keys=KeyRing([record])) as server:
        assert server.client.get("/openapi.json").status_code == 200
    loopback = ServeSettings(database_url=url)
    with running(loopback, keys=KeyRing([record])) as server:
        assert server.client.get("/docs").status_code == 200


def test_a_timestamp_before_year_one_in_utc_is_refused_by_field(server: Server) -> None:
    # Found by the deep fuzz profile: the conversion to UTC overflowed into a 500.
    call = {"type": "track", "event": "x", "originalTimestamp": "0001-01-01T00:00:00+00:01"}
    answer = server.client.post(
        "/v1/events", json=[call, {**EVENT, "event_ts": call["originalTimestamp"]}]
    )
    assert answer.status_code == 422
    detail = answer.json()["detail"]
    assert [error["loc"][-1] for error in detail] == ["event_ts", "event_ts"]
    assert all("timestamp out of range" in error["msg"] for error in detail)
