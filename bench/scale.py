"""Scale: a backfill of N synthetic events through BATCH files, then funnels and a readout.

Streams N canonical events (sessions of 2-16 events, three sessions per visitor, 50,000 items;
the generator of ``bench/funnel.py``, its sessions spread over a year) into Parquet files of
1M events each, written by DuckDB chunk by chunk so no more than one chunk is ever in memory;
then, into a fresh DuckDB store:
  - the BATCH backfill: ``EventStore.load_event_files`` over all files (what the target does
    with the tap's BATCH messages), events/s;
  - funnel mining (under ``ANALYSIS_MEMORY_LIMIT``, as the readout and the fit): the discovered funnel (key conversion ``purchase``) and an explicit one;
  - an experiment readout over ``N / 10`` more events of one A/B test (``bench/experiments_store``);
  - the session ranker's fit on the latest 30 days (``train_window_days=30``, about a twelfth
    of the events);
and prints seconds, this process's peak RSS after each step (the Parquet files are written by
a child process), the store's size on disk and ``uptime``.

    .venv/bin/python bench/scale.py [N ...]        # default 1,000,000, into DuckDB
    .venv/bin/python bench/scale.py 1000000 \
        --database-url postgresql+psycopg://postgres@127.0.0.1/test

With ``--database-url`` the same steps run against a PostgreSQL store in a new schema
(``bench_scale_PID_N``) of that database, dropped after each size: the backfill goes through
the target's PostgreSQL path (Python reads the Parquet, checks each event, COPY, merge by
primary key); the A/B test is generated in DuckDB and copied in. The size on disk is
``pg_total_relation_size`` of the schema's tables (indexes and TOAST included), and the server
backend's peak RSS (``VmHWM``, shared buffers it touched included) is printed next to this
process's.

100M events need about 3 GB of Parquet and 3 GB of DuckDB file on disk; see docs/scale.md.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from experiments_store import build as build_experiment  # noqa: E402
from funnel import EXPLICIT_STEPS, GENERATE_SQL  # noqa: E402

from target_personalize.engine import (  # noqa: E402
    EVENT_COLUMNS,
    EventStore,
    SessionRanker,
    discover_funnel,
    explicit_funnel,
)
from target_personalize.engine.experiments.report import readout_from_store  # noqa: E402

CHUNK_EVENTS = 1_000_000
#: DuckDB's memory limit for the funnels, the readout and the fit (loads set their own 256 MB):
#: without it DuckDB may take 80% of the RAM, and the discovered funnel took 3.3 GB at 20M.
ANALYSIS_MEMORY_LIMIT = "2GB"
EVENTS_PER_SESSION = 9  # the generator's average


def write_parquet(folder: Path, events: int) -> list[Path]:
    """Write about ``events`` generated events as Parquet files of ``CHUNK_EVENTS`` each."""
    sessions = max(1, events // EVENTS_PER_SESSION)
    step = max(1, CHUNK_EVENTS // EVENTS_PER_SESSION)
    paths = []
    with EventStore("duckdb:///:memory:") as scratch:
        for number, start in enumerate(range(0, sessions, step)):
            end = min(sessions, start + step)
            chunk = GENERATE_SQL.replace("range({sessions})", "range({start}, {end})")
            # Sessions in order over a year (the generator puts them on three days).
            chunk = chunk.replace("(s % 3) * 86400", f"(s * 365 // {sessions}) * 86400")
            scratch.query(chunk.format(start=start, end=end))
            path = folder / f"events-{number:05d}.parquet"
            scratch.query(f"COPY events TO '{path}' (FORMAT parquet)")
            scratch.query("DELETE FROM events")
            paths.append(path)
    return paths


def timed(label: str, work: object) -> float:
    """Run ``work``; print its seconds and the process's peak RSS so far."""
    started = time.perf_counter()
    work()  # type: ignore[operator]
    seconds = time.perf_counter() - started
    print(f"  {label:<34} {seconds:8.1f} s  peak RSS {peak_rss():6,.0f} MiB", flush=True)
    return seconds


