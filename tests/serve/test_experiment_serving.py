"""Experiments in a running server: assignment, variant lists, recorded exposures and lists."""

from __future__ import annotations

import time
from collections import Counter
from datetime import datetime
from pathlib import Path

import msgspec
import pytest
from scipy.stats import binomtest

from target_personalize.engine import EventStore, Objectives
from target_personalize.engine.experiments import Experiment, assign
from target_personalize.engine.experiments.registry import ExperimentRegistry
from target_personalize.engine.ranking.baselines import ViewsItemKNN
from target_personalize.engine.store.served import Exposure, Impression
from target_personalize.serve import KeyRing, ServeSettings
from target_personalize.serve.auth import new_key
from target_personalize.serve.served_log import from_journal, store_served, to_journal
from tests.serve.conftest import Server, running, seed_events, seed_store

SPLIT = {
    "experiment_id": "split",
    "variants": ["control=popularity", "engine=objectives:conversion=1,margin=0.5"],
    "traffic": "50,50",
}


def _counts(url: str) -> dict[str, int]:
    with EventStore(url) as store:
        return {
            table: int(store.query(f"SELECT count(*) FROM {table}")[0][0])
            for table in ("exposures", "impressions", "impression_items")
        }


def _variants(server: Server, visitors: list[str]) -> dict[str, str]:
    found = {}
    for visitor in visitors:
        answer = server.client.get(
            "/v1/recommendations", params={"anonymous_id": visitor, "session_id": f"s-{visitor}"}
        )
        assert answer.status_code == 200, answer.text
        found[visitor] = answer.json()["variant_id"]
    return found


def test_assignment_is_sticky_across_requests_and_restarts(tmp_path: Path) -> None:
    url = seed_store(tmp_path / "store.duckdb")
    visitors = [f"visitor-{n}" for n in range(60)]
    with running(ServeSettings(database_url=url), keys=KeyRing([])) as server:
        assert server.client.post("/v1/experiments", json=SPLIT).status_code == 201
        first = _variants(server, visitors)
        assert _variants(server, visitors) == first
    with running(ServeSettings(database_url=url), keys=KeyRing([])) as server:
        assert _variants(server, visitors) == first
    experiment = Experiment.from_cli("split", SPLIT["variants"], "50,50")
    expected = {}
    for visitor in visitors:
        variant = assign(experiment, visitor)
        assert variant is not None
        expected[visitor] = variant.variant_id
    assert first == expected
    assert set(first.values()) == {"control", "engine"}


def test_split_is_binomial_and_each_list_is_recorded_once(tmp_path: Path) -> None:
    url = seed_store(tmp_path / "store.duckdb")
    visitors = [f"v{n}" for n in range(400)]
    with running(ServeSettings(database_url=url), keys=KeyRing([])) as server:
        created = server.client.post("/v1/experiments", json={**SPLIT, "traffic": "30,70"})
        assert created.status_code == 201
        split = Counter(_variants(server, visitors).values())
        # The same visitors again: new lists, no new exposures (once per visitor and day).
        answers = [
            server.client.get(
                "/v1/recommendations", params={"anonymous_id": v, "session_id": f"s-{v}"}
            ).json()
            for v in visitors[:50]
        ]
        assert len({a["rec_id"] for a in answers}) == 50
        assert all(a["experiment_id"] == "split" for a in answers)
    assert binomtest(split["control"], 400, 0.3).pvalue > 0.001
    assert split["control"] + split["engine"] == 400
    with EventStore(url) as store:
        assert store.query("SELECT count(*), count(DISTINCT visitor_id) FROM exposures")[0] == (
            400,
            400,
        )
        assert store.query("SELECT count(*), count(DISTINCT rec_id) FROM impressions")[0] == (
            450,
            450,
        )
        rec_id = answers[0]["rec_id"]
        stored = store.query(
            "SELECT item_id FROM impression_items WHERE rec_id = %s ORDER BY position", [rec_id]
        )
        assert [row[0] for row in stored] == [item["item_id"] for item in answers[0]["items"]]


