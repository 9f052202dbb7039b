"""Canonical events decoded by msgspec straight into typed structs, and their store rows.

The fast path of a RECORD stream: msgspec checks every value's JSON type in C while it
decodes, so an event that decodes holds only values :func:`coerce_event` would pass through
unchanged, and its row needs the few conversions left (timestamps, JSON text, items, defaults)
and no per-field checks. An event that does not decode, or whose row cannot be made, takes
:func:`coerce_event` instead, which names the field at fault: the fast path never decides a
reject, so its rejects are the slow path's.
"""

from __future__ import annotations

from typing import Any

import msgspec

from target_personalize.engine.exceptions import InvalidEventError
from target_personalize.engine.store.columns import EVENT_COLUMNS, ITEM_FIELDS, Kind
from target_personalize.engine.store.records import finish_event_row, parse_timestamp

__all__ = ["TypedEvent", "TypedItem", "typed_event_row"]

# What a value of each kind must be in JSON to need no conversion. Floats take JSON integers
# too (msgspec converts them, as coerce_event's float() does); timestamps stay text, parsed
# by the same function as the slow path; JSON columns are objects or lists, re-encoded.
_JSON_TYPES: dict[Kind, Any] = {
    "str": str | None,
    "float": float | None,
    "int": int | None,
    "bool": bool | None,
    "ts": str | None,
    "json": dict[str, Any] | list[Any] | None,
}

#: One entry of ``items``, its fields in the store's order. Decoded structs are not tracked
#: by the garbage collector (``gc=False``): JSON holds no reference cycles.
TypedItem = msgspec.defstruct(
    "TypedItem",
    [(name, _JSON_TYPES[kind], None) for name, kind in ITEM_FIELDS.items()],
    gc=False,
)

#: A canonical event whose values are all of their column's JSON type; other fields ignored.
TypedEvent = msgspec.defstruct(
    "TypedEvent",
    [
        (name, list[TypedItem] | None if kind == "items" else _JSON_TYPES[kind], None)  # type: ignore[valid-type]
        for name, kind in EVENT_COLUMNS.items()
    ],
    gc=False,
)

_encode = msgspec.json.Encoder().encode
_astuple = msgspec.structs.astuple
_asdict = msgspec.structs.asdict
_TS_AT = [i for i, kind in enumerate(EVENT_COLUMNS.values()) if kind == "ts"]
_JSON_AT = [i for i, kind in enumerate(EVENT_COLUMNS.values()) if kind == "json"]
_ITEMS_AT = list(EVENT_COLUMNS.values()).index("items")


def typed_event_row(event: Any) -> tuple[Any, ...] | None:
    """The store row of a :data:`TypedEvent`, as :func:`coerce_event` makes it.

    Returns:
        None when the row needs the slow path (an unparsable timestamp, an item without
        ``item_id``, a missing required field): :func:`coerce_event` on the record then
        gives the same outcome and names the field at fault.
    """
    row = list(_astuple(event))
    for at in _TS_AT:
        value = row[at]
        if value:
            try:
                row[at] = parse_timestamp(value)
            except ValueError:
                return None
        elif value is not None:
            row[at] = None  # empty text is no time
    for at in _JSON_AT:
        value = row[at]
        if value is not None:
            row[at] = _encode(value).decode()
    items = row[_ITEMS_AT]
    if items is not None:
        for item in items:
            if not item.item_id:
                return None
        row[_ITEMS_AT] = list(map(_asdict, items))
    try:
        return finish_event_row(row)
    except InvalidEventError:
        return None
