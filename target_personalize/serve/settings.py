"""Settings of the HTTP server, shared with the target where they overlap.

``database_url``, ``key_conversion`` and ``objectives`` mean what they mean in
``target-personalize``, and are read from the same places: its config file, or the
``TARGET_PERSONALIZE_*`` variables Meltano sets for ``meltano invoke target-personalize:serve``;
``event_map`` is the tap's setting of the same name (raw event name -> canonical type) for
Segment calls.
"""

from __future__ import annotations

import ipaddress
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from target_personalize.engine import DEFAULT_DATABASE_URL, Objectives
from target_personalize.serve.browser import BrowserSettings
from target_personalize.serve.limits import Limits

__all__ = ["ServeSettings", "is_loopback", "target_environment"]


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or ``localhost``) only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass
class ServeSettings:
    """What ``create_app`` needs.

    Attributes:
        database_url: the engine's store (the target's ``database_url``).
        key_conversion: the conversion the ranker and the funnel optimize (the target's setting).
        objectives: default objective weights (the target's ``objectives``); ``None`` keeps the
            saved model's.
        event_map: raw event name -> canonical type, applied before the built-in crosswalk.
        host: the address the server binds (decides whether API keys are required).
        api_keys_file: the hashed key file; ``None`` reads only ``PERSONALIZE_API_KEYS``.
        funnel_ttl_seconds: how long a mined funnel is served before it is mined again.
        ack: when POST /v1/events answers: ``commit`` once the events are committed in the
            store, or ``journal`` once they are flushed to the write-ahead journal (the store
            gets them within ``flush_ms``; see :mod:`target_personalize.serve.journal`).
            Default: ``journal`` for a DuckDB file (an analytical database: a commit of a few
            rows costs milliseconds, too many at hundreds of ingests a second; the journal on
            the same disk is as durable as the file), ``commit`` for PostgreSQL (a journal on
            this machine would be less durable than the database) or an in-memory DuckDB.
        journal_dir: where the journal lives (default: ``<store>.journal`` beside a DuckDB
            file store, else ``.personalize-journal`` in the working directory).
        flush_ms: how long the writer waits for more events to join a commit (default 0 with
            ``ack="commit"``: it takes what is queued, and events arriving during a commit join
            the next one; 250 with ``ack="journal"``).
        refresh_seconds: how often the model is brought up to date with the store in the
            background and swapped in (0: never; the live sessions reflect new events anyway,
            a refresh adds them to what every session's neighbours are found among).
        max_key_failures: wrong API keys a client (address) may present within
            ``key_failure_window_seconds`` before it is refused with 429 until the oldest
            leaves the window (0: no limit). Keys the server has verified still pass.
        browser: CORS origins, browser keys and their limits, the demo storefront.
        max_body_bytes, max_event_bytes, max_property_bytes, max_json_depth: what a request
            may hold (see :class:`~target_personalize.serve.limits.Limits`).
        forwarded_allow_ips: addresses of the reverse proxies whose ``X-Forwarded-For`` and
            ``X-Forwarded-Proto`` are believed (comma-separated, ``*`` for any); ``None``: the
            headers are ignored and a client is its socket's address.
        open_docs: serve ``/docs``, ``/redoc`` and ``/openapi.json`` without a key on a
            non-loopback address (by default they need a read key there).
        state_url: ``redis://HOST:PORT/DB``: live sessions, wrong-key counters, the model
            version and the default objectives live there, shared by every server process
            that names it (``--workers``, several hosts); ``None``: in this process.
        state_prefix: prepended to the keys in Redis (deployments sharing one Redis).
        tradeoff_k: list length of the dials' frontier (``GET /v1/tradeoff``, the dashboard).
    """

    database_url: str = DEFAULT_DATABASE_URL
    key_conversion: str = "purchase"
    objectives: dict[str, float] | None = None
    event_map: dict[str, str] = field(default_factory=dict)
    host: str = "127.0.0.1"
    api_keys_file: str | None = None
    funnel_ttl_seconds: float = 60.0
    ack: Literal["commit", "journal"] | None = None
    journal_dir: str | None = None
    flush_ms: float | None = None
    max_key_failures: int = 10
    key_failure_window_seconds: float = 60.0
    refresh_seconds: float = 600.0
    browser: BrowserSettings = field(default_factory=BrowserSettings)
    max_body_bytes: int = Limits.max_body_bytes
    max_event_bytes: int = Limits.max_event_bytes
    max_property_bytes: int = Limits.max_property_bytes
    max_json_depth: int = Limits.max_json_depth
    forwarded_allow_ips: str | None = None
    open_docs: bool = False
    state_url: str | None = None
    state_prefix: str = "personalize:"
    tradeoff_k: int = 20

    def __post_init__(self) -> None:
        if self.ack is None:
            from target_personalize.engine import model_path  # noqa: PLC0415

            # model_path names a file beside a DuckDB file store only.
            self.ack = "commit" if model_path(self.database_url, "journal") is None else "journal"
        if self.ack not in ("commit", "journal"):
            msg = f"ack must be commit or journal, not {self.ack!r}"
            raise ValueError(msg)
        if self.flush_ms is None:
            self.flush_ms = 250.0 if self.ack == "journal" else 0.0
        if self.objectives is not None:
            Objectives.parse(self.objectives)  # raises RankerError on a bad weight
        for name in (
            "tradeoff_k",
            "max_body_bytes",
            "max_event_bytes",
            "max_property_bytes",
            "max_json_depth",
        ):
            if getattr(self, name) < 1:
                msg = f"{name} must be at least 1, not {getattr(self, name)!r}"
                raise ValueError(msg)

    @property
    def limits(self) -> Limits:
        """The request limits."""
        return Limits(
            self.max_body_bytes, self.max_event_bytes, self.max_property_bytes, self.max_json_depth
        )

    def uvicorn_options(self) -> dict[str, Any]:
        """Proxy settings of uvicorn: forwarded headers only from ``forwarded_allow_ips``."""
        if not self.forwarded_allow_ips:
            return {"proxy_headers": False}
        return {"proxy_headers": True, "forwarded_allow_ips": self.forwarded_allow_ips}

    def journal_path(self) -> Path:
        """The journal's directory."""
        if self.journal_dir:
            return Path(self.journal_dir).expanduser()
        from target_personalize.engine import model_path  # noqa: PLC0415

        beside = model_path(self.database_url, "journal")
        return beside.with_suffix("") if beside is not None else Path(".personalize-journal")

    @classmethod
    def from_target(
        cls,
        config_file: str | Path | None = None,
        environ: Mapping[str, str] | None = None,
        **overrides: Any,
    ) -> ServeSettings:
        """Settings the target shares, from its variables, its config file, then ``overrides``.

        ``TARGET_PERSONALIZE_*`` variables (as Meltano sets them for the plugin's commands,
        e.g. ``meltano invoke target-personalize:serve``) come first; the config JSON file
        (the target's own: keys the server does not use are ignored) wins over them, and
        ``overrides`` that are not ``None`` win over both.

        Raises:
            ValueError: naming the variable or file that holds a value of the wrong form.
        """
        known = target_environment(os.environ if environ is None else environ)
        if config_file is not None:
            config = json.loads(Path(config_file).read_text(encoding="utf-8"))
            if not isinstance(config, dict):
                msg = f"{config_file}: expected a JSON object"
                raise ValueError(msg)
            known.update({name: config[name] for name in _SHARED if config.get(name) is not None})
        known.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**known)


