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

    .venv/bin/python bench/scale.py [N ...]        # default 1,000,000

100M events need about 3 GB of Parquet and 3 GB of DuckDB file on disk; see docs/scale.md.
"""

from __future__ import annotations

import resource
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from experiments_store import build as build_experiment  # noqa: E402
from funnel import EXPLICIT_STEPS, GENERATE_SQL  # noqa: E402

from target_personalize.engine import (  # noqa: E402
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


def run(events: int, folder: Path) -> None:
    print(
        f"{events:,} events, analysis memory_limit {ANALYSIS_MEMORY_LIMIT}; {uptime()}", flush=True
    )
    paths: list[Path] = []
    # Generated in a child process, so that the peak RSS printed is the store's work alone.
    with ProcessPoolExecutor(1) as child:
        timed(
            "generate Parquet (child process)",
            lambda: paths.extend(child.submit(write_parquet, folder, events).result()),
        )
    store_path = folder / f"store-{events}.duckdb"
    with EventStore(f"duckdb:///{store_path}") as store:
        loaded: list[int] = []
        # One load per file, as the target loads one BATCH message at a time (a load of
        # several files goes in chunks of 1M rows, within DuckDB's 256 MB load limit).
        seconds = timed(
            "BATCH backfill into DuckDB",
            lambda: loaded.extend(
                store.load_event_files([str(path)], "parquet").loaded for path in paths
            ),
        )
        total = sum(loaded)
        print(f"  {'':<34} {total / seconds:8,.0f} events/s ({total:,} events)")
        limit = f"SET memory_limit = '{ANALYSIS_MEMORY_LIMIT}'"
        store.query(limit)
        timed("discovered funnel (purchase)", lambda: discover_funnel(store, "purchase"))
        timed("explicit funnel (4 steps)", lambda: explicit_funnel(store, EXPLICIT_STEPS))
        timed("add an A/B test (N/10 events)", lambda: build_experiment(store, events // 10))
        store.query(limit)  # the A/B test's load reset it
        timed("experiment readout", lambda: readout_from_store(store, "bench"))
        fitted: list[SessionRanker] = []
        timed(
            "ranker fit, latest 30 days",
            lambda: fitted.append(SessionRanker(random_state=0).fit(store, train_window_days=30)),
        )
        data = fitted[0].data
        print(f"  {'':<34} {len(data):,} item events, {data.n_sessions:,} sessions")
    size = sum(p.stat().st_size for p in folder.glob(f"store-{events}.duckdb*"))
    parquet = sum(p.stat().st_size for p in paths)
    peak = peak_rss()
    print(
        f"  store {size / 2**20:,.0f} MiB on disk, Parquet {parquet / 2**20:,.0f} MiB, "
        f"peak RSS {peak:,.0f} MiB; {uptime()}"
    )
    for path in paths:
        path.unlink()


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


def main() -> None:
    sizes = [int(arg) for arg in sys.argv[1:]] or [1_000_000]
    with tempfile.TemporaryDirectory() as tmp:
        for events in sizes:
            run(events, Path(tmp))


if __name__ == "__main__":
    main()
