"""What recording a served list costs: the wait for its durable write, alone and in a crowd.

Usage::

    .venv/bin/python bench/served_log.py [--lists 2000] [--concurrency 64]

Opens the serving state (``ServingState``, with its journal, ``ack="journal"``) on a small
DuckDB store in a temporary directory and records lists through ``ExperimentLab.served`` as
the ranking endpoints do: first one at a time (each waits for its own flush), then
``--concurrency`` at once (lists answered meanwhile share a flush). Prints the wait per list
(p50/p90/p99), the lists per journal flush, and the load average (the machine is shared).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from target_personalize.engine import EventStore  # noqa: E402
from target_personalize.engine.experiments import Experiment, assign  # noqa: E402
from target_personalize.engine.ranking.contract import ScoredItem  # noqa: E402
from target_personalize.serve.experiments import Assignment, ExperimentLab  # noqa: E402
from target_personalize.serve.service import ServingState  # noqa: E402
from target_personalize.serve.settings import ServeSettings  # noqa: E402

ITEMS = [ScoredItem(f"item-{n}", 1.0, 1.0, 0.1, None) for n in range(20)]


def _percentiles(values: list[float]) -> str:
    ordered = sorted(values)
    at = [ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] for q in (0.5, 0.9, 0.99)]
    return "p50 {:.2f} ms, p90 {:.2f} ms, p99 {:.2f} ms".format(*(1000 * x for x in at))


async def _run(url: str, lists: int, concurrency: int) -> None:
    serving = ServingState(ServeSettings(database_url=url))
    lab = ExperimentLab(serving)
    await lab.start()
    journal = lab.log.journal
    assert journal is not None
    flushes = 0
    append = journal.append

    def counted(batches: list[list[dict[str, object]]]) -> int:
        nonlocal flushes
        flushes += 1
        return append(batches)

    journal.append = counted  # type: ignore[method-assign]
    experiment = Experiment.from_cli("bench", ["control=popularity", "engine=engine"])

    def assignment(n: int) -> Assignment:
        visitor = f"visitor-{n}"
        variant = assign(experiment, visitor)
        assert variant is not None
        return Assignment(experiment, variant, visitor)

    async def one(n: int) -> float:
        began = time.perf_counter()
        await lab.served(assignment(n), f"session-{n}", ITEMS)
        return time.perf_counter() - began

    alone = [await one(n) for n in range(lists // 4)]
    print(f"one at a time: {len(alone)} lists, {flushes} flushes; wait {_percentiles(alone)}")
    flushes = 0
    semaphore = asyncio.Semaphore(concurrency)

    async def crowded(n: int) -> float:
        async with semaphore:
            return await one(n)

    began = time.perf_counter()
    together = await asyncio.gather(*(crowded(lists + n) for n in range(lists)))
    elapsed = time.perf_counter() - began
    print(
        f"{concurrency} at once: {lists} lists, {flushes} flushes "
        f"({lists / max(flushes, 1):.1f} lists each), {lists / elapsed:.0f} lists/s; "
        f"wait {_percentiles(list(together))}"
    )
    await lab.close()
    serving.close()
    with EventStore(url) as store:
        stored = store.query("SELECT count(*) FROM impressions")[0][0]
    print(f"impressions stored: {stored} of {len(alone) + lists}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lists", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory(prefix="bench-served-", dir=ROOT) as tmp:
        url = f"duckdb:///{Path(tmp) / 'store.duckdb'}"
        with EventStore(url) as store:
            store.load_events(
                [
                    {
                        "source": "bench",
                        "event_id": str(n),
                        "event_type": "product_view",
                        "event_ts": "2024-05-01T10:00:00Z",
                        "session_id": f"s{n // 5}",
                        "items": [{"item_id": f"item-{n % 50}"}],
                    }
                    for n in range(500)
                ]
            )
        asyncio.run(_run(url, args.lists, args.concurrency))
    print(f"load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
