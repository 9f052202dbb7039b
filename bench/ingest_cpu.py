"""CPU per request of the browser mix, in process: the app called directly, no sockets, no client.

Usage::

    .venv/bin/python bench/ingest_cpu.py                        # the generated shop of bench/serve.py
    .venv/bin/python bench/ingest_cpu.py --database-url duckdb:///shop.duckdb --requests 4000
    .venv/bin/python bench/ingest_cpu.py --database-url ... --profile /tmp/ingest.prof

What it does: starts the app of ``personalize serve`` (``create_app``, its lifespan, the
defaults of a DuckDB file: journal, a browser key bound to an origin, no per-address rate)
over a copy of the shop, then sends it, one after another, the requests of
``bench/serve.py --mix browser``: half ``POST /v1/events?partial=true&writeKey=...`` with 1-20
product views as ``text/plain``, half ``GET /v1/recommendations?session_id=...&k=8``, each
with the key's ``Origin``. After ``--warmup`` requests it counts, per kind, the CPU time of
the event loop's thread (what limits one server process: every request's Python runs there)
and of the whole process (the journal and store threads too). ``--profile`` runs the counted
requests under cProfile and prints the functions with the most own time (cProfile slows the
run; the figures of such a run are not comparable).

uvicorn's HTTP parsing is not included: what is left is the app's own cost per request.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import pstats
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
ORIGIN = "https://shop.bench.example"
sys.path.insert(0, str(ROOT))


def make_store(args: argparse.Namespace, directory: Path) -> str:
    if args.database_url:
        source = Path(args.database_url.removeprefix("duckdb:///"))
        shutil.copy(source, directory / "shop.duckdb")
        for model in source.parent.glob(f"{source.stem}.*.*"):  # a saved model: no refit
            if model.suffix in (".npz", ".json"):
                shutil.copy(model, directory / model.name.replace(source.stem, "shop", 1))
        return f"duckdb:///{directory / 'shop.duckdb'}"
    from bench.ranking import make_shop  # noqa: PLC0415 - needs ROOT on sys.path

    return make_shop(directory, args.events, args.items)


def requests(
    count: int, key: str, items: list[str], rng: random.Random
) -> list[tuple[str, str, str, bytes]]:
    """``(kind, method, path?query, body)`` of the browser mix, as bench/serve.py sends them."""
    visitors = [f"cpu-visitor-{n:06d}" for n in range(5000)]
    made: list[tuple[str, str, str, bytes]] = []
    counter = 0
    for _ in range(count):
        visitor = rng.choice(visitors)
        if rng.random() < 0.5:
            events = []
            for _ in range(rng.randint(1, 20)):
                counter += 1
                events.append(
                    {
                        "source": "bench",
                        "event_id": f"cpu-{counter}",
                        "event_name": "Product Viewed",
                        "event_ts": "2024-06-01T12:00:00Z",
                        "session_id": visitor,
                        "items": [{"item_id": rng.choice(items)}],
                    }
                )
            path = f"/v1/events?partial=true&writeKey={key}"
            made.append(("ingest", "POST", path, json.dumps(events).encode()))
        else:
            path = f"/v1/recommendations?session_id={visitor}&k=8&writeKey={key}"
            made.append(("recommend", "GET", path, b""))
    return made


async def call(app: Any, method: str, target: str, body: bytes) -> tuple[int, bytes]:
    """One request through the whole ASGI stack (middleware included)."""
    path, _, query = target.partition("?")
    headers = [(b"host", b"127.0.0.1:8000"), (b"origin", ORIGIN.encode())]
    if method == "POST":
        headers += [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    sent = False
    status = 0
    answer: list[bytes] = []

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            await asyncio.sleep(3600)
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        else:
            answer.append(message.get("body", b""))

    await app(scope, receive, send)
    return status, b"".join(answer)


async def measure(args: argparse.Namespace, url: str, keys_file: Path, key: str) -> dict[str, Any]:
    from target_personalize.serve import ServeSettings, create_app  # noqa: PLC0415
    from target_personalize.serve.browser import BrowserSettings  # noqa: PLC0415

    settings = ServeSettings(
        database_url=url,
        refresh_seconds=0,
        browser=BrowserSettings(keys_file=str(keys_file), address_rate=0),
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        ranker = app.state.serving.ranker
        items = [str(item) for item in ranker.items.item_ids[:: max(1, len(ranker.items) // 2000)]]
        plan = requests(args.warmup + args.requests, key, items, random.Random(11))
        cpu: dict[str, list[float]] = {"ingest": [], "recommend": []}
        events = 0
        profiler = cProfile.Profile() if args.profile else None
        process_before = 0.0
        for n, (kind, method, target, body) in enumerate(plan):
            if n == args.warmup:
                process_before = time.process_time()
                if profiler is not None:
                    profiler.enable()
            before = time.thread_time()
            status, answer = await call(app, method, target, body)
            spent = time.thread_time() - before
            if status != 200:
                msg = f"{method} {target}: {status} {answer[:300]!r}"
                raise RuntimeError(msg)
            if n >= args.warmup:
                cpu[kind].append(spent * 1000)
                if kind == "ingest":
                    events += json.loads(answer)["accepted"]
        process_ms = (time.process_time() - process_before) * 1000
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(args.profile)
            pstats.Stats(profiler).sort_stats("tottime").print_stats(args.top)
    counted = cpu["ingest"] + cpu["recommend"]
    return {
        "requests": len(counted),
        "events": events,
        "loop_ms_per_request": round(sum(counted) / len(counted), 3),
        "loop_ms_per_ingest": round(sum(cpu["ingest"]) / len(cpu["ingest"]), 3),
        "loop_ms_per_recommend": round(sum(cpu["recommend"]) / len(cpu["recommend"]), 3),
        "process_ms_per_request": round(process_ms / len(counted), 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="requests counted")
    parser.add_argument("--warmup", type=int, default=300, help="requests sent before counting")
    parser.add_argument("--events", type=int, default=200_000, help="generated store size")
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--database-url", help="a DuckDB store to copy instead of generating")
    parser.add_argument("--profile", type=Path, help="run the counted requests under cProfile")
    parser.add_argument("--top", type=int, default=30, help="functions the profile prints")
    args = parser.parse_args(argv)
    from target_personalize.serve.browser import add_browser_key  # noqa: PLC0415

    with tempfile.TemporaryDirectory(prefix="bench-ingest-cpu-") as tmp:
        directory = Path(tmp)
        url = make_store(args, directory)
        key, _ = add_browser_key(directory / "browser-keys", ORIGIN)
        figures = asyncio.run(measure(args, url, directory / "browser-keys", key))
    load = [round(x, 2) for x in os.getloadavg()]
    print(
        f"{figures['requests']} requests ({figures['events']} events): event loop CPU "
        f"{figures['loop_ms_per_request']} ms per request (ingest "
        f"{figures['loop_ms_per_ingest']}, recommend {figures['loop_ms_per_recommend']}); "
        f"process CPU {figures['process_ms_per_request']} ms per request; load average {load}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
