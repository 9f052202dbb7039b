"""The ``items`` of the Snowplow canonical view, written in each warehouse's own SQL.

sqlglot cannot transpile JSON building and array unnesting between warehouses, so the view
(written in DuckDB's SQL, :mod:`tap_clickstream.sources.snowplow.view`) joins a placeholder
relation, :data:`ITEMS_RELATION`, that :func:`items_relation` replaces after transpiling. Its
rows are ``(item_event_id, item_list)``: the items of each event that has any, as the stream
reads them (:mod:`tap_clickstream.sources.snowplow.streams`): a legacy ``transaction`` takes
the lines (``transaction_item`` rows) of its order id, in load order; a ``transaction_item``
is its own line; any other event lists its product entities. An item without an id (SKU) is
left out, and so is every field without a value, as in the tap.
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass

from tap_clickstream.sources.snowplow import settings

__all__ = ["ITEMS_RELATION", "NO_ITEMS", "empty_items", "items_relation"]

#: The relation the DuckDB source joins, replaced by :func:`items_relation`'s subquery.
ITEMS_RELATION = "snowplow_view_items"
#: The empty list in the DuckDB source, replaced by :func:`empty_items`.
NO_ITEMS = "snowplow_view_no_items"
_PRODUCT_TEXT = ("id", "name", "category", "brand", "variant")
_PRODUCT_NUMBERS = ("price", "quantity")
_NUMBERS = (*_PRODUCT_NUMBERS, "position")
#: Legacy line columns -> item fields.
_LINE_TEXT = (("item_id", "ti_sku"), ("name", "ti_name"), ("category", "ti_category"))
_LINE_NUMBERS = (("price", "ti_price"), ("quantity", "ti_quantity"))


@dataclass(frozen=True)
class _Dialect:
    """How one warehouse spells the few things the items need."""

    text: str
    double: str
    bigint: str
    empty: str
    #: Wide layout: the FROM fragment unnesting ``{column}`` of ``d`` into ``p``, an element's
    #: index, a field of ``p`` as text, and text as a number. unnest None: no wide layout.
    unnest: str | None
    index: str
    field: str
    to_double: str
    obj: t.Callable[[list[tuple[str, str]]], str]
    agg: t.Callable[[str, str], str]


def _duckdb_object(pairs: list[tuple[str, str]]) -> str:
    entries = ", ".join(f"{{'k': '{key}', 'v': to_json({value})}}" for key, value in pairs)
    return f"to_json(map_from_entries(list_filter([{entries}], lambda e: e.v IS NOT NULL)))"


def _pairs(pairs: list[tuple[str, str]]) -> str:
    return ", ".join(f"'{key}', {value}" for key, value in pairs)


def _redshift_object(pairs: list[tuple[str, str]]) -> str:
    """JSON text of the object with the pairs that have a value (OBJECT() keeps nulls)."""

    def member(key: str, value: str) -> str:
        serialized = f"JSON_SERIALIZE(OBJECT('{key}', {value}))"
        return f"SUBSTRING({serialized}, 2, LEN({serialized}) - 2)"

    (first_key, first), *rest = pairs  # the id: never NULL here
    members = "".join(
        f" || COALESCE(',' || CASE WHEN {value} IS NOT NULL THEN {member(key, value)} END, '')"
        for key, value in rest
    )
    return f"'{{' || {member(first_key, first)}{members} || '}}'"


_DIALECTS = {
    "duckdb": _Dialect(
        text="VARCHAR",
        double="DOUBLE",
        bigint="BIGINT",
        empty="CAST('[]' AS JSON)",
        unnest=(
            ", (SELECT unnest(json_extract(d.{column}, '$[*]')) AS value, "
            "generate_subscripts(json_extract(d.{column}, '$[*]'), 1) AS o) p"
        ),
        index="p.o",
        field="json_extract_string(p.value, '$.{name}')",
        to_double="TRY_CAST({} AS DOUBLE)",
        obj=_duckdb_object,
        agg=lambda item, order: f"to_json(list({item} ORDER BY {order}))",
    ),
    "postgres": _Dialect(
        text="TEXT",
        double="DOUBLE PRECISION",
        bigint="BIGINT",
        empty="CAST('[]' AS JSONB)",
        unnest=(
            " CROSS JOIN LATERAL jsonb_array_elements(CAST(d.{column} AS JSONB)) "
            "WITH ORDINALITY AS p(value, o)"
        ),
        index="p.o",
        field="p.value ->> '{name}'",
        to_double="CAST({} AS DOUBLE PRECISION)",
        obj=lambda pairs: f"jsonb_strip_nulls(jsonb_build_object({_pairs(pairs)}))",
        agg=lambda item, order: f"jsonb_agg({item} ORDER BY {order})",
    ),
    "snowflake": _Dialect(
        text="VARCHAR",
        double="DOUBLE",
        bigint="BIGINT",
        empty="ARRAY_CONSTRUCT()",
        unnest=", LATERAL FLATTEN(input => d.{column}) p",
        index="p.index",
        field="JSON_EXTRACT_PATH_TEXT(TO_JSON(p.value), '{name}')",
        to_double="TRY_TO_DOUBLE({})",
        # OBJECT_CONSTRUCT leaves out the keys whose value is NULL.
        obj=lambda pairs: f"OBJECT_CONSTRUCT({_pairs(pairs)})",
        agg=lambda item, order: f"ARRAY_AGG({item}) WITHIN GROUP (ORDER BY {order})",
    ),
    "bigquery": _Dialect(
        text="STRING",
        double="FLOAT64",
        bigint="INT64",
        empty="PARSE_JSON('[]')",
        unnest=" CROSS JOIN UNNEST(JSON_EXTRACT_ARRAY(d.{column})) AS p WITH OFFSET AS o",
        index="o",
        field="JSON_EXTRACT_SCALAR(p, '$.{name}')",
        to_double="SAFE_CAST({} AS FLOAT64)",
        obj=lambda pairs: f"JSON_STRIP_NULLS(JSON_OBJECT({_pairs(pairs)}))",
        agg=lambda item, order: f"TO_JSON(ARRAY_AGG({item} ORDER BY {order}))",
    ),
    "redshift": _Dialect(
        text="VARCHAR(MAX)",
        double="DOUBLE PRECISION",
        bigint="BIGINT",
        empty="JSON_PARSE('[]')",
        unnest=None,
        index="",
        field="",
        to_double="",
        obj=_redshift_object,
        agg=lambda item, order: (
            f"JSON_PARSE('[' || LISTAGG({item}, ',') WITHIN GROUP (ORDER BY {order}) || ']')"
        ),
    ),
}


def _dialect(dialect: str) -> _Dialect:
    try:
        return _DIALECTS[dialect]
    except KeyError:
        raise ValueError(
            f"no Snowplow view items for dialect {dialect!r}: use one of {', '.join(_DIALECTS)}"
        ) from None


def empty_items(dialect: str) -> str:
    """The dialect's empty item list (the items of an event without any)."""
    return _dialect(dialect).empty


