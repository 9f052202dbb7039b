"""Check and coerce incoming records into store rows, naming the field at fault when one is bad."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import msgspec

from target_personalize.engine.exceptions import InvalidEventError
from target_personalize.engine.store.columns import EVENT_COLUMNS, ITEM_COLUMNS, ITEM_FIELDS, Kind

__all__ = [
    "REQUIRED_EVENT_FIELDS",
    "coerce_event",
    "coerce_item",
    "finish_event_row",
    "parse_timestamp",
]

#: Fields every canonical event must have (besides ``event_name`` or ``event_type``).
REQUIRED_EVENT_FIELDS = ("source", "event_id", "event_ts")
_SNAKE = re.compile(r"[^0-9a-z]+")


def parse_timestamp(value: object) -> datetime:
    """Parse an ISO-8601 string or datetime into a naive UTC datetime.

    Raises:
        ValueError: if the value is not a timestamp.
    """
    if type(value) is str and value[-1:] == "Z":
        # The canonical form (``...Z``): naive already once the ``Z`` is dropped.
        try:
            moment = datetime.fromisoformat(value[:-1])
        except ValueError:
            pass
        else:
            if moment.tzinfo is None:
                return moment
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str) and value:
        text = value[:-4] if value.endswith(" UTC") else value
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"not a timestamp: {value!r}") from None
    else:
        raise ValueError(f"not a timestamp: {value!r}")
    if moment.tzinfo is not None:
        try:
            moment = moment.astimezone(UTC).replace(tzinfo=None)
        except OverflowError:  # e.g. 0001-01-01T00:00:00+00:01, before year 1 in UTC
            raise ValueError(f"timestamp out of range: {value!r}") from None
    return moment


def _str(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool | dict | list):
        raise ValueError(f"expected a string, got {type(value).__name__}")
    return str(value)


def _float(value: object) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError("expected a number, got a boolean")
    if isinstance(value, int | float | Decimal | str):
        return float(value)
    raise ValueError(f"expected a number, got {type(value).__name__}")


def _int(value: object) -> int | None:
    number = _float(value)
    if number is None:
        return None
    if not number.is_integer():
        raise ValueError(f"expected a whole number, got {value!r}")
    return int(number)


def _bool(value: object) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    if value in (0, 1, "true", "false", "True", "False"):
        return value in (1, "true", "True")
    raise ValueError(f"expected a boolean, got {value!r}")


def _ts(value: object) -> datetime | None:
    if value is None or value == "":
        return None
    return parse_timestamp(value)


_encode_json = msgspec.json.Encoder().encode
_PLAIN_SCALARS = (str, int, float, bool, type(None))


def _plain(value: object) -> bool:
    """Whether ``value`` holds JSON values only (as decoded from JSON), at any depth."""
    if isinstance(value, dict):
        return all(type(k) is str and _plain(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_plain(v) for v in value)
    return isinstance(value, _PLAIN_SCALARS)


def _json(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        json.loads(value)
        return value
    if not isinstance(value, dict | list):
        raise ValueError(f"expected an object, got {type(value).__name__}")
    if _plain(value):
        # msgspec writes what json.dumps would (non-ASCII unescaped, NaN as null), faster.
        return _encode_json(value).decode()
    return json.dumps(value, default=_json_default, separators=(",", ":"))


def _json_default(value: object) -> object:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _items(value: object) -> list[dict[str, Any]]:
    if value is None:
        return []
    if isinstance(value, str):
        value = json.loads(value)
    if not isinstance(value, list):
        raise ValueError(f"expected a list of items, got {type(value).__name__}")
    items = []
    for position, raw in enumerate(value):
        if not isinstance(raw, Mapping):
            raise ValueError(f"item {position} is not an object")
        item = {}
        get = raw.get
        for field, native, convert in _ITEM_PLAN:
            field_value = get(field)
            if field_value is None or type(field_value) is native:
                item[field] = field_value
                continue
            try:
                item[field] = convert(field_value)
            except ValueError as error:
                raise ValueError(f"item {position}, {field}: {error}") from None
        if not item["item_id"]:
            raise ValueError(f"item {position} has no item_id")
        items.append(item)
    return items


# Per column: its name, the Python type that needs no conversion, and the converter.
_NATIVE: dict[Kind, type] = {"str": str, "float": float, "int": int, "bool": bool}

_SCALARS: dict[Kind, Callable[[object], Any]] = {
    "str": _str,
    "float": _float,
    "int": _int,
    "bool": _bool,
    "ts": _ts,
    "json": _json,
    "items": _items,
}
_ITEM_PLAN = [(name, _NATIVE.get(kind), _SCALARS[kind]) for name, kind in ITEM_FIELDS.items()]
_ITEM_CONVERTERS = [(name, _SCALARS[kind]) for name, kind in ITEM_COLUMNS.items()]
_AT = {name: index for index, name in enumerate(EVENT_COLUMNS)}
_DEFAULTS = {"event_count": 1, "is_aggregate": False, "properties": "{}", "user_properties": "{}"}
_EVENT_PLAN = [(name, _NATIVE.get(kind), _SCALARS[kind]) for name, kind in EVENT_COLUMNS.items()]
_ITEMS_AT = _AT["items"]
_NAME_AT, _TYPE_AT = _AT["event_name"], _AT["event_type"]
_DEFAULTS_AT = [(_AT[name], default) for name, default in _DEFAULTS.items()]
_REQUIRED_AT = [(name, _AT[name]) for name in REQUIRED_EVENT_FIELDS]


def coerce_event(record: Mapping[str, Any]) -> tuple[Any, ...]:
    """Return the store row (a tuple in column order) for a canonical event record.

    Raises:
        InvalidEventError: naming the first field that is missing or of the wrong type.
    """
    get = record.get
    row: list[Any] = []
    append = row.append
    for name, native, convert in _EVENT_PLAN:
        value = get(name)
        # Values of the column's own type (the usual case) need no conversion.
        if value is None or type(value) is native:
            append(value)
            continue
        try:
            append(convert(value))
        except (ValueError, TypeError) as error:
            raise InvalidEventError(name, str(error)) from None
    return finish_event_row(row)


def finish_event_row(row: list[Any]) -> tuple[Any, ...]:
    """Complete a row of converted values: the required fields, the names and the defaults.

    Raises:
        InvalidEventError: naming the required field that is missing.
    """
    if row[_ITEMS_AT] is None:
        row[_ITEMS_AT] = []
    for name, at in _REQUIRED_AT:
        value = row[at]
        if value is None or value == "":
            raise InvalidEventError(name, "is missing")
    name, kind = row[_NAME_AT], row[_TYPE_AT]
    if not name and not kind:
        raise InvalidEventError("event_name", "is missing (and so is event_type)")
    if not name:
        row[_NAME_AT] = kind
    if not kind:
        row[_TYPE_AT] = _SNAKE.sub("_", str(name).lower()).strip("_") or "unknown"
    for at, default in _DEFAULTS_AT:
        if row[at] is None:
            row[at] = default
    return tuple(row)


def coerce_item(record: Mapping[str, Any]) -> tuple[Any, ...]:
    """Return the catalog row for an ``items`` record; unknown fields go to ``properties``.

    Raises:
        InvalidEventError: naming the field that is missing or of the wrong type.
    """
    extra = {k: v for k, v in record.items() if k not in ITEM_COLUMNS and not k.startswith("_sdc_")}
    given = record.get("properties")
    if isinstance(given, str):  # JSON text, as a database or a CSV file holds it
        try:
            given = json.loads(given)
        except ValueError as error:
            raise InvalidEventError("properties", f"not JSON: {error}") from None
    if given is not None and not isinstance(given, Mapping):
        raise InvalidEventError("properties", f"expected an object, got {type(given).__name__}")
    merged = {**record, "properties": {**extra, **(given or {})}}
    row: list[Any] = []
    for name, convert in _ITEM_CONVERTERS:
        try:
            row.append(convert(merged.get(name)))
        except (ValueError, TypeError) as error:
            raise InvalidEventError(name, str(error)) from None
    if not row[0]:
        raise InvalidEventError("item_id", "is missing")
    return tuple(row)
