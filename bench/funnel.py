"""Benchmark funnel mining on generated clickstream in DuckDB.

Generates sessions of e-commerce events inside DuckDB with SQL only (no Python objects per
event), then times a discovered funnel (key conversion ``purchase``) and an explicit funnel
(``page_view -> product_view -> add_to_cart -> purchase``, loose order, 7-day window), each in
a fresh subprocess so that peak memory belongs to that computation alone.

    .venv/bin/python bench/funnel.py                       # 1M and 10M events
    .venv/bin/python bench/funnel.py --repeat 3            # median of three runs each
    .venv/bin/python bench/funnel.py --sizes 1000000 --keep --dir /tmp/funnel-bench

Reported per run: wall seconds, the process's peak resident memory (DuckDB included) and the
peak of Python's own heap (tracemalloc), which shows that no per-event Python objects exist.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
import typing as t
from pathlib import Path

from target_personalize.engine import EventStore, discover_funnel, explicit_funnel

#: Events per session average 9 (2..16); three consecutive sessions share a user.
GENERATE_SQL = """
INSERT INTO events (source, event_id, event_name, event_type, event_ts, user_id, session_id,
                    items, event_count, is_aggregate, engagement_ms, scroll_depth_pct)
WITH sessions AS (
    SELECT s, s // 3 AS u,
        CAST(2 + hash(s, 1) % 15 AS BIGINT) AS len,
        CAST(hash(s, 2) % 100 AS BIGINT) AS depth
    FROM range({sessions}) t(s)
), steps AS (
    SELECT s, u, len, depth, k FROM sessions, range(16) r(k) WHERE k < len
), typed AS (
    SELECT *, CASE
        WHEN k = 0 THEN 'page_view'
        WHEN k = len - 1 AND depth < 4 THEN 'purchase'
        WHEN k = len - 2 AND depth < 7 THEN 'begin_checkout'
        WHEN k = len - 3 AND depth < 15 THEN 'add_to_cart'
        ELSE ['product_view', 'product_view', 'product_view', 'search', 'category_view',
              'page_view'][1 + CAST(hash(s, k, 3) % 6 AS BIGINT)]
    END AS event_type
    FROM steps
)
SELECT 'bench', 'e' || s || '-' || k, event_type, event_type,
    TIMESTAMP '2024-01-01' + to_seconds(CAST(
        (s % 3) * 86400 + hash(u, 4) % 80000 + k * 40 + hash(s, k, 5) % 30 AS BIGINT)),
    'user-' || u, 'session-' || s,
    [{{'item_id': 'item-' || CAST(hash(s, k, 8) % 50000 AS BIGINT), 'name': NULL,
       'category': NULL, 'brand': NULL, 'variant': NULL,
       'price': CAST(hash(s, k, 9) % 20000 AS DOUBLE) / 100, 'quantity': 1.0,
       'position': NULL}}],
    1, false,
    CASE WHEN event_type IN ('product_view', 'page_view')
        THEN CAST(hash(s, k, 6) % 120000 AS DOUBLE) END,
    CASE WHEN event_type = 'product_view' THEN CAST(hash(s, k, 7) % 101 AS DOUBLE) END
FROM typed
"""

EXPLICIT_STEPS = ["page_view", "product_view", "add_to_cart", "purchase"]


def generate(path: Path, events: int) -> int:
    """Create a DuckDB store at ``path`` holding about ``events`` generated events."""
    if path.exists():
        path.unlink()
    with EventStore(f"duckdb:///{path}") as store:
        store.query(GENERATE_SQL.format(sessions=max(1, events // 9)))
        return int(store.query("SELECT count(*) FROM events")[0][0])


def run_one(path: Path, kind: str) -> dict[str, object]:
    """Run one funnel computation in this process and measure it."""
    tracemalloc.start()
    with EventStore(f"duckdb:///{path}") as store:
        started = time.perf_counter()
        if kind == "discovered":
            result = discover_funnel(store, "purchase")
            summary = {
                "units": result.units,
                "converters": result.converters,
                "steps": [s.event_type for s in result.steps],
            }
        else:
            funnel = explicit_funnel(store, EXPLICIT_STEPS)
            summary = {"steps": [s.units for s in funnel.steps]}
        seconds = time.perf_counter() - started
    _, python_peak = tracemalloc.get_traced_memory()
    return {
        "seconds": round(seconds, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "python_heap_peak_mb": round(python_peak / 2**20, 1),
        **summary,
    }


def measure(path: Path, kind: str) -> dict[str, t.Any]:
    """Run one funnel in a fresh Python process and return its measurements."""
    output = subprocess.run(
        [sys.executable, __file__, "--one", str(path), kind],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return dict(json.loads(output.strip().splitlines()[-1]))


def main() -> None:
    """Generate, run each funnel in a subprocess, print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000000,10000000")
    parser.add_argument("--dir", type=Path, default=None, help="where the DuckDB files go")
    parser.add_argument("--keep", action="store_true", help="reuse and keep generated files")
    parser.add_argument(
        "--repeat", type=int, default=1, help="runs per funnel; the median time is shown"
    )
    parser.add_argument("--one", nargs=2, metavar=("FILE", "KIND"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(Path(args.one[0]), args.one[1])))
        return
    directory = args.dir or Path(tempfile.mkdtemp(prefix="funnel-bench-"))
    directory.mkdir(parents=True, exist_ok=True)
    print(
        f"{'events':>12} {'funnel':>10} {'seconds':>8} {'peak RSS MB':>12} "
        f"{'Python heap MB':>15}  result"
    )
    for size in [int(s) for s in args.sizes.split(",")]:
        path = directory / f"bench-{size}.duckdb"
        started = time.perf_counter()
        if args.keep and path.exists():
            with EventStore(f"duckdb:///{path}") as store:
                count = int(store.query("SELECT count(*) FROM events")[0][0])
        else:
            count = generate(path, size)
        print(f"{count:>12,} {'(generate)':>10} {time.perf_counter() - started:>8.2f}")
        for kind in ("discovered", "explicit"):
            runs = [measure(path, kind) for _ in range(max(1, args.repeat))]
            row = runs[0]
            seconds = statistics.median(r["seconds"] for r in runs)
            rss = max(r["peak_rss_mb"] for r in runs)
            detail = {
                k: v
                for k, v in row.items()
                if k not in {"seconds", "peak_rss_mb", "python_heap_peak_mb"}
            }
            spread = (
                f" (runs: {', '.join(str(r['seconds']) for r in runs)})" if len(runs) > 1 else ""
            )
            print(
                f"{count:>12,} {kind:>10} {seconds:>8.2f} {rss:>12} "
                f"{row['python_heap_peak_mb']:>15}  {json.dumps(detail)}{spread}"
            )
        if not args.keep:
            path.unlink()


if __name__ == "__main__":
    main()