def peak_rss() -> float:
    """This process's peak resident memory so far, in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(events: int, folder: Path, server: str | None) -> None:
    where = "PostgreSQL" if server else "DuckDB"
    limit = "none (PostgreSQL)" if server else ANALYSIS_MEMORY_LIMIT
    print(f"{events:,} events into {where}, analysis memory_limit {limit}; {uptime()}", flush=True)
    paths: list[Path] = []
    # Generated in a child process, so that the peak RSS printed is the store's work alone.
    with ProcessPoolExecutor(1) as child:
        timed(
            "generate Parquet (child process)",
            lambda: paths.extend(child.submit(write_parquet, folder, events).result()),
        )
    opened = postgres_store(server, events) if server else duckdb_store(folder, events)
    with opened as (store, size_on_disk):
        loaded: list[int] = []
        # One load per file, as the target loads one BATCH message at a time (a load of
        # several files goes in chunks of 1M rows, within DuckDB's 256 MB load limit).
        seconds = timed(
            f"BATCH backfill into {where}",
            lambda: loaded.extend(
                store.load_event_files([str(path)], "parquet").loaded for path in paths
            ),
        )
        total = sum(loaded)
        print(f"  {'':<34} {total / seconds:8,.0f} events/s ({total:,} events)")
        analyse = analysis_limit(store)
        analyse()
        timed("discovered funnel (purchase)", lambda: discover_funnel(store, "purchase"))
        timed("explicit funnel (4 steps)", lambda: explicit_funnel(store, EXPLICIT_STEPS))
        if server:
            timed("add an A/B test (N/10 events)", lambda: copy_experiment(store, events // 10))
        else:
            timed("add an A/B test (N/10 events)", lambda: build_experiment(store, events // 10))
        analyse()  # the A/B test's load reset it
        timed("experiment readout", lambda: readout_from_store(store, "bench"))
        fitted: list[SessionRanker] = []
        timed(
            "ranker fit, latest 30 days",
            lambda: fitted.append(SessionRanker(random_state=0).fit(store, train_window_days=30)),
        )
        data = fitted[0].data
        print(f"  {'':<34} {len(data):,} item events, {data.n_sessions:,} sessions")
        server_peak = backend_peak_rss(store) if server else ""
        store.close()
        size = size_on_disk()
    parquet = sum(p.stat().st_size for p in paths)
    peak = peak_rss()
    print(
        f"  store {size / 2**20:,.0f} MiB on disk, Parquet {parquet / 2**20:,.0f} MiB, "
        f"peak RSS {peak:,.0f} MiB{server_peak}; {uptime()}"
    )
    for path in paths:
        path.unlink()


@contextlib.contextmanager
def duckdb_store(folder: Path, events: int) -> Iterator[tuple[EventStore, Callable[[], int]]]:
    """A fresh DuckDB store file, and how to measure its size on disk once closed."""
    store_path = folder / f"store-{events}.duckdb"
    with EventStore(f"duckdb:///{store_path}") as store:
        yield store, lambda: sum(p.stat().st_size for p in folder.glob(f"store-{events}.duckdb*"))
    for path in folder.glob(f"store-{events}.duckdb*"):
        path.unlink()


@contextlib.contextmanager
def postgres_store(server: str, events: int) -> Iterator[tuple[EventStore, Callable[[], int]]]:
    """A store in a new schema of the PostgreSQL database ``server``, dropped afterwards."""
    import psycopg  # noqa: PLC0415

    schema = f"bench_scale_{os.getpid()}_{events}"
    joiner = "&" if "?" in server else "?"
    conninfo = server.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(conninfo, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
        try:

            def size() -> int:
                found = admin.execute(
                    "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
                    "JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE n.nspname = %s AND c.relkind = 'r'",
                    [schema],
                ).fetchone()
                return int(found[0]) if found else 0

            url = f"{server}{joiner}options=-csearch_path%3D{schema}"
            with EventStore(url) as store:
                yield store, size
        finally:
            admin.execute(f"DROP SCHEMA {schema} CASCADE")


def analysis_limit(store: EventStore) -> Callable[[], None]:
    """What sets the analysis memory limit (DuckDB's; PostgreSQL keeps its own settings)."""

    def limit() -> None:
        if store.dialect == "duckdb":
            store.query(f"SET memory_limit = '{ANALYSIS_MEMORY_LIMIT}'")

    return limit


def copy_experiment(store: EventStore, events: int) -> None:
    """Add ``bench/experiments_store``'s A/B test: built in DuckDB, copied into ``store``.

    The events go through the store's BATCH path (Parquet); the other tables by COPY.
    """
    connection = store.backend.connection  # type: ignore[attr-defined]
    with tempfile.TemporaryDirectory() as folder, EventStore("duckdb:///:memory:") as scratch:
        build_experiment(scratch, events)
        export = Path(folder) / "experiment.parquet"
        names = ", ".join(EVENT_COLUMNS)
        scratch.query(f"COPY (SELECT {names} FROM events) TO '{export}' (FORMAT parquet)")
        store.load_event_files([str(export)], "parquet")
        for table in ("experiments", "items", "exposures", "impressions", "impression_items"):
            rows = scratch.query(f"SELECT * FROM {table}")
            with connection.cursor() as cursor, cursor.copy(f"COPY {table} FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        connection.execute("ANALYZE")


def backend_peak_rss(store: EventStore) -> str:
    """The PostgreSQL server process's peak RSS (``VmHWM``), when this machine runs it."""
    pid = store.query("SELECT pg_backend_pid()")[0][0]
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return f", server backend peak RSS {int(line.split()[1]) / 1024:,.0f} MiB"
    return ""


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sizes", type=int, nargs="*", default=[1_000_000], metavar="N")
    parser.add_argument(
        "--database-url",
        help="A PostgreSQL server, e.g. postgresql+psycopg://postgres@127.0.0.1/test: the store "
        "goes in a new schema of it, dropped after each size (default: a DuckDB file).",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for events in args.sizes:
            run(events, Path(tmp), args.database_url)


if __name__ == "__main__":
    main()
