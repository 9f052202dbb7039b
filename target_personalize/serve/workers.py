"""Several server processes over one store: ``personalize serve --workers N --state-url ...``.

The processes (uvicorn's workers, one socket; or servers on several hosts behind a load
balancer) share the PostgreSQL store, where each commits the events it receives before it
answers, and the live state in Redis (:mod:`target_personalize.serve.state`). One of them at a
time refreshes the model, holding a lock in Redis (extended while it works, expiring if its
holder dies); it saves the new model in the store and publishes its version; the others poll
the version every ``POLL_SECONDS`` and load the saved model when it changes. The default
objectives set with ``PUT /v1/objectives`` travel the same way.

uvicorn restarts a worker that dies; an event a worker acknowledged was committed already.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import anyio.to_thread

from target_personalize.engine import EventStore, Objectives, load_ranker, refresh_ranker
from target_personalize.serve.state import redacted

if TYPE_CHECKING:
    from fastapi import FastAPI

    from target_personalize.engine import RankerBase
    from target_personalize.serve.service import ServingState
    from target_personalize.serve.settings import ServeSettings

__all__ = [
    "POLL_SECONDS",
    "app_from_environment",
    "check_workers",
    "prepare_model",
    "refresh_shared",
    "run_workers",
    "settings_environment",
    "settings_from_environment",
]

logger = logging.getLogger(__name__)

#: How often a process checks the shared model version and objectives.
POLL_SECONDS = 2.0
#: The refresh lock's lifetime; its holder extends it every third of that.
LOCK_SECONDS = 30.0
#: How long uvicorn waits for a worker to answer its health check before replacing it. Its
#: default (5 s) is shorter than a worker's start (imports, the model) on a loaded host: each
#: starting worker would be killed and started again, over and over.
HEALTHCHECK_SECONDS = 60
_SETTINGS_VAR = "PERSONALIZE_SERVE_SETTINGS"


def check_workers(settings: ServeSettings, workers: int) -> None:
    """Refuse settings several processes cannot share.

    Raises:
        ValueError: saying what to change.
    """
    if workers <= 1:
        return
    if not settings.state_url:
        msg = (
            f"--workers {workers} needs --state-url redis://HOST:PORT/DB: live sessions and "
            "wrong-key counters must be shared by the processes"
        )
        raise ValueError(msg)
    if settings.database_url.startswith("duckdb"):
        msg = (
            f"--workers {workers} needs a store several processes can write (DuckDB allows one "
            "writing process): use postgresql+psycopg://USER@HOST/DB, or run one worker"
        )
        raise ValueError(msg)
    if settings.ack == "journal":
        msg = (
            f"--workers {workers} needs --ack commit: a worker's journal is its own, and a "
            "worker restarted elsewhere would not replay it"
        )
        raise ValueError(msg)


def prepare_model(settings: ServeSettings) -> None:
    """Fit and save the model once before the workers start (each then loads it).

    Under the refresh lock, so hosts starting together do not save it at the same time.
    """
    from redis import Redis, RedisError  # noqa: PLC0415 - an optional dependency

    client = Redis.from_url(str(settings.state_url), socket_timeout=10)
    lock = client.lock(f"{settings.state_prefix}lock:refresh", timeout=600, blocking_timeout=600)
    try:
        with lock, EventStore(settings.database_url) as store:
            refresh_ranker(
                store,
                create=True,
                key_conversion=settings.key_conversion,
                objectives=settings.objectives,
            )
    except RedisError as error:
        msg = (
            f"Redis at {redacted(str(settings.state_url))} did not answer ({error}): start it, "
            "or fix --state-url"
        )
        raise ValueError(msg) from None
    finally:
        client.close()


def settings_environment(settings: ServeSettings) -> dict[str, str]:
    """The variable that hands ``settings`` to the worker processes."""
    given = _init_fields(settings)
    given["browser"] = _init_fields(settings.browser)  # its key ring is loaded again
    return {_SETTINGS_VAR: json.dumps(given)}


def _init_fields(instance: Any) -> dict[str, Any]:
    return {f.name: getattr(instance, f.name) for f in dataclasses.fields(instance) if f.init}


def settings_from_environment(environ: Mapping[str, str]) -> ServeSettings:
    """The settings the parent handed over (the browser key ring loaded again from its file)."""
    from target_personalize.serve.browser import BrowserSettings  # noqa: PLC0415
    from target_personalize.serve.settings import ServeSettings  # noqa: PLC0415

    given = json.loads(environ[_SETTINGS_VAR])
    given["browser"] = BrowserSettings(**given.get("browser") or {})
    return ServeSettings(**given)


def app_from_environment() -> FastAPI:
    """The app of one worker (uvicorn's factory), from the settings the parent handed over."""
    from target_personalize.serve.app import create_app  # noqa: PLC0415

    return create_app(settings_from_environment(os.environ))


def model_version(ranker: RankerBase) -> str:
    """What tells one saved model from the next."""
    return f"{ranker.loaded_until}|{ranker.fitted_at}"


async def refresh_shared(serving: ServingState) -> None:
    """Poll the shared model version and objectives; refresh the model when holding the lock."""
    serving.model_version = model_version(serving.ranker)
    tasks = [asyncio.create_task(_follow(serving))]
    if serving.settings.refresh_seconds > 0:
        tasks.append(asyncio.create_task(_refresh(serving)))
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def _follow(serving: ServingState) -> None:
    """Load the model another process saved, and take the objectives another was given."""
    objectives: bytes | None = None
    while True:
        await asyncio.sleep(POLL_SECONDS)
        shared = await serving.live.get("objectives")
        if shared is not None and shared != objectives:
            objectives = shared
            serving.ranker.objectives = Objectives.parse(json.loads(shared))
        version = await serving.live.get("model")
        if version is None or version.decode() == serving.model_version:
            continue
        try:
            ranker = await anyio.to_thread.run_sync(_load, serving.settings.database_url)
        except Exception:
            logger.exception("Could not load the model another process saved; keeping this one")
            continue
        if ranker is not None:
            serving.swap_model(ranker)
            serving.model_version = version.decode()
            logger.info("Loaded the model refreshed by another process (pid %d)", os.getpid())


def _load(database_url: str) -> RankerBase | None:
    with EventStore(database_url) as store:
        return load_ranker(store)


async def _refresh(serving: ServingState) -> None:
    """Every ``refresh_seconds``, refresh the model if no other process is doing it."""
    from target_personalize.serve.state import RedisState  # noqa: PLC0415

    live = serving.live
    if not isinstance(live, RedisState):  # pragma: no cover - shared state is Redis's
        return
    while True:
        await asyncio.sleep(serving.settings.refresh_seconds)
        async with live.lock("refresh", LOCK_SECONDS) as held:
            shared = await live.get("model")
            if held is None or (shared is not None and shared.decode() != serving.model_version):
                continue  # another process refreshes, or did and this one loads its model soon
            started = time.perf_counter()
            work = asyncio.ensure_future(anyio.to_thread.run_sync(serving.refreshed_model))
            while not work.done():
                await asyncio.wait([work], timeout=LOCK_SECONDS / 3)
                if not work.done() and not await held.extend():
                    logger.warning("Lost the refresh lock while refreshing (Redis down?)")
            try:
                ranker = work.result()
            except Exception:
                logger.exception("Model refresh failed; still serving the previous model")
                continue
            if ranker is None:
                continue
            serving.swap_model(ranker)
            serving.model_refits += 1
            serving.model_version = model_version(ranker)
            await live.put("model", serving.model_version)
            logger.info(
                "Refreshed the model in %.1f s (pid %d): %d sessions, %d items",
                time.perf_counter() - started,
                os.getpid(),
                ranker.data.n_sessions,
                len(ranker.items),
            )


def run_workers(settings: ServeSettings, workers: int, *, port: int, log_level: str) -> None:
    """Serve on ``workers`` processes sharing one socket (blocks until stopped).

    Raises:
        ValueError: when the settings cannot be shared (see :func:`check_workers`).
    """
    import uvicorn  # noqa: PLC0415

    check_workers(settings, workers)
    prepare_model(settings)
    os.environ.update(settings_environment(settings))
    uvicorn.run(
        f"{__name__}:app_from_environment",
        factory=True,
        host=settings.host,
        port=port,
        workers=workers,
        log_level=log_level,
        access_log=False,
        timeout_worker_healthcheck=HEALTHCHECK_SECONDS,
        **settings.uvicorn_options(),
    )