def _products(sql: _Dialect, layout: str, schema: str) -> tuple[str, list[tuple[str, str]], str]:
    """FROM fragment, item fields and index of each event's product entities."""
    entity = settings.ECOMMERCE_PRODUCT
    if layout == "wide":
        if sql.unnest is None:
            raise ValueError(
                "Snowplow's Redshift loader shreds entities: the Redshift view reads the "
                "shredded layout only (drop --layout wide)"
            )
        raw = {name: sql.field.format(name=name) for name in (*_PRODUCT_TEXT, *_NUMBERS)}
        numbers = {name: sql.to_double.format(raw[name]) for name in _NUMBERS}
        source = sql.unnest.format(column=f"contexts_{entity}")
        index = sql.index
    else:
        columns = ", ".join((*_PRODUCT_TEXT, *_NUMBERS))
        # A duplicated event is shredded twice: each entity counts once, as in the tap.
        source = (
            f" JOIN (SELECT DISTINCT root_id, root_tstamp, {columns} FROM {schema}{entity}) p "
            "ON p.root_id = d.event_id AND p.root_tstamp = d.collector_tstamp"
        )
        raw = {name: f"p.{name}" for name in _PRODUCT_TEXT}
        numbers = {name: f"CAST(p.{name} AS {sql.double})" for name in _NUMBERS}
        index = "0"  # shredded tables keep no order: the warehouse's, as the tap reads them
    text = {name: _text(raw[name], sql) for name in _PRODUCT_TEXT}
    fields = [("item_id", text["id"])]
    fields += [(name, text[name]) for name in _PRODUCT_TEXT[1:]]
    fields += [(name, numbers[name]) for name in _PRODUCT_NUMBERS]
    fields.append(("position", f"CAST(TRUNC({numbers['position']}) AS {sql.bigint})"))
    return source, fields, index


def _text(expression: str, sql: _Dialect) -> str:
    """Text with CHAR(n) padding and empty strings gone (as the tap's ``as_str``)."""
    return f"NULLIF(TRIM(CAST({expression} AS {sql.text})), '')"


def _line(alias: str, sql: _Dialect) -> list[tuple[str, str]]:
    """The item fields of a legacy ``transaction_item`` row."""
    fields = [(field, _text(f"{alias}.{column}", sql)) for field, column in _LINE_TEXT]
    fields += [
        (field, f"CAST({alias}.{column} AS {sql.double})") for field, column in _LINE_NUMBERS
    ]
    return fields


def items_relation(dialect: str, layout: str, schema: str, cursor: str) -> str:
    """The subquery of each event's items, over the view's ``deduplicated`` events.

    Args:
        dialect: one of ``duckdb``, ``postgres``, ``snowflake``, ``bigquery``, ``redshift``.
        layout: ``wide`` or ``shredded``.
        schema: the events' schema with its dot (``atomic.``), or ``""``.
        cursor: the load-time column the view orders by (its lines come in load order).

    Raises:
        ValueError: for a dialect without items, or the wide layout on Redshift.
    """
    sql = _dialect(dialect)
    source, product, index = _products(sql, layout, schema)
    sku = _text("l.ti_sku", sql)
    order = "item_ts, item_key, item_index"
    return f"""(
SELECT item_event_id, {sql.agg("item", order)} AS item_list FROM (
    SELECT d.event_id AS item_event_id, {sql.obj(product)} AS item,
        d.{cursor} AS item_ts, d.event_id AS item_key, {index} AS item_index
    FROM deduplicated d{source}
    WHERE d.event NOT IN ('transaction', 'transaction_item') AND {product[0][1]} IS NOT NULL
    UNION ALL
    SELECT d.event_id, {sql.obj(_line("l", sql))}, l.{cursor}, l.event_id, 0
    FROM deduplicated d JOIN deduplicated l ON l.event = 'transaction_item'
        AND {_text("l.ti_orderid", sql)} = {_text("d.tr_orderid", sql)}
    WHERE d.event = 'transaction' AND {sku} IS NOT NULL
    UNION ALL
    SELECT l.event_id, {sql.obj(_line("l", sql))}, l.{cursor}, l.event_id, 0
    FROM deduplicated l WHERE l.event = 'transaction_item' AND {sku} IS NOT NULL
) item_rows GROUP BY item_event_id
)"""
