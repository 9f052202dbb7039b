"""Helpers that pull canonical fields out of free-form event properties.

Mixpanel, Amplitude and Segment-instrumented sites send e-commerce events with the Segment
spec's property names (``product_id``, ``products``, ``order_id``, ``revenue``...) or GA4's
(``items``, ``item_id``, ``transaction_id``, ``value``). These helpers read both.
"""

from __future__ import annotations

import math
import typing as t
import uuid
from datetime import date, datetime
from decimal import Decimal
from urllib.parse import urlsplit

from tap_clickstream.events import Item, format_ts

__all__ = [
    "EXPERIMENT_KEYS",
    "EXPOSURE_EXPERIMENT_KEYS",
    "EXPOSURE_VARIANT_KEYS",
    "REC_ID_KEYS",
    "VARIANT_KEYS",
    "as_filters",
    "as_float",
    "as_str",
    "experiment_fields",
    "items_from_properties",
    "order_fields",
    "path_of",
    "pop_first",
]

_ITEM_KEYS: dict[str, tuple[str, ...]] = {
    "item_id": ("item_id", "product_id", "productId", "$productId", "sku", "id", "item", "product"),
    "name": ("name", "item_name", "product_name", "title"),
    "category": ("category", "item_category", "product_category"),
    "brand": ("brand", "item_brand"),
    "variant": ("variant", "item_variant"),
    "price": ("price", "$price"),
    "quantity": ("quantity", "$quantity"),
    "position": ("position", "index"),
}
# Amplitude's revenue events name their product ``$productId`` (with ``$price``, ``$quantity``).
_SINGLE_ITEM_IDS = ("product_id", "productId", "$productId", "item_id", "sku")
# A single product described by top-level properties: "id" and "title" there name the event.
_SINGLE_ITEM_KEYS = {
    field: tuple(name for name in names if name not in {"id", "title", "item", "product"})
    for field, names in _ITEM_KEYS.items()
}


def as_str(value: object) -> str | None:
    """Return ``value`` as a string, or None when it is empty."""
    if value is None or value == "":
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def as_float(value: object) -> float | None:
    """Return ``value`` as a float, or None when it is empty or not a number."""
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        return float(t.cast("float", value))
    except (TypeError, ValueError):
        return None


def pop_first(props: dict[str, t.Any], *keys: str) -> t.Any:
    """Remove and return the first of ``keys`` present in ``props`` (None if none is)."""
    for key in keys:
        if key in props:
            value = props.pop(key)
            if value is not None and value != "":
                return value
    return None


def path_of(url: str | None) -> str | None:
    """Return the path of a URL (None for an empty or unparsable one)."""
    if not url:
        return None
    try:
        return urlsplit(url).path or "/"
    except ValueError:
        return None


def _item(raw: t.Mapping[str, t.Any], keys: dict[str, tuple[str, ...]]) -> Item | None:
    item: dict[str, t.Any] = {}
    for field, names in keys.items():
        for name in names:
            value = raw.get(name)
            if value is not None and value != "":
                item[field] = value
                break
    item_id = as_str(item.get("item_id"))
    if item_id is None:
        return None
    result: Item = {"item_id": item_id}
    for field in ("name", "category", "brand", "variant"):
        if field in item:
            result[field] = as_str(item[field])  # type: ignore[literal-required]
    for field in ("price", "quantity"):
        if field in item:
            result[field] = as_float(item[field])  # type: ignore[literal-required]
    if "position" in item:
        position = as_float(item["position"])
        result["position"] = int(position) if position is not None else None
    return result


def items_from_properties(props: dict[str, t.Any]) -> list[Item]:
    """Return the items an event names, removing the properties they came from.

    A ``products`` or ``items`` list (Segment, GA4) wins; otherwise a single product described
    by top-level properties (``product_id``, ``price``, ``quantity``...).
    """
    listed = props.get("products")
    if not isinstance(listed, list):
        listed = props.get("items")
    if isinstance(listed, list):
        props.pop("products", None)
        props.pop("items", None)
        return [
            item for raw in listed if isinstance(raw, dict) and (item := _item(raw, _ITEM_KEYS))
        ]
    if not any(key in props for key in _SINGLE_ITEM_IDS):
        return []
    single = _item(props, _SINGLE_ITEM_KEYS)
    if single is None:
        return []
    for names in _SINGLE_ITEM_KEYS.values():
        for name in names:
            props.pop(name, None)
    return [single]