#: Settings of the target (and the tap's event_map) that the server uses too.
_SHARED = ("database_url", "key_conversion", "objectives", "event_map", "state_url")
_PREFIX = "TARGET_PERSONALIZE_"


def target_environment(environ: Mapping[str, str]) -> dict[str, Any]:
    """The shared settings held in ``TARGET_PERSONALIZE_*`` variables.

    ``OBJECTIVES`` and ``EVENT_MAP`` hold JSON objects; ``OBJECTIVES_<NAME>`` one weight each
    (Meltano's form of the nested setting ``objectives.<name>``).

    Raises:
        ValueError: naming the variable whose value is not of the expected form.
    """
    found: dict[str, Any] = {}
    for name in ("database_url", "key_conversion", "state_url"):
        value = environ.get(_PREFIX + name.upper())
        if value:
            found[name] = value
    for name in ("objectives", "event_map"):
        variable = _PREFIX + name.upper()
        if environ.get(variable):
            try:
                value = json.loads(environ[variable])
            except json.JSONDecodeError as error:
                msg = f"{variable} is not JSON: {error}"
                raise ValueError(msg) from None
            if not isinstance(value, dict):
                msg = f"{variable} must hold a JSON object"
                raise ValueError(msg)
            found[name] = value
    weights = dict(found.get("objectives", {}))
    for variable, value in sorted(environ.items()):
        if variable.startswith(_PREFIX + "OBJECTIVES_") and value:
            try:
                weights[variable.removeprefix(_PREFIX + "OBJECTIVES_").lower()] = float(value)
            except ValueError:
                msg = f"{variable} must be a number, not {value!r}"
                raise ValueError(msg) from None
    if weights:
        found["objectives"] = weights
    return found