def _visitor_in(experiment: Experiment, variant_id: str) -> str:
    for n in range(1000):
        variant = assign(experiment, f"u{n}")
        if variant is not None and variant.variant_id == variant_id:
            return f"u{n}"
    raise AssertionError(variant_id)


def test_none_keeps_the_shops_order_and_engine_reranks(tmp_path: Path) -> None:
    url = seed_store(tmp_path / "store.duckdb")
    body = {"experiment_id": "order", "variants": ["shop=none", "engine=objectives:margin=1"]}
    experiment = Experiment.from_cli("order", body["variants"])
    candidates = ["cheap", "a", "pricey"]
    with running(ServeSettings(database_url=url), keys=KeyRing([])) as server:
        assert server.client.post("/v1/experiments", json=body).status_code == 201
        shop = _visitor_in(experiment, "shop")
        answer = server.client.post(
            "/v1/rank", json={"user_id": shop, "session_id": "seed-s1", "items": candidates}
        ).json()
        assert answer["variant_id"] == "shop"
        assert [item["item_id"] for item in answer["items"]] == candidates
        engine = _visitor_in(experiment, "engine")
        answer = server.client.post(
            "/v1/rank", json={"user_id": engine, "session_id": "seed-s1", "items": candidates}
        ).json()
        assert answer["variant_id"] == "engine"
        assert answer["items"][0]["item_id"] == "pricey"  # the margin objective
        held_out = server.client.get(
            "/v1/recommendations", params={"user_id": shop, "session_id": "seed-s1"}
        ).json()
        assert held_out["items"] == [] and held_out["rec_id"]
    assert _counts(url) == {"exposures": 2, "impressions": 3, "impression_items": 6}


def test_journal_replay_stores_every_row_once(tmp_path: Path) -> None:
    url = seed_store(tmp_path / "store.duckdb")
    moment = datetime(2024, 5, 2, 9, 30, 1, 250000)
    rows: list[Exposure | Impression] = [
        Exposure("split", "engine", "v1", moment, "s1"),
        Impression("r1", "split", "engine", "v1", "s1", moment, ("a", "b")),
        Impression("r2", "split", "engine", "v1", "s1", moment, ("b",)),
    ]
    assert [from_journal(to_journal(row)) for row in rows] == rows
    with EventStore(url) as store:
        store_served(store, rows[:2])  # stored before the crash, still in the journal
    journal = tmp_path / "store.journal"
    journal.mkdir()
    lines = [to_journal(row) for row in rows + rows]  # and written twice
    (journal / "served.0.jsonl").write_bytes(
        b"".join(msgspec.json.encode(line) + b"\n" for line in lines) + b'{"torn'
    )
    settings = ServeSettings(database_url=url)
    assert settings.journal_path() == journal
    with running(settings, keys=KeyRing([])) as server:
        assert server.client.get("/healthz").status_code == 200
    assert not (journal / "served.0.jsonl").exists()
    assert _counts(url) == {"exposures": 1, "impressions": 2, "impression_items": 3}


