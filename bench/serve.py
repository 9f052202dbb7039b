"""Load test of ``personalize serve`` on loopback: concurrent ingest and recommendations.

Usage::

    .venv/bin/python bench/serve.py                      # 500 requests/s for 60 s
    .venv/bin/python bench/serve.py --rate 300 --duration 20 --events 200000
    .venv/bin/python bench/serve.py --mix browser        # what pages running personalize.js send
    .venv/bin/python bench/serve.py --workers 2 --state-url redis://127.0.0.1:6379/0 \
        --postgres postgresql+psycopg://postgres@127.0.0.1/test --restart-redis

What it does:

1. generates the shop of ``bench/ranking.py`` (``--events``, ``--items``; seeded) into a temporary
   directory, or copies ``--database-url``'s DuckDB file there, and starts ``personalize serve``
   on it as a child process on a free loopback port (the server fits and saves the ranker
   when none is saved; that start is not timed);
2. sends an open-loop schedule of ``--rate`` requests per second for ``--duration`` seconds
   (evenly spaced, so a slow answer does not slow the schedule down: latency counts from the
   moment a request was due, not when it went out) over ``--connections`` keep-alive
   connections (at most that many requests in flight): ``--ingest-share`` of them
   ``POST /v1/events`` with one new product view of a simulated visitor, the rest
   ``GET /v1/recommendations`` for one of those visitors (k=20) or, one in five,
   ``POST /v1/rank`` of 20 candidates;
   With ``--mix browser`` the requests are those of pages running ``personalize.js``: batches
   of 1 to 20 events as ``text/plain`` to ``POST /v1/events?partial=true&writeKey=...`` and
   ``GET /v1/recommendations?session_id=...&k=8&writeKey=...``, each with the ``Origin`` of a
   browser key made for the run (the server's per-address browser rate is lifted: every
   request comes from this one address);
3. reports throughput, p50/p90/p99/max latency per endpoint and overall, errors, the server's
   CPU time and the load average, then stops the server (with ``--crash``: kills it with
   SIGKILL and starts it again, which replays its journal) and checks that the store holds
   exactly the events that were acknowledged (no more, no fewer).

With ``--workers N --state-url redis://...`` (and ``--postgres``: several processes need a
store they can all write), it measures instead, in the same run, the most requests per second
answered at p99 < ``--p99-ms`` (20) by one worker and by N workers sharing live state in
Redis: the server is started with ``--workers 1``, then ``--workers N``, and for each the
rates of ``--rates`` are tried in turn (``--step-seconds`` each, after every worker has
answered and ``--warmup-seconds`` of unmeasured load) until one misses the p99 or has
errors; each step reports the servers' CPU milliseconds per request. Then N workers take
``--rate`` for ``--duration`` seconds while Redis is stopped for ``--redis-pause`` seconds
mid-run and started again (``--restart-redis``: the bench runs a redis-server of its own on
a free port for this, never stopping yours). Every acknowledged event of every step must be
in the store at the end.

The client is a minimal asyncio HTTP/1.1 client (keep-alive, Content-Length), so it costs
the two shared cores as little as possible. Exits non-zero on errors or lost events.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
BROWSER_ORIGIN = "https://shop.bench.example"
sys.path.insert(0, str(ROOT))


class Connection:
    """One keep-alive HTTP/1.1 connection."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(
        self, method: str, path: str, body: bytes | None = None, headers: str = ""
    ) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        head = f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\n{headers}"
        if body is not None:
            kind = "text/plain" if "Origin:" in headers else "application/json"
            head += f"Content-Type: {kind}\r\nContent-Length: {len(body)}\r\n"
        self.writer.write(head.encode() + b"\r\n" + (body or b""))
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionError("connection closed")
        status = int(status_line.split()[1])
        length = 0
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def create_experiment(url: str) -> None:
    """Define the experiment ``bench`` in the store before the server starts."""
    subprocess.run(
        [
            str(Path(sys.executable).parent / "personalize"),
            "experiment",
            "create",
            f"bench{int(time.time())}",
            "--variant",
            "control=popularity",
            "--variant",
            "engine=engine",
            "--database-url",
            url,
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )


def prepare_store(args: argparse.Namespace, directory: Path) -> str:
    if args.database_url:
        source = Path(args.database_url.removeprefix("duckdb:///"))
        shutil.copy(source, directory / "shop.duckdb")
        return f"duckdb:///{directory / 'shop.duckdb'}"
    from bench.ranking import make_shop  # noqa: PLC0415 - needs ROOT on sys.path

    return make_shop(directory, args.events, args.items)


@contextlib.contextmanager
def postgres_copy(server: str, shop_url: str, directory: Path) -> Iterator[str]:
    """The generated shop in a new schema of the PostgreSQL database ``server``, dropped after."""
    import psycopg  # noqa: PLC0415

    from target_personalize.engine import EVENT_COLUMNS, ITEM_COLUMNS, EventStore  # noqa: PLC0415

    schema = f"bench_serve_{os.getpid()}"
    joiner = "&" if "?" in server else "?"
    url = f"{server}{joiner}options=-csearch_path%3D{schema}"
    conninfo = server.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(conninfo, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
        try:
            began = time.perf_counter()
            with EventStore(shop_url) as shop, EventStore(url) as store:
                export = directory / "events.parquet"
                shop.query(
                    f"COPY (SELECT {', '.join(EVENT_COLUMNS)} FROM events) TO '{export}' "
                    "(FORMAT parquet)"
                )
                loaded = store.load_event_files([str(export)], "parquet")
                names = list(ITEM_COLUMNS)
                rows = shop.query(f"SELECT {', '.join(names)} FROM items")
                store.load_items([dict(zip(names, row, strict=True)) for row in rows])
            print(
                f"copied {loaded.loaded:,} events and {len(rows):,} items to PostgreSQL schema "
                f"{schema} in {time.perf_counter() - began:.1f} s",
                file=sys.stderr,
            )
            yield url
        finally:
            admin.execute(f"DROP SCHEMA {schema} CASCADE")


def start_server(
    url: str,
    port: int,
    ack: str | None,
    flush_ms: float | None = None,
    refresh_minutes: float | None = None,
    *,
    extra: tuple[str, ...] = (),
) -> subprocess.Popen[bytes]:
    command = [
        sys.executable,
        "-c",
        "from target_personalize.cli import main; main()",
        "serve",
        "--database-url",
        url,
        "--port",
        str(port),
        "--log-level",
        "warning",
        *([] if ack is None else ["--ack", ack]),
        *([] if refresh_minutes is None else ["--refresh-minutes", str(refresh_minutes)]),
        *([] if flush_ms is None else ["--flush-ms", str(flush_ms)]),
        *extra,
    ]
    env = {**os.environ, "PERSONALIZE_API_KEYS": "", "PERSONALIZE_API_KEYS_FILE": ""}
    env.pop("PERSONALIZE_API_KEYS_FILE")
    return subprocess.Popen(command, cwd=ROOT, env=env)


def stop(process: subprocess.Popen[bytes], *, crash: bool) -> None:
    """Stop the server: SIGINT (it finishes its work), or SIGKILL with ``crash``."""
    if crash:
        process.kill()
        process.wait()
        return
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()


async def wait_ready(port: int, process: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}")
        try:
            connection = Connection("127.0.0.1", port)
            status, _ = await connection.request("GET", "/healthz")
            connection.close()
            if status == 200:
                return
        except OSError:
            pass
        await asyncio.sleep(0.2)
    raise RuntimeError("the server did not start in time")


async def sample_items(port: int) -> list[str]:
    """Item ids to use: the recommendations for a few stored sessions, else generated ids."""
    connection = Connection("127.0.0.1", port)
    _, body = await connection.request("GET", "/v1/model")
    model = json.loads(body)
    items: list[str] = []
    if model.get("sample_session"):
        _, body = await connection.request(
            # experiment=-: outside the experiment, so every impression is the load's.
            "GET",
            f"/v1/recommendations?session_id={model['sample_session']}&k=200&experiment=-",
        )
        items = [item["item_id"] for item in json.loads(body)["items"]]
    connection.close()
    return items or [f"i{n:06d}" for n in range(1000)]


class Recorder:
    def __init__(self) -> None:
        self.latencies: dict[str, list[float]] = {}
        self.errors: dict[str, int] = {}
        self.error_samples: list[str] = []
        self.acknowledged: set[str] = set()
        self.batch_sizes: list[int] = []
        self.sent_events: set[str] = set()

    def add(self, kind: str, seconds: float, ok: bool, detail: str = "") -> None:
        self.latencies.setdefault(kind, []).append(seconds * 1000)
        if not ok:
            self.errors[kind] = self.errors.get(kind, 0) + 1
            if len(self.error_samples) < 5:
                self.error_samples.append(f"{kind}: {detail[:200]}")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    at = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[at]


async def run_load(
    args: argparse.Namespace,
    port: int,
    recorder: Recorder,
    run: str,
    *,
    rate: float | None = None,
    midway: asyncio.Future[None] | None = None,
    duration: float | None = None,
) -> float:
    items = await sample_items(port)
    rng = random.Random(11)
    # At least 16 characters: what a browser key may read recommendations for.
    visitors = [f"{run}-visitor-{n:06d}" for n in range(args.visitors)]
    browser = f"Origin: {BROWSER_ORIGIN}\r\n" if args.mix == "browser" else ""
    key = f"&writeKey={args.browser_key}" if args.mix == "browser" else ""
    pool: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(args.connections):
        pool.put_nowait(Connection("127.0.0.1", port))
    rate = rate or args.rate
    total = int(rate * (duration or args.duration))
    interval = 1.0 / rate
    counter = 0
    tasks: set[asyncio.Task[None]] = set()

    async def one(due: float, request: tuple[str, str, str, bytes | None, list[str]]) -> None:
        kind, method, path, body, eids = request
        connection = await pool.get()
        try:
            status, answer = await connection.request(method, path, body, browser)
            ok = status == 200
            detail = f"{status} {answer[:200]!r}"
        except (OSError, ConnectionError, asyncio.IncompleteReadError, ValueError) as error:
            ok, detail = False, repr(error)
            connection.close()
            connection = Connection("127.0.0.1", port)
        finally:
            pool.put_nowait(connection)
        recorder.add(kind, time.perf_counter() - due, ok, detail)
        if ok:
            recorder.acknowledged.update(eids)

    started = time.perf_counter()
    for n in range(total):
        if midway is not None and n == total // 4:
            midway.set_result(None)
        due = started + n * interval
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        visitor = rng.choice(visitors)
        if rng.random() < args.ingest_share:
            events = []
            for _ in range(rng.randint(1, 20) if browser else 1):
                counter += 1
                events.append(
                    {
                        "source": "bench",
                        "event_id": f"{run}-{counter}",
                        "event_name": "Product Viewed",
                        "event_ts": "2024-06-01T12:00:00Z",
                        "session_id": visitor,
                        "items": [{"item_id": rng.choice(items)}],
                    }
                )
            eids = [event["event_id"] for event in events]
            recorder.sent_events.update(eids)
            recorder.batch_sizes.append(len(events))
            request: tuple[str, str, str, bytes | None, list[str]] = (
                "ingest",
                "POST",
                "/v1/events?partial=true" + key if browser else "/v1/events",
                json.dumps(events if browser else events[0]).encode(),
                eids,
            )
        elif not browser and rng.random() < 0.2:
            body = {"session_id": visitor, "items": rng.sample(items, min(20, len(items)))}
            request = ("rank", "POST", "/v1/rank", json.dumps(body).encode(), [])
        else:
            k = 8 if browser else 20
            path = f"/v1/recommendations?session_id={visitor}&k={k}{key}"
            request = ("recommend", "GET", path, None, [])
        task = asyncio.create_task(one(due, request))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - started
    while not pool.empty():
        pool.get_nowait().close()
    return elapsed


def cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=500.0, help="requests per second")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds (at most 600)")
    parser.add_argument("--connections", type=int, default=64, help="most requests in flight")
    parser.add_argument("--ingest-share", type=float, default=0.5)
    parser.add_argument("--visitors", type=int, default=5000)
    parser.add_argument("--events", type=int, default=200_000, help="generated store size")
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--database-url", help="a DuckDB store to copy instead of generating")
    parser.add_argument(
        "--postgres",
        metavar="URL",
        help="serve a PostgreSQL store: the shop is copied into a new schema of this database "
        "(e.g. postgresql+psycopg://postgres@127.0.0.1/test), dropped at the end",
    )
    parser.add_argument(
        "--ack",
        choices=["commit", "journal"],
        help="the server's --ack: answer ingest after the store commit or after the journal "
        "(default: the server's default for a DuckDB file, journal)",
    )
    parser.add_argument("--flush-ms", type=float, help="the server's --flush-ms")
    parser.add_argument(
        "--refresh-minutes", type=float, help="the server's --refresh-minutes (default 10)"
    )
    parser.add_argument(
        "--crash",
        action="store_true",
        help="SIGKILL the server at the end, then start it again before counting the events",
    )
    parser.add_argument(
        "--mix",
        choices=["api", "browser"],
        default="api",
        help="api: single events, recommendations and ranks with no key; browser: what "
        "personalize.js sends (batches of 1-20 events, text/plain, a browser key and Origin)",
    )
    parser.add_argument(
        "--experiment",
        action="store_true",
        help="run an experiment (control=popularity, engine=engine, 50/50): every ranking is "
        "assigned, answered with a rec_id and recorded as an impression (and an exposure)",
    )
    parser.add_argument("--json", type=Path, help="write the figures here too")
    parser.add_argument("--workers", type=int, help="compare 1 and this many worker processes")
    parser.add_argument("--state-url", help="Redis for --workers (redis://HOST:PORT/DB)")
    parser.add_argument(
        "--restart-redis",
        action="store_true",
        help="with --workers: run a redis-server of our own and stop it mid-run",
    )
    parser.add_argument("--redis-pause", type=float, default=5.0, help="seconds Redis is down")
    parser.add_argument(
        "--rates", default="200,300,400,500,600,800,1000", help="rates tried with --workers"
    )
    parser.add_argument("--p99-ms", type=float, default=20.0)
    parser.add_argument("--step-seconds", type=float, default=10.0, help="each rate's duration")
    parser.add_argument(
        "--warmup-seconds",
        type=float,
        default=5.0,
        help="with --workers: unmeasured, at the first rate",
    )
    args = parser.parse_args(argv)
    if args.workers:
        from bench._workers import compare_workers  # noqa: PLC0415

        return compare_workers(args)
    # What the server does unless told: journal for a DuckDB file, commit for PostgreSQL.
    ack = args.ack or ("commit" if args.postgres else "journal")
    args.duration = min(args.duration, 600.0)

    with (
        tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp,
        contextlib.ExitStack() as cleanup,
    ):
        directory = Path(tmp)
        url = prepare_store(args, directory)
        if args.postgres:
            url = cleanup.enter_context(postgres_copy(args.postgres, url, directory))
        if args.experiment:
            create_experiment(url)
        port = free_port()
        extra: tuple[str, ...] = ()
        if args.mix == "browser":
            from target_personalize.serve.browser import add_browser_key  # noqa: PLC0415

            args.browser_key, _ = add_browser_key(directory / "browser-keys", BROWSER_ORIGIN)
            keys = str(directory / "browser-keys")
            extra = ("--browser-keys-file", keys, "--browser-rate", "0")
        began = time.perf_counter()
        process = start_server(
            url, port, args.ack, args.flush_ms, args.refresh_minutes, extra=extra
        )
        try:
            asyncio.run(wait_ready(port, process, timeout=300))
            startup = time.perf_counter() - began
            server = psutil.Process(process.pid)
            cpu_before = cpu_seconds(server)
            client_before = cpu_seconds(psutil.Process())
            load_before = os.getloadavg()
            recorder = Recorder()
            run = f"run{int(time.time())}"
            elapsed = asyncio.run(run_load(args, port, recorder, run))
            cpu_used = cpu_seconds(server) - cpu_before
            client_used = cpu_seconds(psutil.Process()) - client_before
            load_after = os.getloadavg()
        finally:
            stop(process, crash=args.crash)
        if args.crash:
            # A new server replays what the killed one acknowledged but had not stored yet.
            process = start_server(
                url, port, args.ack, args.flush_ms, args.refresh_minutes, extra=extra
            )
            try:
                asyncio.run(wait_ready(port, process, timeout=300))
            finally:
                stop(process, crash=False)
        from target_personalize.engine import EventStore  # noqa: PLC0415

        with EventStore(url) as store:
            stored = store.query(
                "SELECT count(*), count(DISTINCT event_id) FROM events WHERE source = 'bench' "
                "AND event_id LIKE %s",
                [f"{run}-%"],
            )[0]
            impressions = (
                store.query("SELECT count(*), count(DISTINCT rec_id) FROM impressions")[0]
                if args.experiment
                else None
            )
            stored_ids = {
                row[0]
                for row in store.query(
                    "SELECT event_id FROM events WHERE source = 'bench' AND event_id LIKE %s",
                    [f"{run}-%"],
                )
            }

    everything = [v for values in recorder.latencies.values() for v in values]
    requests = len(everything)
    errors = sum(recorder.errors.values())
    lost = len(recorder.acknowledged - stored_ids)
    # In an experiment every ranking answered is one impression, stored once.
    answered = sum(
        len(recorder.latencies.get(kind, [])) - recorder.errors.get(kind, 0)
        for kind in ("recommend", "rank")
    )
    impressions_exact = impressions is None or impressions[0] == impressions[1] == answered
    unexpected = len(stored_ids - recorder.sent_events)
    rows = []
    for kind, values in [*sorted(recorder.latencies.items()), ("all", everything)]:
        rows.append(
            {
                "endpoint": kind,
                "requests": len(values),
                "p50_ms": round(percentile(values, 50), 2),
                "p90_ms": round(percentile(values, 90), 2),
                "p99_ms": round(percentile(values, 99), 2),
                "max_ms": round(max(values), 2) if values else None,
                "mean_ms": round(statistics.fmean(values), 2) if values else None,
                "errors": recorder.errors.get(kind, 0) if kind != "all" else errors,
            }
        )
    figures = {
        "target_rate": args.rate,
        "duration_s": round(elapsed, 1),
        "throughput_rps": round(requests / elapsed, 1),
        "connections": args.connections,
        "ingest_share": args.ingest_share,
        "mix": args.mix,
        "events_per_ingest_mean": round(statistics.fmean(recorder.batch_sizes), 1)
        if recorder.batch_sizes
        else None,
        "ack": ack,
        "store": "postgresql" if args.postgres else "duckdb",
        "crash_and_restart": args.crash,
        "experiment": args.experiment,
        "impressions_stored": None if impressions is None else impressions[0],
        "impressions_distinct": None if impressions is None else impressions[1],
        "refresh_minutes": args.refresh_minutes,
        "flush_ms": args.flush_ms,
        "server_startup_s": round(startup, 1),
        "server_cpu_s": round(cpu_used, 1),
        "server_cpu_share_of_one_core": round(cpu_used / elapsed, 2),
        "client_cpu_share_of_one_core": round(client_used / elapsed, 2),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in load_after],
        "cpus": os.cpu_count(),
        "events_sent": len(recorder.sent_events),
        "events_acknowledged": len(recorder.acknowledged),
        "events_stored": int(stored[0]),
        "events_stored_distinct": int(stored[1]),
        "events_lost": lost,
        "events_unexpected": unexpected,
        "errors": errors,
        "error_samples": recorder.error_samples,
        "latency": rows,
    }
    print(
        f"{'endpoint':<10} {'requests':>9} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8} {'errors':>7}"
    )
    for row in rows:
        print(
            f"{row['endpoint']:<10} {row['requests']:>9} {row['p50_ms']:>8} {row['p90_ms']:>8} "
            f"{row['p99_ms']:>8} {row['max_ms']:>8} {row['errors']:>7}"
        )
    print(
        f"throughput {figures['throughput_rps']} req/s over {figures['duration_s']} s "
        f"(target {args.rate}, ack={ack}, mix={args.mix}, "
        f"{figures['events_per_ingest_mean']} events per ingest); server CPU {figures['server_cpu_share_of_one_core']} of a core, "
        f"client {figures['client_cpu_share_of_one_core']}; "
        f"load average {figures['load_average_before']} -> {figures['load_average_after']} on "
        f"{figures['cpus']} CPUs"
    )
    print(
        f"events: sent {figures['events_sent']}, acknowledged {figures['events_acknowledged']}, "
        f"stored {figures['events_stored']} ({figures['events_stored_distinct']} distinct), "
        f"lost {lost}, unexpected {unexpected}; errors {errors}"
        + (" (counted after SIGKILL and restart)" if args.crash else "")
    )
    if impressions is not None:
        print(
            f"experiment: {answered} rankings answered, {impressions[0]} impressions stored "
            f"({impressions[1]} distinct rec_ids)"
        )
    for sample in recorder.error_samples:
        print("  error:", sample)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    exact = figures["events_stored"] == figures["events_acknowledged"] == figures["events_sent"]
    ok = errors == 0 and lost == 0 and unexpected == 0 and exact and impressions_exact
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