# Keys that name an experiment, its variant or a recommended list on any event, and keys that
# do so only on an exposure (elsewhere "variant" is a product's, "flag_key" a feature flag's).
# (The canonical views read the same keys: tap_clickstream/sources/ga4/view.py.)
EXPERIMENT_KEYS = ("experiment_id", "experimentId")
VARIANT_KEYS = ("variant_id", "variation_id", "variationId")
EXPOSURE_EXPERIMENT_KEYS = ("experiment_name", "flag_key", "Experiment name", "experiment")
EXPOSURE_VARIANT_KEYS = ("variation_name", "variant", "Variant name", "variation")
REC_ID_KEYS = ("rec_id", "recId", "recommendation_id")


def experiment_fields(
    event_type: str, props: dict[str, t.Any]
) -> tuple[str | None, str | None, str | None]:
    """Pop and return ``(experiment_id, variant_id, rec_id)`` from an event's properties.

    The exposures A/B tools log: Segment/Mixpanel/Amplitude "Experiment Viewed"
    (``experiment_id`` else ``experiment_name``, ``variation_id`` else ``variation_name``),
    GrowthBook's ``experiment_viewed`` (``experiment_id``/``experimentId``,
    ``variation_id``/``variationId``), Amplitude Experiment's ``$exposure`` (``flag_key``,
    ``variant``) and Mixpanel's ``$experiment_started`` ("Experiment name", "Variant name").
    Names, flag keys and ``variant`` count only on an ``experiment_exposure`` event. ``rec_id``
    (the recommended list a click or purchase came from) is read on every event.
    """
    exposure = event_type == "experiment_exposure"
    experiment = as_str(pop_first(props, *EXPERIMENT_KEYS))
    if experiment is None and exposure:
        experiment = as_str(pop_first(props, *EXPOSURE_EXPERIMENT_KEYS))
    variant = as_str(pop_first(props, *VARIANT_KEYS))
    if variant is None and exposure:
        variant = as_str(pop_first(props, *EXPOSURE_VARIANT_KEYS))
    return experiment, variant, as_str(pop_first(props, *REC_ID_KEYS))


def as_filters(props: dict[str, t.Any]) -> dict[str, t.Any] | None:
    """Pop and return the ``filters`` property as an object (a list becomes ``{"applied": ...}``).

    A value of any other shape stays in ``props``.
    """
    value = props.get("filters")
    if isinstance(value, dict):
        return props.pop("filters")  # type: ignore[no-any-return]
    if isinstance(value, list):
        return {"applied": props.pop("filters")}
    return None


def order_fields(props: dict[str, t.Any]) -> tuple[str | None, float | None, str | None]:
    """Pop and return ``(order_id, revenue, currency)`` from Segment/GA4-style properties."""
    order_id = as_str(pop_first(props, "order_id", "orderId", "transaction_id", "checkout_id"))
    revenue = as_float(pop_first(props, "revenue", "$revenue", "total", "value"))
    currency = as_str(pop_first(props, "currency", "$currency"))
    return order_id, revenue, currency


def json_ready(value: object, *, rstrip: bool = False) -> t.Any:
    """A warehouse value as JSON-ready Python.

    Timestamps become canonical strings, decimals floats, non-finite floats None; ``rstrip``
    trims padded CHAR columns (Redshift).
    """
    if isinstance(value, datetime):
        return format_ts(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if rstrip and isinstance(value, str):
        return value.rstrip()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, uuid.UUID | bytes):
        return str(value)
    if isinstance(value, dict):
        return {str(k): json_ready(v, rstrip=rstrip) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(v, rstrip=rstrip) for v in value]
    return value
