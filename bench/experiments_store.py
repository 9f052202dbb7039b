"""How long the experiment readout takes as SQL over a store of many events.

Usage::

    nice .venv/bin/python bench/experiments_store.py                    # 10M events, DuckDB
    nice .venv/bin/python bench/experiments_store.py --events 2000000 --keep /tmp/x.duckdb

Builds a DuckDB store in SQL (seeded by the row numbers, so every run has the same data):
``events / 3.6`` visitors, each exposed once to one of two variants (half through ``exposures``
rows, half through ``experiment_exposure`` events), three product views (signed in: with a
device id too, which the readout's identity map reads) and, for one visitor
in ten, a purchase of one catalog item (half of them carrying the ``rec_id`` of the visitor's
served list); one served list of three items per visitor. Then times ``readout_from_store``
(the SQL visitor table, the attribution and the statistics) twice, the second with warm caches.
Prints the wall and CPU times (on a shared machine the CPU time says more) and the load.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from target_personalize.engine import EventStore
from target_personalize.engine.experiments import Experiment, ExperimentRegistry
from target_personalize.engine.experiments.report import readout_from_store

_T0 = "TIMESTAMP '2024-03-01 00:00:00'"
_ITEMS = 5000


def build(store: EventStore, events: int) -> None:
    """Fill ``store`` with about ``events`` events of one experiment (see the module doc)."""
    visitors = max(events * 10 // 36, 10)  # 3.6 events per visitor
    ExperimentRegistry(store).create(
        Experiment.from_cli("bench", ["control=popularity", "engine=engine"], "50,50")
    )
    run = store.backend.execute
    run(f"CREATE TEMP TABLE v AS SELECT range AS n, 'u' || range AS visitor, "
        f"CASE WHEN hash(range) % 2 = 0 THEN 'control' ELSE 'engine' END AS variant, "
        f"{_T0} + INTERVAL 1 SECOND * (range % 86400) AS ts FROM range({visitors})")  # fmt: skip
    run(f"INSERT INTO items (item_id, price, cost) SELECT 'i' || range, 10 + range % 50, "
        f"5 + range % 20 FROM range({_ITEMS})")  # fmt: skip
    run("INSERT INTO exposures SELECT 'bench' || chr(31) || visitor || chr(31) || CAST(ts AS DATE), "
        "'bench', variant, visitor, NULL, ts FROM v WHERE n % 2 = 0")  # fmt: skip
    common = (
        "source, event_id, event_name, event_type, event_ts, user_id, event_count, is_aggregate"
    )
    run(f"INSERT INTO events ({common}, experiment_id, variant_id) SELECT 'bench', 'x' || n, "
        "'Experiment Viewed', 'experiment_exposure', ts, visitor, 1, false, 'bench', variant "
        "FROM v WHERE n % 2 = 1")  # fmt: skip
    run("INSERT INTO impressions SELECT 'r' || n, 'bench', variant, visitor, NULL, ts, "
        "'[]' FROM v")  # fmt: skip
    run(f"INSERT INTO impression_items SELECT 'r' || n, k, 'i' || ((n + k) % {_ITEMS}) "
        "FROM v, range(1, 4) t(k)")  # fmt: skip
    run(f"INSERT INTO events ({common}, items, anonymous_id) SELECT 'bench', 'p' || n || '-' || k, "
        f"'Product Viewed', 'product_view', ts + INTERVAL 1 MINUTE * k, visitor, 1, false, "
        f"[{{'item_id': 'i' || ((n + k) % {_ITEMS})}}], 'a' || n "
        f"FROM v, range(1, 4) t(k)")  # fmt: skip
    run(f"INSERT INTO events ({common}, items, revenue, rec_id) SELECT 'bench', 'b' || n, "
        f"'Order Completed', 'purchase', ts + INTERVAL 1 HOUR, visitor, 1, false, "
        f"[{{'item_id': 'i' || ((n + 1) % {_ITEMS}), 'quantity': 1.0}}], 10 + (n % 50), "
        f"CASE WHEN n % 20 = 0 THEN 'r' || n END FROM v "
        f"WHERE hash(n * 7) % 1000 < CASE variant WHEN 'engine' THEN 110 ELSE 100 END")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--keep", type=Path, help="Build the store here and keep it.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = args.keep or Path(folder) / "bench.duckdb"
        with EventStore(f"duckdb:///{path}") as store:
            started = time.perf_counter()
            build(store, args.events)
            stored = store.query("SELECT count(*) FROM events")[0][0]
            print(f"built {stored:,} events in {time.perf_counter() - started:.1f} s")
        with EventStore(f"duckdb:///{path}") as store:
            for look in ("cold", "warm"):
                started, cpu = time.perf_counter(), time.process_time()
                result = readout_from_store(store, "bench")
                took = time.perf_counter() - started
                visitors = sum(v["visitors"] for v in result["variants"])
                print(
                    f"readout ({look}): {took:.2f} s ({time.process_time() - cpu:.2f} s of CPU, "
                    f"all threads) for {visitors:,} visitors"
                )
        rate = next(x for x in result["lift"] if x["metric"] == "conversion_rate")
        print(f"conversion_rate lift {rate['estimate']:+.3f} (built in: about +0.10)")
    print(f"load average (1, 5, 15 min): {os.getloadavg()}, cores {os.cpu_count()}")


if __name__ == "__main__":
    main()
