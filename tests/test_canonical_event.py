"""The tap's canonical schema and the engine's columns describe the same event."""

from __future__ import annotations

from tap_clickstream.events import EVENT_SCHEMA
from tap_clickstream.schema_objects import ITEM_FIELDS as TAP_ITEM_FIELDS
from target_personalize.engine import EVENT_COLUMNS
from target_personalize.engine.store.columns import ITEM_FIELDS

_JSON_TYPE = {
    "str": "string",
    "float": "number",
    "int": "integer",
    "bool": "boolean",
    "json": "object",
    "items": "array",
}


def _json_type(prop: dict[str, object]) -> str:
    kinds = prop["type"] if isinstance(prop["type"], list) else [prop["type"]]
    return next(str(k) for k in kinds if k != "null")


def test_same_columns_in_the_same_order() -> None:
    assert list(EVENT_SCHEMA["properties"]) == list(EVENT_COLUMNS)


def test_same_types() -> None:
    for name, kind in EVENT_COLUMNS.items():
        prop = EVENT_SCHEMA["properties"][name]
        if kind == "ts":
            assert prop.get("format") == "date-time", name
        else:
            assert _json_type(prop) == _JSON_TYPE[kind], name


def test_same_item_fields() -> None:
    assert {n: _JSON_TYPE[k] for n, k in ITEM_FIELDS.items()} == TAP_ITEM_FIELDS


def test_required_fields_are_the_key_and_the_event() -> None:
    assert set(EVENT_SCHEMA["required"]) == {
        "source",
        "event_id",
        "event_name",
        "event_type",
        "event_ts",
    }
