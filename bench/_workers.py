"""``bench/serve.py --workers N``: capacity at p99 < 20 ms, CPU per request, 1 vs N workers.

See the docstring of ``bench/serve.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

from bench.serve import (
    Connection,
    Recorder,
    free_port,
    percentile,
    postgres_copy,
    prepare_store,
    run_load,
    start_server,
    stop,
    wait_ready,
)
from tests.support.redis import RedisServer


def cpu_seconds(pid: int) -> float:
    """CPU time of a process and its children (the workers)."""
    parent = psutil.Process(pid)
    total = 0.0
    for process in [parent, *parent.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            times = process.cpu_times()
            total += times.user + times.system
    return total


async def wait_workers(port: int, workers: int, timeout: float) -> None:
    """Until ``workers`` distinct processes have answered: uvicorn starts them one by one, and
    a worker still starting (imports, the model) would take the cores from the first step."""
    seen: set[int] = set()
    deadline = time.monotonic() + timeout
    while len(seen) < workers:
        if time.monotonic() > deadline:
            msg = f"only {len(seen)} of {workers} workers answered within {timeout:g} s"
            raise RuntimeError(msg)
        connection = Connection("127.0.0.1", port)  # a new connection may reach another one
        with contextlib.suppress(OSError):
            status, body = await connection.request("GET", "/v1/stats")
            if status == 200:
                seen.add(int(json.loads(body)["pid"]))
        connection.close()
        await asyncio.sleep(0.05)


def summary(recorder: Recorder, elapsed: float) -> dict[str, Any]:
    values = [v for kind in recorder.latencies.values() for v in kind]
    return {
        "requests": len(values),
        "throughput_rps": round(len(values) / elapsed, 1),
        "p50_ms": round(percentile(values, 50), 2),
        "p99_ms": round(percentile(values, 99), 2),
        "errors": sum(recorder.errors.values()),
        "error_samples": recorder.error_samples,
    }


def compare_workers(args: argparse.Namespace) -> int:
    if not args.postgres:
        print("--workers needs --postgres URL: several processes need a store they can all write")
        return 2
    if not (args.state_url or args.restart_redis):
        print("--workers needs --state-url redis://HOST:PORT/DB or --restart-redis")
        return 2
    rates = [float(rate) for rate in args.rates.split(",")]
    every = Recorder()
    found: dict[str, Any] = {"load_average_before": os.getloadavg(), "cpus": os.cpu_count()}
    with (
        tempfile.TemporaryDirectory(prefix="bench-workers-") as tmp,
        contextlib.ExitStack() as cleanup,
    ):
        directory = Path(tmp)
        url = cleanup.enter_context(
            postgres_copy(args.postgres, prepare_store(args, directory), directory)
        )
        own = RedisServer(directory) if args.restart_redis else None
        if own is not None:
            own.start()
            cleanup.callback(own.stop)
        state_url = own.url if own is not None else args.state_url
        prefix = f"bench-{os.getpid()}:"
        base = f"run{int(time.time())}"
        for workers in (1, args.workers):
            port = free_port()
            shared = ["--workers", str(workers), "--state-url", state_url]
            shared += ["--state-prefix", prefix]
            process = start_server(
                url, port, "commit", args.flush_ms, args.refresh_minutes, extra=tuple(shared)
            )
            steps: list[dict[str, Any]] = []
            try:
                asyncio.run(wait_ready(port, process, timeout=300))
                asyncio.run(wait_workers(port, workers, timeout=300))
                # Not measured: each process's first reads of the sessions and first calls. Its
                # events are checked at the end like the others.
                warmup = Recorder()
                asyncio.run(
                    run_load(
                        args,
                        port,
                        warmup,
                        f"{base}-w{workers}-warmup",
                        rate=rates[0],
                        duration=args.warmup_seconds,
                    )
                )
                every.acknowledged |= warmup.acknowledged
                every.sent_events |= warmup.sent_events
                for rate in rates:
                    recorder = Recorder()
                    cpu = cpu_seconds(process.pid)
                    run = f"{base}-w{workers}-r{int(rate)}"
                    elapsed = asyncio.run(
                        run_load(args, port, recorder, run, rate=rate, duration=args.step_seconds)
                    )
                    step = {"rate": rate, **summary(recorder, elapsed)}
                    used = cpu_seconds(process.pid) - cpu
                    step["server_cpu_cores"] = round(used / elapsed, 2)
                    step["cpu_ms_per_request"] = round(1000 * used / max(step["requests"], 1), 2)
                    step["load_average"] = [round(x, 2) for x in os.getloadavg()]
                    steps.append(step)
                    every.acknowledged |= recorder.acknowledged
                    every.sent_events |= recorder.sent_events
                    print(
                        f"workers {workers} rate {rate:>6.0f}: {step['throughput_rps']:>7} req/s "
                        f"p50 {step['p50_ms']:>6} ms p99 {step['p99_ms']:>7} ms errors "
                        f"{step['errors']} (server {step['server_cpu_cores']} cores, "
                        f"{step['cpu_ms_per_request']} CPU ms/request, load {step['load_average']})",
                        flush=True,
                    )
                    if step["p99_ms"] >= args.p99_ms or step["errors"]:
                        break
                passing = [
                    step for step in steps if step["p99_ms"] < args.p99_ms and not step["errors"]
                ]
                best = max(passing, key=lambda step: step["throughput_rps"], default=None)
                found[f"workers_{workers}"] = {
                    "best_rps_at_p99": best["throughput_rps"] if best else 0.0,
                    "cpu_ms_per_request": best["cpu_ms_per_request"] if best else None,
                    "steps": steps,
                }
                if workers == args.workers and own is not None:
                    found["redis_restart"] = restart_run(args, port, own, f"{base}-restart", every)
            finally:
                stop(process, crash=False)
        from target_personalize.engine import EventStore  # noqa: PLC0415

        with EventStore(url) as store:
            stored = {
                row[0]
                for row in store.query(
                    "SELECT event_id FROM events WHERE source = 'bench' AND event_id LIKE %s",
                    [f"{base}-%"],
                )
            }
    lost = len(every.acknowledged - stored)
    found |= {
        "events_acknowledged": len(every.acknowledged),
        "events_stored": len(stored),
        "events_lost": lost,
        "events_unexpected": len(stored - every.sent_events),
        "load_average_after": os.getloadavg(),
    }
    one, many = found["workers_1"], found[f"workers_{args.workers}"]
    print(
        f"requests/s at p99 < {args.p99_ms:g} ms: 1 worker {one['best_rps_at_p99']} "
        f"({one['cpu_ms_per_request']} CPU ms/request), {args.workers} workers "
        f"{many['best_rps_at_p99']} ({many['cpu_ms_per_request']} CPU ms/request); "
        f"events acknowledged {len(every.acknowledged)}, stored "
        f"{len(stored)}, lost {lost}; load average {found['load_average_before']} -> "
        f"{found['load_average_after']} on {found['cpus']} CPUs"
    )
    if args.json:
        args.json.write_text(json.dumps(found, indent=2))
    errors = found.get("redis_restart", {}).get("errors", 0)
    return 0 if lost == 0 and found["events_unexpected"] == 0 and errors == 0 else 1


def restart_run(
    args: argparse.Namespace, port: int, own: RedisServer, run: str, every: Recorder
) -> dict[str, Any]:
    """``--rate`` for ``--duration`` s while Redis is stopped a quarter in, started again later."""

    async def scenario() -> float:
        midway: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        async def bounce() -> None:
            await midway
            await asyncio.to_thread(own.stop)
            await asyncio.sleep(args.redis_pause)
            await asyncio.to_thread(own.start)

        bouncing = asyncio.create_task(bounce())
        elapsed = await run_load(args, port, recorder, run, rate=args.rate, midway=midway)
        await bouncing
        return elapsed

    recorder = Recorder()
    elapsed = asyncio.run(scenario())
    every.acknowledged |= recorder.acknowledged
    every.sent_events |= recorder.sent_events
    result = {"rate": args.rate, "redis_down_s": args.redis_pause, **summary(recorder, elapsed)}
    print(
        f"Redis stopped for {args.redis_pause:g} s mid-run at {args.rate:g} req/s: "
        f"{result['throughput_rps']} req/s, p99 {result['p99_ms']} ms, errors {result['errors']}",
        flush=True,
    )
    return result
