"""Turn a file row into a canonical event: as it is, or through ``files.mapping``."""

from __future__ import annotations

import typing as t
from datetime import datetime

from tap_clickstream.events import (
    EVENT_COLUMNS,
    ClickstreamEvent,
    Item,
    format_ts,
    parse_ts,
    snake_case,
    stable_event_id,
)
from tap_clickstream.normalize import as_float, as_str
from tap_clickstream.schema_objects import ITEM_FIELDS

if t.TYPE_CHECKING:
    from collections.abc import Callable, Mapping

_NUMBER_FIELDS = frozenset({"revenue", "engagement_ms", "scroll_depth_pct", "media_progress_pct"})
_OBJECT_FIELDS = frozenset({"filters", "properties", "user_properties"})


class RowMapper:
    """Map rows of one file layout to canonical events.

    Args:
        mapping: canonical field -> column; ``items.<field>`` puts a column into the event's
            single item. Empty for rows that are canonical already.
        map_event_type: the raw-name -> canonical-type crosswalk.
        source: the ``source`` value of the events (``file`` by default).
    """

    def __init__(
        self,
        mapping: Mapping[str, str],
        map_event_type: Callable[[str], str],
        source: str = "file",
    ) -> None:
        self.fields = {k: v for k, v in mapping.items() if not k.startswith("items.")}
        self.item_fields = {k[6:]: v for k, v in mapping.items() if k.startswith("items.")}
        self.used_columns = frozenset(mapping.values())
        self.map_event_type = map_event_type
        self.source = source

    def __call__(self, row: dict[str, t.Any], ingested_at: str) -> ClickstreamEvent:
        """Return the canonical event for ``row``.

        Raises:
            ValueError: naming the field that is missing or does not parse.
        """
        if self.fields or self.item_fields:
            values = {field: row.get(column) for field, column in self.fields.items()}
            extra = {k: v for k, v in row.items() if k not in self.used_columns}
            item = {field: row.get(column) for field, column in self.item_fields.items()}
            items: list[t.Any] = [item] if item.get("item_id") not in (None, "") else []
            properties = {**extra, **(values.pop("properties", None) or {})}
        else:
            values = {k: v for k, v in row.items() if k in EVENT_COLUMNS}
            properties = {k: v for k, v in row.items() if k not in EVENT_COLUMNS}
            properties.update(values.pop("properties", None) or {})
            items = values.pop("items", None) or []
        return self._canonical(values, items, properties, ingested_at)

    def _canonical(
        self,
        values: dict[str, t.Any],
        items: list[t.Any],
        properties: dict[str, t.Any],
        ingested_at: str,
    ) -> ClickstreamEvent:
        raw_ts = values.get("event_ts")
        if raw_ts in (None, ""):
            raise ValueError("event_ts is missing")
        try:
            event_ts = format_ts(parse_ts(raw_ts))
        except ValueError as error:
            raise ValueError(f"event_ts does not parse: {error}") from None
        name = as_str(values.get("event_name")) or as_str(values.get("event_type"))
        if name is None:
            raise ValueError("event_name (or event_type) is missing")
        event: dict[str, t.Any] = {field: None for field in EVENT_COLUMNS}
        for field, value in values.items():
            if field in _NUMBER_FIELDS:
                event[field] = as_float(value)
            elif field in _OBJECT_FIELDS:
                event[field] = value if isinstance(value, dict) else None
            elif field not in {"event_count", "is_aggregate", "event_ts", "ingested_at"}:
                event[field] = as_str(value)
        event["source"] = as_str(values.get("source")) or self.source
        event["event_name"] = name
        # A row with both a raw name and a type brings its own canonical type; a lone
        # name or type is a raw name for the crosswalk.
        given_type = as_str(values.get("event_type"))
        if given_type and as_str(values.get("event_name")) is not None:
            event["event_type"] = snake_case(given_type)
        else:
            event["event_type"] = self.map_event_type(name)
        event["event_ts"] = event_ts
        event["ingested_at"] = (
            format_ts(parse_ts(values["ingested_at"])) if values.get("ingested_at") else ingested_at
        )
        event["items"] = [clean for raw in items if isinstance(raw, dict) and (clean := _item(raw))]
        event["event_count"] = int(as_float(values.get("event_count")) or 1)
        event["is_aggregate"] = str(values.get("is_aggregate", "")).lower() in {"true", "1"}
        event["properties"] = properties
        event["user_properties"] = event["user_properties"] or {}
        if not event["event_id"]:
            event["event_id"] = stable_event_id(
                event["source"],
                name,
                event_ts,
                event["user_id"],
                event["anonymous_id"],
                event["session_id"],
                *(i["item_id"] for i in event["items"]),
                *sorted(f"{k}={v}" for k, v in properties.items()),
            )
        return t.cast("ClickstreamEvent", event)


def _item(raw: dict[str, t.Any]) -> Item | None:
    item_id = as_str(raw.get("item_id"))
    if item_id is None:
        return None
    item: dict[str, t.Any] = {"item_id": item_id}
    for field, kind in ITEM_FIELDS.items():
        value = raw.get(field)
        if field == "item_id" or value in (None, ""):
            continue
        if kind == "string":
            item[field] = as_str(value)
        elif kind == "number":
            item[field] = as_float(value)
        else:
            number = as_float(value)
            item[field] = int(number) if number is not None else None
    return t.cast("Item", item)


def mtime_iso(mtime_ns: int) -> str:
    """The canonical timestamp of a file modification time."""
    return format_ts(datetime.fromtimestamp(mtime_ns / 1e9).astimezone())
