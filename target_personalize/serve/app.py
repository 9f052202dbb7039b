"""The HTTP API and the dashboard: ``create_app(settings)`` gives an ASGI app (FastAPI).

Endpoints (the OpenAPI document is at ``/openapi.json``, browsable at ``/docs``):

* ``POST /v1/events`` (write): canonical events or Segment ``track``/``page`` calls, one or a
  batch; stored (idempotent on ``(source, event_id)``) and applied to live sessions.
* ``GET /v1/recommendations``, ``POST /v1/rank`` (read): rankings from the in-memory ranker.
* ``GET /v1/funnel``, ``GET /v1/model``, ``GET /v1/stats``, ``GET /v1/objectives``,
  ``GET /v1/tradeoff`` (the dials' frontier, computed in the background) (read);
  ``PUT /v1/objectives`` (write).
* ``GET /v1/experiments``, ``GET /v1/experiments/{id}`` (the readout) (read);
  ``POST /v1/experiments``, ``POST /v1/experiments/{id}/stop`` (write).
* ``GET /healthz`` (open) and ``GET /`` (the dashboard page, open; its data calls need a key
  when keys are on).
* ``GET /sdk/personalize.js`` (open): the browser tracker; pages call the API with browser keys
  (``browser.py``, ``cors.py``). ``GET /demo/`` with ``--demo``: the live storefront.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import math
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Annotated, Any

import msgspec
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import ValidationError

from target_personalize.engine import (
    EVENT_COLUMNS,
    EngineError,
    Objectives,
    RankerError,
    coerce_event,
)
from target_personalize.serve.auth import BlockedError, FailureLimiter, KeyRing, Role
from target_personalize.serve.cors import add_browser_middleware
from target_personalize.serve.demo import add_storefront
from target_personalize.serve.errors import validation_error
from target_personalize.serve.experiment_routes import add_experiment_routes
from target_personalize.serve.experiments import Assignment, ExperimentLab
from target_personalize.serve.limits import BodyLimits, Limits, event_problems
from target_personalize.serve.models import (
    CanonicalEvent,
    EventError,
    IngestResult,
    ObjectivesBody,
    Ranking,
    RankRequest,
    SegmentPage,
    SegmentTrack,
)
from target_personalize.serve.segment import from_segment, mapper
from target_personalize.serve.service import ServingState
from target_personalize.serve.settings import ServeSettings, is_loopback
from target_personalize.serve.state import open_state
from target_personalize.serve.verifier import KeyVerifier

__all__ = ["ServeConfigError", "create_app"]

STATIC = Path(__file__).parent / "static"
MAX_BATCH = 10_000
_SEGMENT_EVENTS: dict[str, type[SegmentTrack] | type[SegmentPage]] = {
    "track": SegmentTrack,
    "page": SegmentPage,
    "screen": SegmentPage,
}
_SEGMENT_SKIPPED = {"identify", "group", "alias"}
_TIMES = [(name, list(EVENT_COLUMNS).index(name)) for name in ("event_ts", "ingested_at")]
_decode = msgspec.json.Decoder().decode
_encode = msgspec.json.Encoder().encode


class ServeConfigError(Exception):
    """The server cannot start with these settings (e.g. no API keys on a public address)."""


def _event_request_schema() -> dict[str, Any]:
    canonical = {"$ref": "#/components/schemas/CanonicalEvent"}
    track = {"$ref": "#/components/schemas/SegmentTrack"}
    page = {"$ref": "#/components/schemas/SegmentPage"}
    one = {"anyOf": [canonical, track, page]}
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "anyOf": [
                            one,
                            {"type": "array", "items": one, "maxItems": MAX_BATCH},
                            {
                                "type": "object",
                                "properties": {"batch": {"type": "array", "items": one}},
                                "required": ["batch"],
                            },
                        ]
                    }
                }
            },
        }
    }


def _parse_objectives(text: str | None) -> Objectives | None:
    """``conversion:1,margin:0.5`` (``=`` works too); raises 422 on a bad one."""
    if not text:
        return None
    try:
        return Objectives.from_pairs(text.split(","))
    except RankerError as error:
        raise _unprocessable(["query", "objectives"], str(error)) from None


def _check_objectives(value: dict[str, float], loc: list[str | int]) -> None:
    try:
        Objectives.parse(value)
    except RankerError as error:
        raise _unprocessable(loc, str(error)) from None


def _unprocessable(loc: list[str | int], msg: str) -> HTTPException:
    return HTTPException(422, [{"loc": loc, "msg": msg, "type": "value_error"}])


def _errors(error: ValidationError, index: int, prefix: list[str | int]) -> list[EventError]:
    return [
        EventError(
            index=index,
            loc=[*prefix, *detail["loc"]],
            msg=detail["msg"],
            type=detail["type"],
        )
        for detail in error.errors(include_url=False)
    ]


#: A canonical record and its store row (checked by ``coerce_event``, not checked again).
Checked = tuple[dict[str, Any], tuple[Any, ...]]


class _Normaliser:
    """Turns the body of POST /v1/events into canonical records, or errors with field paths."""

    def __init__(self, event_map: dict[str, str], limits: Limits | None = None) -> None:
        self.event_type_of = mapper(event_map)
        self.limits = limits or Limits()

    def one(
        self, raw: object, index: int, prefix: list[str | int]
    ) -> tuple[Checked | None, list[EventError]]:
        """One element: its record and row (``None`` when it holds no event) and errors."""
        if not isinstance(raw, dict):
            return None, [
                EventError(index=index, loc=prefix, msg="expected an object", type="dict_type")
            ]
        kind = raw.get("type")
        if kind in _SEGMENT_SKIPPED:
            return None, []
        too_big = event_problems(raw, self.limits)
        if too_big:
            return None, [
                # A whole event too large is a 413, a property too large a 422.
                EventError(
                    index=index,
                    loc=[*prefix, *loc],
                    msg=msg,
                    type="too_large" if not loc else "property_too_large",
                )
                for loc, msg in too_big
            ]
        try:
            if kind is not None:
                model = _SEGMENT_EVENTS.get(kind) if isinstance(kind, str) else None
                if model is None:
                    msg = f"unsupported Segment call type {kind!r}: use track or page"
                    return None, [
                        EventError(index=index, loc=[*prefix, "type"], msg=msg, type="value_error")
                    ]
                call = model.model_validate(raw)
                mapped = from_segment(call, self.event_type_of)
                prefix = [*prefix, "(mapped)"]
                event = CanonicalEvent.model_validate(mapped)
            else:
                event = CanonicalEvent.model_validate(raw)
        except ValidationError as error:
            return None, _errors(error, index, prefix)
        record = event.model_dump()
        if not record["event_type"]:
            record["event_type"] = self.event_type_of(record["event_name"] or "unknown")
        if not record["event_name"]:
            record["event_name"] = record["event_type"]
        if record["rec_id"] is None and record["properties"].get("rec_id") not in (None, ""):
            record["rec_id"] = str(record["properties"].pop("rec_id"))
        try:
            row = coerce_event(record)
        except EngineError as error:
            field = getattr(error, "field", "event")
            return None, [
                EventError(index=index, loc=[*prefix, field], msg=str(error), type="value_error")
            ]
        for name, at in _TIMES:  # naive UTC, as the store holds them
            record[name] = row[at]
        return (record, row), []

    def batch(self, body: object) -> tuple[list[Checked], list[EventError], int]:
        """All elements: records with their rows, errors, and Segment calls without an event."""
        if isinstance(body, list):
            elements, prefix = body, ["body"]
        elif isinstance(body, dict) and isinstance(body.get("batch"), list):
            elements, prefix = body["batch"], ["body", "batch"]
        else:
            elements, prefix = [body], []
        if len(elements) > MAX_BATCH:
            raise _unprocessable(["body"], f"at most {MAX_BATCH} events per request")
        events: list[Checked] = []
        errors: list[EventError] = []
        skipped = 0
        single = not prefix
        for index, raw in enumerate(elements):
            where: list[str | int] = ["body"] if single else [*prefix, index]
            event, problems = self.one(raw, index, where)
            errors += problems
            if event is not None:
                events.append(event)
            elif not problems:
                skipped += 1
        return events, errors, skipped


def _json(content: dict[str, Any], status: int = 200) -> Response:
    # Encoded directly (the response models document the shape): a ranking answer is on the
    # hot path, and validating it again would cost more than computing it.
    return Response(_encode(content), status_code=status, media_type="application/json")


def _ranking(
    items: list[Any],
    user_id: str | None,
    session_id: str | None,
    goals: Objectives,
    started: float,
    *,
    served: dict[str, Any] | None = None,
) -> Response:
    return _json(
        {
            "user_id": user_id,
            "session_id": session_id,
            "objectives": goals.as_dict(),
            "items": [item.as_dict() for item in items],
            "took_ms": round((time.perf_counter() - started) * 1000, 3),
            **(served or {"rec_id": None, "experiment_id": None, "variant_id": None}),
        }
    )


async def _state(request: Request) -> ServingState:
    # async: FastAPI would run a plain function in a worker thread, at every request.
    serving: ServingState = request.app.state.serving
    return serving


State = Annotated[ServingState, Depends(_state)]


async def _served(
    lab: ExperimentLab, assigned: Assignment, session_id: str | None, items: list[Any]
) -> dict[str, Any]:
    try:
        return await lab.served(assigned, session_id, items)
    except OSError as error:
        raise HTTPException(503, f"the served list could not be recorded: {error}") from None


def create_app(settings: ServeSettings, keys: KeyRing | None = None) -> FastAPI:
    """The ASGI app over the engine and the store named in ``settings``.

    The store is opened, and the ranker loaded (or fitted and saved when none is saved), when
    the app starts (its lifespan), and closed when it stops.

    Args:
        settings: the server's settings.
        keys: the accepted API keys; by default from ``settings.api_keys_file`` and the
            ``PERSONALIZE_API_KEYS`` variable.

    Raises:
        ServeConfigError: when the server binds a non-loopback address without any API key.
    """
    ring = keys if keys is not None else KeyRing.load(settings.api_keys_file)
    if not len(ring) and not is_loopback(settings.host):
        msg = (
            f"binding {settings.host} needs API keys: add one with `personalize keys add "
            "--role write --file KEYFILE` and pass --api-keys-file KEYFILE (or set "
            "PERSONALIZE_API_KEYS)"
        )
        raise ServeConfigError(msg)
    normaliser = _Normaliser(settings.event_map, settings.limits)
    live = open_state(
        settings.state_url,
        settings.state_prefix,
        FailureLimiter(settings.max_key_failures, settings.key_failure_window_seconds),
    )
    # Wrong keys are counted in the live state: in Redis, every process sees them.
    verifier = KeyVerifier(ring, live)
    # Off loopback the API's description needs a read key too, unless opened on purpose.
    docs_behind_key = not settings.open_docs and not is_loopback(settings.host)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await live.start()
        serving = app.state.serving = ServingState(settings, live)
        serving.frontier.start(serving.ranker)
        lab = app.state.experiments = ExperimentLab(serving)
        await lab.start()
        # The ranker's arrays and vocabularies live as long as the server: keep them out of
        # the garbage collector's generations, so collections stay short under load.
        gc.collect()
        gc.freeze()
        refreshing = (
            asyncio.create_task(serving.refresh_forever())
            if settings.refresh_seconds > 0 or live.shared
            else None
        )
        try:
            yield
        finally:
            if refreshing is not None:
                refreshing.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await refreshing
            await serving.frontier.close()
            await lab.close()
            serving.close()
            await live.close()

    app = FastAPI(
        title="personalize",
        summary="Clickstream events in, conversion-aware rankings out.",
        version="1",
        lifespan=lifespan,
        docs_url=None if docs_behind_key else "/docs",
        redoc_url=None if docs_behind_key else "/redoc",
        openapi_url=None if docs_behind_key else "/openapi.json",
    )
    app.add_exception_handler(RequestValidationError, validation_error)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.mount("/sdk", StaticFiles(directory=STATIC / "sdk"), name="sdk")
    # Browser rates are counted in the live state too: in Redis, over every process.
    add_browser_middleware(app, settings.browser, settings.host, rates=live)
    if settings.browser.demo:
        add_storefront(app)
    # Outermost: a body over the server's limits is refused before any other middleware reads it.
    app.add_middleware(BodyLimits, limits=settings.limits)

    def role(needed: Role) -> Callable[[Request], Coroutine[Any, Any, None]]:
        async def check(request: Request) -> None:
            if not len(ring) or "browser_key" in request.scope.get("state", {}):
                return  # no keys, or a browser key BrowserGuard let through
            presented = request.headers.get("x-api-key")
            auth = request.headers.get("authorization", "")
            if presented is None and auth[:7].lower() == "bearer ":
                presented = auth[7:].strip()
            if not presented:
                raise HTTPException(
                    401,
                    "an API key is required (X-API-Key or Authorization: Bearer)",
                    headers={"WWW-Authenticate": "Bearer"},
                )
            # The client is the socket's peer, or what a trusted proxy says (uvicorn's
            # proxy headers, on only with --forwarded-allow-ips).
            client = request.client.host if request.client else "unknown"
            try:
                found = await verifier.role(presented, client)
            except BlockedError as blocked:
                seconds = str(math.ceil(blocked.wait))
                raise HTTPException(
                    429,
                    f"too many wrong API keys from {client}: retry in {seconds} s",
                    headers={"Retry-After": seconds},
                ) from None
            if found is None:
                raise HTTPException(401, "unknown API key", headers={"WWW-Authenticate": "Bearer"})
            if needed == "write" and found != "write":
                raise HTTPException(403, "this API key is read-only")

        return check

    read = [Depends(role("read"))]
    write = [Depends(role("write"))]

    @app.get("/healthz", tags=["service"])
    async def healthz(serving: State) -> dict[str, Any]:
        """Liveness: the ranker is loaded and the store thread runs."""
        return {
            "status": "ok",
            "ranker": serving.ranker.name,
            "key_conversion": serving.ranker.key_conversion,
            "auth": bool(len(ring)),
        }

    @app.post(
        "/v1/events",
        tags=["events"],
        dependencies=write,
        response_model=IngestResult,
        openapi_extra=_event_request_schema(),
        responses={422: {"description": "Invalid events; `detail` lists index, loc, msg, type."}},
    )
    async def post_events(
        request: Request,
        partial: Annotated[
            bool, Query(description="Store the valid events of a batch that has invalid ones.")
        ] = False,
    ) -> Any:
        """Store events and apply them to their live sessions at once.

        The body is one event, a JSON array of events, or Segment's ``{"batch": [...]}``; each
        event is a canonical event or a Segment ``track``/``page`` call. An invalid event makes
        the whole request fail with 422 (nothing stored) unless ``partial=true``. The answer
        comes once the events are durable: flushed to the server's write-ahead journal, or
        committed in the store (the server's ``--ack``).
        """
        # Not a dependency: FastAPI's dependency solving costs more than this whole lookup.
        serving: ServingState = request.app.state.serving
        try:
            body = _decode(await request.body())
        except msgspec.DecodeError as error:
            raise _unprocessable(["body"], f"invalid JSON: {error}") from None
        events, errors, skipped = normaliser.batch(body)
        if errors and not partial:
            status = 413 if any(error.type == "too_large" for error in errors) else 422
            return _json({"detail": [error.model_dump() for error in errors]}, status)
        records = [record for record, _ in events]
        try:
            await serving.store_events(records, [row for _, row in events])
        except (EngineError, OSError) as error:
            raise HTTPException(503, f"the events could not be stored: {error}") from None
        duplicates = await serving.observe(records)
        request.app.state.experiments.observe(records)
        return _json(
            {
                "accepted": len(records),
                "duplicates": duplicates,
                "skipped": skipped,
                "rejected": [error.model_dump() for error in errors],
            }
        )

    @app.get("/v1/recommendations", tags=["rankings"], dependencies=read, response_model=Ranking)
    async def recommendations(
        *,
        request: Request,
        user_id: str | None = None,
        session_id: str | None = None,
        anonymous_id: Annotated[
            str | None,
            Query(description="Device or cookie id: the experiment's visitor without user_id."),
        ] = None,
        experiment: Annotated[
            str | None,
            Query(description="Experiment to serve in; default: the only running one; - for none."),
        ] = None,
        k: Annotated[int, Query(ge=1, le=1000)] = 20,
        objectives: Annotated[
            str | None, Query(description="e.g. conversion:1,margin:0.5; default: the server's.")
        ] = None,
        exclude_seen: bool = False,
        category: str | None = None,
        brand: str | None = None,
    ) -> Response:
        """The ``k`` best items for a session or a user (live events included).

        In an experiment the answer is the visitor's variant's list, with its ``rec_id``.
        """
        started = time.perf_counter()
        serving: ServingState = request.app.state.serving  # not dependencies: see post_events
        lab: ExperimentLab = request.app.state.experiments
        if user_id is None and session_id is None:
            raise _unprocessable(["query", "session_id"], "give user_id or session_id")
        parsed = _parse_objectives(objectives)
        await serving.prepare(user_id, session_id)
        goals = serving.ranker.objectives if parsed is None else parsed
        filters = {
            name: value for name, value in (("category", category), ("brand", brand)) if value
        }
        assigned = lab.assignment(experiment, user_id, anonymous_id, session_id)
        if assigned is None:
            items = serving.ranker.recommend(
                user_id, session_id, k, exclude_seen=exclude_seen, filters=filters, objectives=goals
            )
            return _ranking(items, user_id, session_id, goals, started)
        items, goals = lab.recommend(
            assigned,
            user_id,
            session_id,
            k,
            exclude_seen=exclude_seen,
            filters=filters,
            objectives=goals,
        )
        served = await _served(lab, assigned, session_id, items)
        return _ranking(items, user_id, session_id, goals, started, served=served)

    @app.post("/v1/rank", tags=["rankings"], dependencies=read, response_model=Ranking)
    async def rank(request: Request, body: RankRequest) -> Response:
        """Re-rank candidate items (e.g. search results) for a session or a user.

        In an experiment the order is the visitor's variant's, with the list's ``rec_id``.
        """
        started = time.perf_counter()
        serving: ServingState = request.app.state.serving  # not dependencies: see post_events
        lab: ExperimentLab = request.app.state.experiments
        if body.user_id is None and body.session_id is None:
            raise _unprocessable(["body", "session_id"], "give user_id or session_id")
        if body.objectives is not None:
            _check_objectives(body.objectives, ["body", "objectives"])
        await serving.prepare(body.user_id, body.session_id)
        goals = (
            serving.ranker.objectives
            if body.objectives is None
            else Objectives.parse(body.objectives)
        )
        assigned = lab.assignment(body.experiment, body.user_id, body.anonymous_id, body.session_id)
        if assigned is None:
            items = serving.ranker.rank(body.items, body.user_id, body.session_id, objectives=goals)
            return _ranking(items, body.user_id, body.session_id, goals, started)
        items, goals = lab.rank(assigned, body.items, body.user_id, body.session_id, goals)
        served = await _served(lab, assigned, body.session_id, items)
        return _ranking(items, body.user_id, body.session_id, goals, started, served=served)

    @app.get("/v1/funnel", tags=["funnel"], dependencies=read)
    async def funnel(
        serving: State, conversion: str | None = None, refresh: bool = False
    ) -> dict[str, Any]:
        """The funnel mined from the store for the key conversion, with its event weights.

        Mined again when older than the server's funnel TTL, or with ``refresh=true``.
        """
        try:
            return await serving.funnel(conversion, refresh=refresh)
        except EngineError as error:
            raise HTTPException(422, str(error)) from None

    @app.get("/v1/model", tags=["rankings"], dependencies=read)
    async def model(serving: State) -> dict[str, Any]:
        """The ranker in memory: its event weights, key conversion and objectives."""
        ranker = serving.ranker
        return {
            "ranker": ranker.name,
            "key_conversion": ranker.key_conversion,
            "objectives": ranker.objectives.as_dict(),
            "conversion_source": ranker.conversion_source,
            "event_weights": dict(sorted(ranker.event_weights.items(), key=lambda kv: -kv[1])),
            "items": len(ranker.items),
            "sessions": int(ranker.data.n_sessions),
            "sample_session": serving.sample_session(),
        }

    @app.get("/v1/objectives", tags=["rankings"], dependencies=read)
    async def get_objectives(serving: State) -> ObjectivesBody:
        """The default objective weights."""
        return ObjectivesBody(**serving.ranker.objectives.as_dict())

    @app.put("/v1/objectives", tags=["rankings"], dependencies=write)
    async def put_objectives(body: ObjectivesBody, serving: State) -> ObjectivesBody:
        """Change the default objective weights (in memory, until the server stops)."""
        return ObjectivesBody(**(await serving.set_objectives(body.model_dump())).as_dict())

    @app.get("/v1/tradeoff", tags=["rankings"], dependencies=read)
    async def get_tradeoff(serving: State) -> Response:
        """What each dial setting earns on held-out sessions: the served model's frontier.

        Computed in the background from the first ask, and again after every model refresh
        (202 ``computing`` until then). Per setting of the grid (``conversion`` 0, .5, 1 x
        ``margin`` 0, 1, 2, plus the current setting): HR@20, conversion hit@20, realized
        value@20 and expected value per list, with 90% bootstrap intervals over sessions;
        ``on_frontier`` and ``current`` mark the frontier and the server's default setting.
        """
        # A setting another process chose (shared state) is added to the grid too.
        serving.frontier.follow(serving.ranker)
        serving.frontier.want()
        status, body = serving.frontier.answer(serving.ranker.objectives)
        headers = {"Retry-After": "2"} if status == 202 else None
        return Response(
            _encode(body), status_code=status, media_type="application/json", headers=headers
        )

    @app.get("/v1/stats", tags=["service"], dependencies=read)
    async def stats(serving: State, fresh: bool = False) -> dict[str, Any]:
        """Event counters: in the store, received and stored by this server, last minute.

        The store's count is at most two seconds old, or counted now with ``fresh=true``.
        """
        return await serving.stats(fresh=fresh)

    if docs_behind_key:

        @app.get("/openapi.json", include_in_schema=False, dependencies=read)
        async def openapi_document() -> JSONResponse:
            return JSONResponse(app.openapi())

        @app.get("/docs", include_in_schema=False, dependencies=read)
        async def swagger() -> Response:
            return get_swagger_ui_html(openapi_url="/openapi.json", title=app.title)

        @app.get("/redoc", include_in_schema=False, dependencies=read)
        async def redoc() -> Response:
            return get_redoc_html(openapi_url="/openapi.json", title=app.title)

    add_experiment_routes(app, read, write)

    @app.get("/", include_in_schema=False)
    async def dashboard() -> FileResponse:
        return FileResponse(STATIC / "dashboard.html")

    @app.exception_handler(RankerError)
    async def ranker_error(request: Request, error: RankerError) -> JSONResponse:
        return JSONResponse(
            status_code=422,
            content={"detail": [{"loc": ["query"], "msg": str(error), "type": "value_error"}]},
        )

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = get_openapi(
                title=app.title, version=app.version, summary=app.summary, routes=app.routes
            )
            schemas = spec.setdefault("components", {}).setdefault("schemas", {})
            for model in (CanonicalEvent, SegmentTrack, SegmentPage):
                schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
                schemas.update(schema.pop("$defs", {}))
                schemas[model.__name__] = schema
            app.openapi_schema = spec
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
