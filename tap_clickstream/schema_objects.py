"""Reusable schema fragments for clickstream entities."""

from __future__ import annotations

import typing as t

from singer_sdk import typing as th

__all__ = ["ITEM_FIELDS", "ITEM_TYPE"]

#: The fields of one item inside an event's ``items`` list, and their JSON types.
ITEM_FIELDS: dict[str, str] = {
    "item_id": "string",
    "name": "string",
    "category": "string",
    "brand": "string",
    "variant": "string",
    "price": "number",
    "quantity": "number",
    "position": "integer",
}

_TYPES: dict[str, type[th.JSONTypeHelper[t.Any]]] = {
    "string": th.StringType,
    "number": th.NumberType,
    "integer": th.IntegerType,
}

ITEM_TYPE = th.ObjectType(
    *(
        th.Property(name, _TYPES[kind], required=name == "item_id")
        for name, kind in ITEM_FIELDS.items()
    ),
    additional_properties=False,
)
