"""Settings of the HTTP server, shared with the target where they overlap.

``database_url``, ``key_conversion`` and ``objectives`` mean what they mean in
``target-personalize`` (and can be read from the same config file); ``event_map`` is the tap's
setting of the same name (raw event name -> canonical type) for Segment calls.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from target_personalize.engine import DEFAULT_DATABASE_URL, Objectives

__all__ = ["ServeSettings", "is_loopback"]


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
        journal_dir: where the journal lives (default: ``<store>.journal`` beside a DuckDB
            file store, else ``.personalize-journal`` in the working directory).
        flush_ms: how long the writer waits for more events to join a commit (default 0 with
            ``ack="commit"``: it takes what is queued, and events arriving during a commit join
            the next one; 250 with ``ack="journal"``).
        max_key_failures: wrong API keys a client (address) may present within
            ``key_failure_window_seconds`` before it is refused with 429 until the oldest
            leaves the window (0: no limit). Keys the server has verified still pass.
    """

    database_url: str = DEFAULT_DATABASE_URL
    key_conversion: str = "purchase"
    objectives: dict[str, float] | None = None
    event_map: dict[str, str] = field(default_factory=dict)
    host: str = "127.0.0.1"
    api_keys_file: str | None = None
    funnel_ttl_seconds: float = 60.0
    ack: Literal["commit", "journal"] = "commit"
    journal_dir: str | None = None
    flush_ms: float | None = None
    max_key_failures: int = 10
    key_failure_window_seconds: float = 60.0

    def __post_init__(self) -> None:
        if self.ack not in ("commit", "journal"):
            msg = f"ack must be commit or journal, not {self.ack!r}"
            raise ValueError(msg)
        if self.flush_ms is None:
            self.flush_ms = 250.0 if self.ack == "journal" else 0.0
        if self.objectives is not None:
            Objectives.parse(self.objectives)  # raises RankerError on a bad weight

    def journal_path(self) -> Path:
        """The journal's directory."""
        if self.journal_dir:
            return Path(self.journal_dir).expanduser()
        from target_personalize.engine import model_path  # noqa: PLC0415

        beside = model_path(self.database_url, "journal")
        return beside.with_suffix("") if beside is not None else Path(".personalize-journal")

    @classmethod
    def from_target_config(cls, path: str | Path, **overrides: Any) -> ServeSettings:
        """Settings from a ``target-personalize`` (or tap) config JSON file, then ``overrides``.

        Keys the server does not use are ignored, so the target's own file can be passed as is.
        """
        config = json.loads(Path(path).read_text(encoding="utf-8"))
        if not isinstance(config, dict):
            msg = f"{path}: expected a JSON object"
            raise ValueError(msg)
        known = {
            name: config[name]
            for name in ("database_url", "key_conversion", "objectives", "event_map")
            if config.get(name) is not None
        }
        known.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**known)
