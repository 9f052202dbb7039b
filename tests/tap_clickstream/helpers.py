"""Run the tap in-process or as a subprocess and collect what it emits."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tap_clickstream.tap import TapClickstream

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
#: ``files.mapping`` for ``fixtures/files/mapped.csv`` (a shop's own column names).
CSV_MAPPING = {
    "event_ts": "ts",
    "event_name": "action",
    "anonymous_id": "visitor",
    "page_path": "page",
    "device_category": "device",
    "items.item_id": "sku",
    "items.price": "sku_price",
    "items.category": "cat",
}
TAP_EXECUTABLE = Path(sys.executable).with_name("tap-clickstream")


def load_jsonl(path: Path) -> list[dict[str, Any]]:
    """The JSON objects of a JSON-lines file."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@dataclass
class SyncResult:
    """What one sync wrote: Singer messages, log lines and the error it ended with."""

    messages: list[dict[str, Any]]
    logs: list[str] = field(default_factory=list)
    error: BaseException | None = None

    def records(self, stream: str | None = None) -> list[dict[str, Any]]:
        """The records emitted (on one stream, or on all)."""
        return [
            m["record"]
            for m in self.messages
            if m["type"] == "RECORD" and (stream is None or m["stream"] == stream)
        ]

    def by_id(self, stream: str | None = None) -> dict[str, dict[str, Any]]:
        """The records keyed by event_id."""
        return {r["event_id"]: r for r in self.records(stream)}

    def event_ids(self, stream: str | None = None) -> list[str]:
        """The event ids emitted, in order, repeats included."""
        return [r["event_id"] for r in self.records(stream)]

    @property
    def states(self) -> list[dict[str, Any]]:
        """The values of the STATE messages, in order."""
        return [m["value"] for m in self.messages if m["type"] == "STATE"]

    def bookmark(self, stream: str) -> Any:
        """The stream's bookmark in the last STATE message."""
        return self.states[-1]["bookmarks"][stream].get("replication_key_value")

    @property
    def log_text(self) -> str:
        """All log lines, joined."""
        return "\n".join(self.logs)


class _ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def run_tap(
    config: dict[str, Any],
    state: dict[str, Any] | None = None,
    catalog: dict[str, Any] | None = None,
) -> SyncResult:
    """Sync in-process, as ``tap-clickstream --config ... [--state ...] [--catalog ...]`` would.

    An exception the sync ends with is returned in ``error``, with everything emitted
    before it, as a sync that exits non-zero would leave it.
    """
    tap = TapClickstream(config=config, catalog=catalog, state=state, parse_env_config=False)
    handler = _ListHandler()
    root = logging.getLogger()
    root.addHandler(handler)
    # INFO, as the CLI logs (in-process, the root logger's WARNING would apply).
    plugin_logger = logging.getLogger(tap.name)
    level = plugin_logger.level
    plugin_logger.setLevel(logging.INFO)
    buffer = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    error: BaseException | None = None
    try:
        with contextlib.redirect_stdout(buffer):
            tap.sync_all()
    except Exception as exc:  # the tap failing is a result under test here
        error = exc
    finally:
        root.removeHandler(handler)
        plugin_logger.setLevel(level)
    buffer.seek(0)
    messages = [json.loads(line) for line in buffer.read().splitlines() if line.strip()]
    return SyncResult(messages, handler.lines, error)


def run_cli(
    config: dict[str, Any], tmp_path: Path, state: dict[str, Any] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the ``tap-clickstream`` executable to completion."""
    args = [str(TAP_EXECUTABLE), "--config", str(write_json(tmp_path / "config.json", config))]
    if state is not None:
        args += ["--state", str(write_json(tmp_path / "state.json", state))]
    return subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)


def write_json(path: Path, value: Any) -> Path:
    """Write ``value`` as JSON and return the path."""
    path.write_text(json.dumps(value))
    return path


def parse_messages(stdout: str) -> list[dict[str, Any]]:
    """The Singer messages of a tap's stdout."""
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]
