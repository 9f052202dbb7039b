"""What the engine's analytics would scan and cost on a warehouse: measured here, scaled to 10B.

Builds a DuckDB store of N generated events (``bench/scale.py``'s Parquet files, one load per
file) plus an A/B test of N/10 events (``bench/experiments_store.py``), then runs the
discovered funnel, the four-step explicit funnel and the experiment readout, recording every
statement each runs. Per job it measures:

  - the CPU seconds the process spent (DuckDB's threads included), per million events;
  - the bytes it scans: for every scan of the ``events`` table in DuckDB's plans of its
    statements, the compressed Parquet size of the columns that scan reads, summed (a columnar
    warehouse reads those columns too; it may prune partitions DuckDB reads whole).

Then scales both linearly to a store of 10B events and prints, per job, the TiB scanned,
BigQuery's on-demand price for that scan, and Snowflake's credits (node-hours), with the time
on a few warehouse sizes. How that estimate is made, and what it
assumes, is in docs/scale.md.

    .venv/bin/python bench/warehouse_scan.py [N]       # default 2,000,000
"""

from __future__ import annotations

import json
import re
import resource
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from experiments_store import build as build_experiment  # noqa: E402
from funnel import EXPLICIT_STEPS  # noqa: E402
from scale import uptime, write_parquet  # noqa: E402

from target_personalize.engine import EventStore, discover_funnel, explicit_funnel  # noqa: E402
from target_personalize.engine.experiments.report import readout_from_store  # noqa: E402

TARGET_EVENTS = 10_000_000_000
#: A Snowflake warehouse node: 8 cores, billed 1 credit per hour (docs/scale.md says whence).
CORES_PER_NODE = 8
#: BigQuery's on-demand analysis price per TiB scanned (US multi-region, at the time of writing).
BIGQUERY_USD_PER_TIB = 6.25
SIZES = {"X-Small": 1, "Medium": 4, "Large": 8, "X-Large": 16}


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def recorded(store: EventStore, work: Callable[[], object]) -> tuple[float, list[list[str]]]:
    """Run ``work``: its CPU seconds, and the ``events`` columns each of its table scans read.

    Before each statement that names ``events`` runs, DuckDB's plan for it (``EXPLAIN``) says
    which columns its scans of ``events`` read, after DuckDB's own projection pushdown.
    """
    scans: list[list[str]] = []
    backend = store.backend
    execute, execute_arrays = backend.execute, backend.execute_arrays
    measuring = [0.0]  # CPU seconds spent planning, not counted as the job's

    def keep(run: Callable[..., Any]) -> Callable[..., Any]:
        def call(sql: str, params: Sequence[Any] = ()) -> Any:
            if re.search(r"\bevents\b", sql):
                started = cpu_seconds()
                plan = execute(f"EXPLAIN (FORMAT json) {sql}", params)[0][1]
                scans.extend(events_scans(json.loads(plan)))
                measuring[0] += cpu_seconds() - started
            return run(sql, params)

        return call

    backend.execute = keep(execute)  # type: ignore[method-assign]
    backend.execute_arrays = keep(execute_arrays)  # type: ignore[method-assign]
    try:
        started = cpu_seconds()
        work()
        return cpu_seconds() - started - measuring[0], scans
    finally:
        backend.execute, backend.execute_arrays = execute, execute_arrays  # type: ignore[method-assign]


def events_scans(nodes: list[dict[str, Any]]) -> Iterator[list[str]]:
    """The columns of each scan of ``events`` in a DuckDB JSON plan (filters' columns too)."""
    for node in nodes:
        info = node.get("extra_info", {})
        if str(info.get("Table", "")).split(".")[-1] == "events":
            columns = list(info.get("Projections", []))
            filters = str(info.get("Filters", ""))
            columns += re.findall(r"[a-z_]+", filters)
            yield columns
        yield from events_scans(node.get("children", []))


def column_bytes(store: EventStore, folder: Path) -> dict[str, int]:
    """Compressed Parquet bytes of each top-level column of the store's ``events`` table."""
    path = folder / "events-all.parquet"
    store.query(f"COPY events TO '{path}' (FORMAT parquet)")
    rows = store.query(
        "SELECT split_part(path_in_schema, ', ', 1), sum(total_compressed_size) "
        f"FROM parquet_metadata('{path}') GROUP BY 1"
    )
    path.unlink()
    return {str(name): int(size) for name, size in rows}


def scanned_bytes(scans: list[list[str]], sizes: dict[str, float]) -> float:
    """Bytes of the ``events`` columns the scans read, each scan counted."""
    return sum(sum(sizes.get(name, 0.0) for name in set(columns)) for columns in scans)


def main() -> None:
    events = int(sys.argv[1]) if len(sys.argv) > 1 else 2_000_000
    print(f"{events:,} generated events; {uptime()}", flush=True)
    #: job -> (CPU seconds, its scans' columns, events in the store when it ran)
    jobs: dict[str, tuple[float, list[list[str]], int]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        paths = write_parquet(folder, events)
        with EventStore(f"duckdb:///{folder / 'store.duckdb'}") as store:
            for path in paths:
                store.load_event_files([str(path)], "parquet")
                path.unlink()
            stored = store.query("SELECT count(*) FROM events")[0][0]
            for name, work in (
                ("discovered funnel", lambda: discover_funnel(store, "purchase")),
                ("explicit funnel", lambda: explicit_funnel(store, EXPLICIT_STEPS)),
            ):
                jobs[name] = (*recorded(store, work), stored)
            build_experiment(store, events // 10)
            stored = store.query("SELECT count(*) FROM events")[0][0]
            jobs["experiment readout"] = (
                *recorded(store, lambda: readout_from_store(store, "bench")),
                stored,
            )
            sizes = column_bytes(store, folder)
    stored = max(events for _, _, events in jobs.values())
    per_event = {name: size / stored for name, size in sizes.items()}
    print(f"store: {stored:,} events, {sum(per_event.values()):.1f} compressed bytes per event")
    print(f"{'job':<20} {'CPU s/1M':>9} {'B/event':>8} {'TiB @10B':>9} {'BigQuery $':>11} "
          f"{'credits':>8}  " + "  ".join(f"{s:>8}" for s in SIZES))  # fmt: skip
    for name, (seconds, scans, events_then) in jobs.items():
        scanned = scanned_bytes(scans, per_event)
        tib = scanned * TARGET_EVENTS / 2**40
        # One credit per node-hour: credits = node-hours, whatever the warehouse size.
        credits = seconds / events_then * TARGET_EVENTS / 3600 / CORES_PER_NODE
        times = "  ".join(f"{credits / nodes * 60:6.1f} m" for nodes in SIZES.values())
        print(
            f"{name:<20} {seconds / events_then * 1e6:9.2f} {scanned:8.1f} {tib:9.3f} "
            f"{tib * BIGQUERY_USD_PER_TIB:11.2f} {credits:8.1f}  {times}"
        )
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MiB; "
          f"{uptime()}")  # fmt: skip


if __name__ == "__main__":
    main()
