"""Turn a file row into a canonical event: as it is, or through ``files.mapping``."""

from __future__ import annotations

import re
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
_EVENT_KEYS = frozenset(EVENT_COLUMNS)
# How each canonical field of ``values`` is cleaned: as a string, a number, an object, or not
# in the loop (set on their own below; ``items`` and ``properties`` come in apart). Other keys
# are not event fields.
_STR, _NUM, _OBJ, _SKIP = range(4)
_KINDS = {
    **dict.fromkeys(EVENT_COLUMNS, _STR),
    **dict.fromkeys(_NUMBER_FIELDS, _NUM),
    **dict.fromkeys(_OBJECT_FIELDS, _OBJ),
    **dict.fromkeys(
        ("event_count", "is_aggregate", "event_ts", "ingested_at", "items", "properties"), _SKIP
    ),
}
_ITEM_REST = [(field, kind) for field, kind in ITEM_FIELDS.items() if field != "item_id"]
_TRUE = frozenset({"true", "1"})
#: A timestamp already in the canonical form (``format_ts`` output), year 1000 or later.
_CANONICAL_TS = re.compile(r"[1-9][0-9]{3}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z")


def canonical_ts(value: object) -> str:
    """``format_ts(parse_ts(value))``, without the round trip for text in that form already.

    Raises:
        ValueError: if the value is not a timestamp.
    """
    if type(value) is str and len(value) == 27 and _CANONICAL_TS.fullmatch(value):
        try:
            datetime.fromisoformat(value)  # a real date and time?
        except ValueError:
            pass  # parse_ts words the error
        else:
            return value
    return format_ts(parse_ts(value))


def _text(value: object) -> str | None:
    return (value or None) if type(value) is str else as_str(value)


_INT64 = 1 << 63


def _whole(number: float, field: str) -> int:
    """int(number), which must fit the 64-bit integer columns of BATCH files and stores.

    Raises:
        ValueError: for NaN, or a number out of the 64-bit range.
        OverflowError: for an infinity.
    """
    whole = int(number)
    if not -_INT64 <= whole < _INT64:
        raise ValueError(f"{field} is out of range: {number!r}")
    return whole


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
        self.mapping = dict(mapping)
        self.fields = {k: v for k, v in mapping.items() if not k.startswith("items.")}
        self.item_fields = {k[6:]: v for k, v in mapping.items() if k.startswith("items.")}
        self.used_columns = frozenset(mapping.values())
        self.map_event_type = map_event_type
        self.source = source
        self._snake: dict[str, str] = {}

    def __call__(self, row: dict[str, t.Any], ingested_at: str) -> ClickstreamEvent:
        """Return the canonical event for ``row``.

        Raises:
            ValueError: naming the field that is missing or does not parse.
        """
        if self.fields or self.item_fields:
            get = row.get
            values = {field: get(column) for field, column in self.fields.items()}
            extra = {k: v for k, v in row.items() if k not in self.used_columns}
            item = {field: get(column) for field, column in self.item_fields.items()}
            items: list[t.Any] = [item] if item.get("item_id") not in (None, "") else []
            properties = {**extra, **(values.pop("properties", None) or {})}
            return self._canonical(values, items, properties, ingested_at)
        if row.keys() <= _EVENT_KEYS:
            properties = {}
        else:
            properties = {k: v for k, v in row.items() if k not in _EVENT_KEYS}
        given = row.get("properties")
        if given:
            properties.update(given)
        return self._canonical(row, row.get("items") or [], properties, ingested_at)

    def _canonical(
        self,
        values: Mapping[str, t.Any],
        items: t.Any,
        properties: dict[str, t.Any],
        ingested_at: str,
    ) -> ClickstreamEvent:
        # ``values`` may be the row itself: read it, never change it.
        raw_ts = values.get("event_ts")
        if raw_ts is None or raw_ts == "":
            raise ValueError("event_ts is missing")
        try:
            event_ts = canonical_ts(raw_ts)
        except ValueError as error:
            raise ValueError(f"event_ts does not parse: {error}") from None
        raw_name = _text(values.get("event_name"))
        given_type = _text(values.get("event_type"))
        name = raw_name or given_type
        if name is None:
            raise ValueError("event_name (or event_type) is missing")
        event: dict[str, t.Any] = dict.fromkeys(EVENT_COLUMNS)
        for field, value in values.items():
            kind = _KINDS.get(field, _SKIP)
            if kind == _STR:
                event[field] = (value or None) if type(value) is str else as_str(value)
            elif kind == _NUM:
                event[field] = value if type(value) is float else as_float(value)
            elif kind == _OBJ:
                event[field] = value if isinstance(value, dict) else None
        event["source"] = event["source"] or self.source
        event["event_name"] = name
        # A row with both a raw name and a type brings its own canonical type; a lone
        # name or type is a raw name for the crosswalk.
        if given_type and raw_name is not None:
            kind_name = self._snake.get(given_type)
            if kind_name is None:
                kind_name = self._snake[given_type] = snake_case(given_type)
            event["event_type"] = kind_name
        else:
            event["event_type"] = self.map_event_type(name)
        event["event_ts"] = event_ts
        raw_ingested = values.get("ingested_at")
        event["ingested_at"] = canonical_ts(raw_ingested) if raw_ingested else ingested_at
        event["items"] = [clean for raw in items if isinstance(raw, dict) and (clean := _item(raw))]
        count = values.get("event_count")
        event["event_count"] = 1 if count is None else _whole(as_float(count) or 1, "event_count")
        flag = values.get("is_aggregate")
        event["is_aggregate"] = flag is not None and str(flag).lower() in _TRUE
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
    item_id = _text(raw.get("item_id"))
    if item_id is None:
        return None
    item: dict[str, t.Any] = {"item_id": item_id}
    for field, kind in _ITEM_REST:
        value = raw.get(field)
        if value is None or value == "":
            continue
        if kind == "string":
            item[field] = value if type(value) is str else as_str(value)
        elif kind == "number":
            item[field] = value if type(value) is float else as_float(value)
        else:
            number = as_float(value)
            item[field] = _whole(number, f"items.{field}") if number is not None else None
    return t.cast("Item", item)


def mtime_iso(mtime_ns: int) -> str:
    """The canonical timestamp of a file modification time."""
    return format_ts(datetime.fromtimestamp(mtime_ns / 1e9).astimezone())