def test_experiments_over_http_with_keys(tmp_path: Path) -> None:
    read_key, read_record = new_key("read")
    write_key, write_record = new_key("write")
    read, write = {"X-API-Key": read_key}, {"X-API-Key": write_key}
    url = seed_store(tmp_path / "store.duckdb")
    keys = KeyRing([read_record, write_record])
    with running(ServeSettings(database_url=url), keys=keys) as server:
        client = server.client
        assert client.post("/v1/experiments", json=SPLIT, headers=read).status_code == 403
        assert client.get("/v1/experiments").status_code == 401
        assert client.post("/v1/experiments", json=SPLIT, headers=write).status_code == 201
        again = client.post("/v1/experiments", json=SPLIT, headers=write)
        assert again.status_code == 409 and "exists already" in again.json()["detail"]
        bad = client.post(
            "/v1/experiments",
            json={**SPLIT, "experiment_id": "x", "traffic": "60,50"},
            headers=write,
        )
        assert bad.status_code == 422 and "add up to 110" in bad.json()["detail"]
        listed = client.get("/v1/experiments", headers=read).json()
        assert [(e["experiment_id"], e["status"]) for e in listed] == [("split", "running")]
        _ = [
            client.get(
                "/v1/recommendations",
                params={"anonymous_id": f"w{n}", "session_id": f"s{n}"},
                headers=read,
            )
            for n in range(40)
        ]
        readout = client.get("/v1/experiments/split", headers=read).json()
        assert readout["experiment_id"] == "split" and readout["control"] == "control"
        visitors = {v["variant_id"]: v["visitors"] for v in readout["variants"]}
        assert sum(visitors.values()) == 40 and set(visitors) == {"control", "engine"}
        assert readout["srm"]["flagged"] is False
        assert client.get("/v1/experiments/nope", headers=read).status_code == 404
        stopped = client.post("/v1/experiments/split/stop", headers=write).json()
        assert stopped["status"] == "stopped"
        after = client.get(
            "/v1/recommendations", params={"anonymous_id": "w1", "session_id": "s1"}, headers=read
        )
        assert after.json()["rec_id"] is None and after.json()["variant_id"] is None


@pytest.mark.parametrize("experiment", [None, "split"])
def test_outside_an_experiment_nothing_is_recorded(tmp_path: Path, experiment: str | None) -> None:
    url = seed_store(tmp_path / "store.duckdb")
    with running(ServeSettings(database_url=url), keys=KeyRing([])) as server:
        params = {"anonymous_id": "v1", "session_id": "seed-s1"} | (
            {"experiment": experiment} if experiment else {}
        )
        answer = server.client.get("/v1/recommendations", params=params).json()
        assert answer["rec_id"] is None and answer["items"]
    assert _counts(url) == {"exposures": 0, "impressions": 0, "impression_items": 0}


def test_experiments_created_elsewhere_are_served_within_seconds(store_url: str) -> None:
    """A running server picks up an experiment another process stored (PostgreSQL: commit)."""
    with EventStore(store_url) as store:
        assert not store.load_events(seed_events()).rejects
    experiment = Experiment.from_cli(
        "elsewhere", ["views=views_only", "engine=engine", "shop=none"], "30,30,30"
    )
    with running(ServeSettings(database_url=store_url), keys=KeyRing([])) as server:
        before = server.client.get("/v1/recommendations", params={"session_id": "seed-s1"})
        assert before.json()["experiment_id"] is None
        with EventStore(store_url) as other:  # as `personalize experiment create` does
            ExperimentRegistry(other).create(experiment)
        deadline = time.monotonic() + 30
        answer = before.json()
        while answer["experiment_id"] is None and time.monotonic() < deadline:
            time.sleep(0.5)
            answer = server.client.get(
                "/v1/recommendations", params={"session_id": "seed-s1"}
            ).json()
        assert answer["experiment_id"] == "elsewhere"
        variant = assign(experiment, "seed-s1")
        assert variant is not None and answer["variant_id"] == variant.variant_id
        views = _visitor_in(experiment, "views")
        served = server.client.get(
            "/v1/recommendations", params={"user_id": views, "session_id": "seed-s1"}
        ).json()
        assert served["variant_id"] == "views"
        assert served["objectives"] == {
            "conversion": 0.0,
            "margin": 0.0,
            "revenue": 0.0,
            "engagement": 0.0,
        }
    with EventStore(store_url) as store:
        assert store.query("SELECT count(*) FROM impressions")[0][0] == 2
        baseline = ViewsItemKNN().fit(store)
    expected = baseline.recommend(views, "seed-s1", 20, objectives=Objectives())
    assert [i["item_id"] for i in served["items"]] == [i.item_id for i in expected]
    assert served["items"]
