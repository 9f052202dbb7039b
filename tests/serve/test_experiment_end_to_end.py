"""End to end: `personalize serve` (a real process) in an experiment, killed once mid-run.

A load generator reads recommendations for visitors and posts their views and purchases
(carrying the list's ``rec_id``); the server is SIGKILLed halfway and started again on the same
store. The readout then shows both variants with the configured split, and every list and
exposure the visitors were served is stored exactly once.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from scipy.stats import binomtest

from target_personalize.engine import EventStore
from target_personalize.engine.experiments.report import readout_from_store
from tests.serve.conftest import seed_store

PERSONALIZE = str(Path(sys.executable).parent / "personalize")
VISITORS = 240
KILL_AFTER = 120


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _serve(url: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    server = subprocess.Popen(
        [
            PERSONALIZE,
            "serve",
            "--database-url",
            url,
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        stdout=subprocess.DEVNULL,
        stderr=log.open("ab"),
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"the server stopped: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return server
        except httpx.TransportError:
            time.sleep(0.1)
    server.kill()
    raise AssertionError("the server did not start in 120 s")


def _visit(client: httpx.Client, n: int) -> tuple[str, dict[str, Any]]:
    visitor, session = f"visitor-{n}", f"session-{n}"
    answer = client.get(
        "/v1/recommendations", params={"anonymous_id": visitor, "session_id": session, "k": 3}
    )
    assert answer.status_code == 200, answer.text
    served = answer.json()
    now = datetime.now(UTC).isoformat()
    events = [
        {
            "source": "e2e",
            "event_id": f"{served['rec_id']}-view",
            "event_type": "product_view",
            "event_ts": now,
            "anonymous_id": visitor,
            "session_id": session,
            "items": [{"item_id": "a", "price": 20.0}],
            "rec_id": served["rec_id"],
        }
    ]
    if n % 4 == 0:
        events.append(
            {
                "source": "e2e",
                "event_id": f"{served['rec_id']}-buy",
                "event_type": "purchase",
                "event_ts": now,
                "anonymous_id": visitor,
                "session_id": session,
                "items": [{"item_id": "pricey", "price": 500.0}],
                "revenue": 500.0,
                "rec_id": served["rec_id"],
            }
        )
    posted = client.post("/v1/events", json=events)
    assert posted.status_code == 200 and posted.json()["accepted"] == len(events), posted.text
    return visitor, served


def test_served_lists_survive_a_kill_and_read_out(tmp_path: Path) -> None:
    url = seed_store(tmp_path / "store.duckdb")
    created = subprocess.run(
        [
            PERSONALIZE,
            "experiment",
            "create",
            "e2e",
            "--variant",
            "control=popularity",
            "--variant",
            "engine=objectives:conversion=1,margin=0.5",
            "--traffic",
            "50,50",
            "--database-url",
            url,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert created.returncode == 0, created.stderr
    port, log = _free_port(), tmp_path / "server.log"
    base = f"http://127.0.0.1:{port}"
    served: dict[str, dict[str, Any]] = {}
    server = _serve(url, port, log)
    try:
        with httpx.Client(base_url=base, timeout=30) as client:
            for n in range(KILL_AFTER):
                visitor, answer = _visit(client, n)
                served[answer["rec_id"]] = {"visitor": visitor, **answer}
        server.send_signal(signal.SIGKILL)
        server.wait(timeout=30)
        # What the killed server journaled (an exposure and a list per visitor) is replayed.
        journaled = (tmp_path / "store.journal").glob("served.*.jsonl")
        assert sum(len(p.read_bytes().splitlines()) for p in journaled) == 2 * KILL_AFTER
        server = _serve(url, port, log)
        with httpx.Client(base_url=base, timeout=30) as client:
            # Half the visitors come back (same variant, a new list), then new visitors.
            for n in [*range(0, KILL_AFTER, 2), *range(KILL_AFTER, VISITORS)]:
                visitor, answer = _visit(client, n)
                served[answer["rec_id"]] = {"visitor": visitor, **answer}
            readout = client.get("/v1/experiments/e2e").json()
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)

    variant_of: dict[str, str] = {}
    for answer in served.values():
        assert (
            variant_of.setdefault(answer["visitor"], answer["variant_id"]) == answer["variant_id"]
        )
    split = {v: list(variant_of.values()).count(v) for v in ("control", "engine")}
    assert binomtest(split["control"], VISITORS, 0.5).pvalue > 0.001

    figures = {v["variant_id"]: v for v in readout["variants"]}
    assert {k: figures[k]["visitors"] for k in split} == split
    assert readout["srm"]["flagged"] is False
    assert sum(figures[k]["conversions"] for k in split) == VISITORS // 4
    assert sum(figures[k]["impressions"] for k in split) == len(served)
    assert sum(figures[k]["clicks"] for k in split) == len(served)  # every list was viewed

    with EventStore(url) as store:
        stored = {
            row[0]: row[1:]
            for row in store.query("SELECT rec_id, visitor_id, variant_id FROM impressions")
        }
        assert store.query("SELECT count(*) FROM impressions")[0][0] == len(served)
        assert stored == {r: (a["visitor"], a["variant_id"]) for r, a in served.items()}
        items = store.query(
            "SELECT count(*), count(DISTINCT rec_id || ':' || position) FROM impression_items"
        )[0]
        assert items[0] == items[1] == sum(len(a["items"]) for a in served.values())
        exposures = store.query("SELECT visitor_id, variant_id FROM exposures")
        assert sorted(exposures) == sorted(variant_of.items())  # one per visitor (one day)
        again = readout_from_store(store, "e2e")
    assert json.dumps(again["variants"]) == json.dumps(readout["variants"])
    assert not any((tmp_path / "store.journal").glob("served.*.jsonl"))
