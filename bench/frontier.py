"""How long the served frontier (GET /v1/tradeoff) takes, and what requests pay meanwhile.

Usage::

    .venv/bin/python bench/frontier.py

Loads the REES46 sample into a DuckDB store in a temporary directory, starts the server on it
(a loopback uvicorn in a thread of this process, as the tests do) and asks for the sample
session's recommendations without pause until ``/v1/tradeoff`` is ready, then 200 times
more. Prints when the frontier was ready, the recommendation latency (p50/p99) while it was
computed and after, the frontier's points, and the load average (the machine is shared).
The client runs in the server's process, so both latencies include its share of the CPU.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from ranking import rees46_events  # noqa: E402

from target_personalize.engine import EventStore  # noqa: E402
from target_personalize.serve import KeyRing, ServeSettings  # noqa: E402
from tests.serve.conftest import running  # noqa: E402


def _quantiles(ms: list[float]) -> str:
    if not ms:
        return "-"
    ordered = sorted(ms)
    return (
        f"{statistics.median(ordered):.1f} / {ordered[max(0, int(len(ordered) * 0.99) - 1)]:.1f} ms"
    )


def main() -> None:
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as folder:
        url = f"duckdb:///{Path(folder) / 'rees46.duckdb'}"
        with EventStore(url) as store:
            store.load_events(list(rees46_events()))
        started = time.perf_counter()
        settings = ServeSettings(database_url=url, refresh_seconds=0)
        with running(settings, keys=KeyRing([])) as server:
            client = server.client
            session = client.get("/v1/model").json()["sample_session"]

            def recommend() -> float:
                began = time.perf_counter()
                client.get("/v1/recommendations", params={"session_id": session})
                return (time.perf_counter() - began) * 1000

            during: list[float] = []
            while (answer := client.get("/v1/tradeoff")).status_code == 202:
                during.append(recommend())
            ready = time.perf_counter() - started
            after = [recommend() for _ in range(200)]
    body = answer.json()
    print(
        f"frontier {body['status']} {ready:.1f} s after the server started: "
        f"{body.get('sessions')} sessions, {body.get('predictions')} predictions, "
        f"{len(body.get('points', []))} settings"
    )
    print(f"recommend p50 / p99 while computing: {_quantiles(during)} ({len(during)} requests)")
    print(f"recommend p50 / p99 after: {_quantiles(after)}")
    for point in body.get("points", []):
        print(
            f"  {point['label']:<28} conversion hit {point['conversion_hit_rate']['value']:.3f}"
            f"  realized value {point['realized_value']['value']:.3f}"
            + ("  frontier" if point["on_frontier"] else "")
            + ("  current" if point["current"] else "")
        )
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
