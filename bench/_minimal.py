"""The SDK's own ceiling: a minimal singer-sdk tap and a do-nothing target, for the benchmarks.

``python bench/_minimal.py tap FILE`` emits every canonical record of a JSON-lines file on one
stream with the canonical schema; ``python bench/_minimal.py target`` reads Singer messages and
drops the records (default SDK settings: validation on).
"""

from __future__ import annotations

import json
import sys
import typing as t
from pathlib import Path

from singer_sdk import Stream, Tap, Target
from singer_sdk.sinks import BatchSink

from tap_clickstream.events import EVENT_SCHEMA


class EventsStream(Stream):
    name = "file_events"
    schema = EVENT_SCHEMA
    primary_keys: t.ClassVar[list[str]] = ["source", "event_id"]

    def get_records(self, context: t.Any) -> t.Iterable[dict[str, t.Any]]:
        with Path(self.config["path"]).open(encoding="utf-8") as lines:
            for line in lines:
                yield json.loads(line)


class MinimalTap(Tap):
    name = "minimal-tap"
    config_jsonschema: t.ClassVar[dict[str, t.Any]] = {
        "type": "object",
        "properties": {"path": {"type": "string"}},
    }

    def discover_streams(self) -> list[Stream]:
        return [EventsStream(self)]


class NullSink(BatchSink):
    def process_batch(self, context: dict[str, t.Any]) -> None:
        return


class NullTarget(Target):
    name = "null-target"
    config_jsonschema: t.ClassVar[dict[str, t.Any]] = {"type": "object", "properties": {}}
    default_sink_class = NullSink


if __name__ == "__main__":
    if sys.argv[1] == "tap":
        MinimalTap(config={"path": sys.argv[2]}, parse_env_config=False).sync_all()
    else:
        NullTarget(config={}, parse_env_config=False).listen()
