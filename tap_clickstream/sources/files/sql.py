"""The SQL that converts chunks of event files to canonical events (see :mod:`.columnar`).

Each query returns, per row, the canonical columns (items as a list of STRUCTs; objects as
JSON text), ``_type_source`` (what the event type is derived from, mapped in Python),
``_id_text`` (the text ``stable_event_id`` hashes, for rows without an id) and ``_unsure``:
true when the row must go through :class:`RowMapper` because SQL cannot be sure to give what
Python gives. The functions below write Python's rules (``tap_clickstream.normalize``,
``RowMapper``, ``parse_ts``) as SQL for the value types where the two agree, and mark every
other case unsure.

Two layouts of input: JSON lines (parsed with ``from_json``), and typed columns (CSV text,
Parquet), where a value's Python type is known from its column.
"""

from __future__ import annotations

import json
import typing as t
from dataclasses import dataclass

import pyarrow as pa

from tap_clickstream.events import EVENT_COLUMNS
from tap_clickstream.schema_objects import ITEM_FIELDS

if t.TYPE_CHECKING:
    from collections.abc import Callable

    from tap_clickstream.sources.files.mapping import RowMapper

__all__ = ["Layout", "columns_sql", "json_sql"]

_NUMBER_FIELDS = ("revenue", "engagement_ms", "scroll_depth_pct", "media_progress_pct")
_OBJECT_FIELDS = ("filters", "user_properties")
_OWN_FIELDS = frozenset(
    {"event_ts", "ingested_at", "event_name", "event_type", "source", "items", "properties"}
    | {"event_count", "is_aggregate", *_NUMBER_FIELDS, *_OBJECT_FIELDS}
)
_STRING_FIELDS = tuple(name for name in EVENT_COLUMNS if name not in _OWN_FIELDS)

# Plain numeric text: Python's float() and DuckDB's cast read it the same (correctly rounded).
_NUMBER_RE = r"-?[0-9]{1,30}(\.[0-9]{1,30})?([eE][-+]?[0-9]{1,3})?"
# ISO-8601 forms that datetime.fromisoformat reads as DuckDB's TIMESTAMPTZ cast does (year
# 1001 to 9998 keeps format_ts's four-digit year after the shift to UTC).
_TS_RE = (
    r"[1-9][0-9]{3}-[0-9]{2}-[0-9]{2}[T ](?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
    r"(?:\.[0-9]{1,6})?(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])?(?: UTC)?"
)
# JSON DuckDB reads but msgspec (so RECORD mode) refuses. Trailing commas, anywhere in a line;
# in an object's or a list's (minified) JSON text: NaN, infinities, numbers beyond a double.
# A match inside a string only costs a Python row.
TRAILING_COMMA_RE = r",\s*[\]}]"
_NESTED_RE = r"[:,\[]-?(?i:nan|inf)|[eE][-+]?[0-9]{3}|[0-9]{309}"
# In an items list's minified JSON: a value from_json would convert unlike Python (see
# _json_items). Keys of objects nested in an item can match too: that only costs a Python row.
_ODD_ITEM_RE = (
    r'"(?:item_id|name|category|brand|variant)":(?:true|false|[{\[]|-?[0-9]+[.eE])'
    r'|"(?:price|quantity)":(?:true|false|[{\["])'
    r'|"position":(?:true|false|[{\["]|-?[0-9]+[.eE]|-?[0-9]{19})'
)
_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
_ITEM_STRUCT = (
    "STRUCT(item_id VARCHAR, name VARCHAR, category VARCHAR, brand VARCHAR, variant VARCHAR, "
    "price DOUBLE, quantity DOUBLE, position BIGINT)"
)
_EMPTY_ITEMS = f"CAST([] AS {_ITEM_STRUCT}[])"
_TYPED_ITEMS = json.dumps(
    [
        {
            name: {"string": "VARCHAR", "number": "DOUBLE", "integer": "BIGINT"}[kind]
            for name, kind in ITEM_FIELDS.items()
        }
    ]
)
# The text stable_event_id hashes, from the converted columns (hashed in Python).
_IDENTITY = (
    "(CASE WHEN event_id IS NULL THEN array_to_string(list_concat([source, event_name, "
    "event_ts, coalesce(user_id, ''), coalesce(anonymous_id, ''), coalesce(session_id, '')], "
    "list_transform(items, lambda i: i.item_id), list_sort(_pairs)), chr(31)) END)"
)


def quote(text: str) -> str:
    """An SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _any(*conditions: str) -> str:
    """SQL true when any condition is (NULL counts as false)."""
    parts = [c for c in conditions if c != "false"]
    if not parts:
        return "false"
    return "(" + " OR ".join(f"coalesce({c}, false)" for c in parts) + ")"


def _finite(expression: str) -> str:
    # NaN and infinities travel as null in RECORD messages (msgspec), so here too.
    return f"(CASE WHEN isfinite({expression}) THEN {expression} END)"


def _whole(number: str) -> tuple[str, str]:
    """int(number) for a finite number in BIGINT range; unsure otherwise (Python raises)."""
    value = f"TRY_CAST(trunc({number}) AS BIGINT)"
    unsure = f"(NOT isfinite({number}) OR abs({number}) >= 9.2e18)"
    return value, unsure


def _pointer(key: str) -> str:
    """The JSON pointer of a top-level key."""
    return "/" + key.replace("~", "~0").replace("/", "~1")


class Layout:
    """What a :class:`RowMapper` reads: its columns, and the fields each one feeds."""

    def __init__(self, mapper: RowMapper) -> None:
        self.mapper = mapper
        self.mapped = bool(mapper.fields or mapper.item_fields)

    @property
    def columns(self) -> list[str]:
        """The columns (JSON keys) a row of the layout may hold without extras."""
        if self.mapped:
            return sorted(self.mapper.used_columns)
        return list(EVENT_COLUMNS)

    def column_of(self, field_name: str) -> str | None:
        """The column a canonical field (``items.<field>`` for item fields) comes from."""
        if not self.mapped:
            return field_name
        if field_name.startswith("items."):
            return self.mapper.item_fields.get(field_name[6:])
        return self.mapper.fields.get(field_name)

    def fields_of(self, column: str) -> list[str]:
        """The canonical fields (``items.<field>`` for item fields) a column feeds."""
        if not self.mapped:
            return [column]
        mapper = self.mapper
        return [f for f, c in mapper.fields.items() if c == column] + [
            f"items.{f}" for f, c in mapper.item_fields.items() if c == column
        ]


# Typed columns (CSV text, Parquet).


@dataclass(frozen=True)
class _Value:
    """A source value in SQL, split by the Python type it has in RECORD mode.

    ``kind`` is NULL (None, or absent), ``'VARCHAR'``, ``'BIGINT'`` (an int in the int64
    range), ``'DOUBLE'``, ``'BOOLEAN'``, ``'TIMESTAMP'`` (a datetime) or ``'OTHER'`` (anything
    else: always an unsure row when used). ``text`` is the string of VARCHAR, the digits of
    BIGINT, ``true``/``false`` for BOOLEAN; ``number`` the value of BIGINT and DOUBLE;
    ``integer`` of BIGINT; ``moment`` the UTC TIMESTAMP of TIMESTAMP.
    """

    kind: str = "NULL"
    text: str = "NULL"
    number: str = "NULL"
    integer: str = "NULL"
    moment: str = "NULL"

    @property
    def absent(self) -> bool:
        return self.kind == "NULL"

    def kind_in(self, *kinds: str) -> str:
        if self.absent:
            return "false"
        return f"({self.kind} IN ({', '.join(quote(k) for k in kinds)}))"


def _arrow_value(column: str, kind: pa.DataType) -> _Value:
    """The parts of a typed (Parquet) or text (CSV) column, as Python sees its values."""
    present = f"(CASE WHEN {column} IS NULL THEN NULL ELSE '{{}}' END)"
    if pa.types.is_null(kind):
        return _Value()
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return _Value(kind=present.format("VARCHAR"), text=column)
    if pa.types.is_boolean(kind):
        return _Value(
            kind=present.format("BOOLEAN"),
            text=f"(CASE WHEN {column} THEN 'true' ELSE 'false' END)",
        )
    if pa.types.is_integer(kind) and kind != pa.uint64():
        return _Value(
            kind=present.format("BIGINT"),
            text=f"CAST({column} AS VARCHAR)",
            number=f"CAST({column} AS DOUBLE)",
            integer=f"CAST({column} AS BIGINT)",
        )
    if pa.types.is_floating(kind) and kind != pa.float16():
        return _Value(kind=present.format("DOUBLE"), number=f"CAST({column} AS DOUBLE)")
    if pa.types.is_timestamp(kind) and kind.unit in {"s", "ms", "us"}:
        moment = f"({column} AT TIME ZONE 'UTC')" if kind.tz else f"CAST({column} AS TIMESTAMP)"
        return _Value(kind=present.format("TIMESTAMP"), moment=moment)
    return _Value(kind=present.format("OTHER"))


def _as_str(v: _Value) -> tuple[str, str]:
    """as_str: (value, unsure)."""
    if v.absent:
        return "NULL", "false"
    value = (
        f"(CASE {v.kind} WHEN 'VARCHAR' THEN nullif({v.text}, '') WHEN 'BIGINT' THEN "
        f"{v.text} WHEN 'BOOLEAN' THEN (CASE {v.text} WHEN 'true' "
        "THEN 'True' ELSE 'False' END) END)"
    )
    return value, v.kind_in("DOUBLE", "TIMESTAMP", "OTHER")


def _as_float(v: _Value) -> tuple[str, str]:
    """as_float (infinities and NaN included): (value, unsure)."""
    if v.absent:
        return "NULL", "false"
    plain = f"regexp_full_match({v.text}, '{_NUMBER_RE}')"
    value = (
        f"(CASE {v.kind} WHEN 'VARCHAR' THEN (CASE WHEN {plain} THEN TRY_CAST({v.text} AS "
        f"DOUBLE) END) WHEN 'BIGINT' THEN {v.number} WHEN 'DOUBLE' THEN {v.number} END)"
    )
    unsure = _any(
        f"({v.kind} = 'VARCHAR' AND {v.text} <> '' AND NOT {plain})",
        v.kind_in("TIMESTAMP", "OTHER"),
    )
    return value, unsure


def _time(text: str, integer: str) -> tuple[str, str]:
    """parse_ts of ISO-8601 text and of epoch integers, as a UTC TIMESTAMP (NULL: not plain).

    Validated by the pattern, text reads the same in DuckDB as in fromisoformat (naive times
    are UTC: the connection's time zone). An epoch is seconds, milliseconds or microseconds
    by magnitude, as in parse_ts, in the ranges where its float division is exact.
    """
    bare = (
        f"(CASE WHEN ends_with({text}, ' UTC') THEN substr({text}, 1, length({text}) - 4) "
        f"ELSE {text} END)"
    )
    iso = (
        f"(CASE WHEN regexp_full_match({text}, '{_TS_RE}') "
        f"THEN TRY_CAST({bare} AS TIMESTAMPTZ) AT TIME ZONE 'UTC' END)"
    )
    epoch = (
        f"(CASE WHEN {integer} BETWEEN 0 AND 100000000000 "
        f"THEN make_timestamp({integer} * 1000000) "
        f"WHEN {integer} > 100000000000 AND {integer} < 4000000000000 "
        f"THEN make_timestamp({integer} * 1000) "
        f"WHEN {integer} > 100000000000000 AND {integer} < 4000000000000000 "
        f"THEN make_timestamp({integer}) END)"
    )
    return iso, epoch


def _in_range(moment: str) -> str:
    return f"(CASE WHEN year({moment}) BETWEEN 1001 AND 9998 THEN {moment} END)"


def _moment(v: _Value) -> tuple[str, str]:
    """parse_ts as a UTC TIMESTAMP: (value, unsure)."""
    if v.absent:
        return "NULL", "true"
    iso, epoch = _time(v.text, v.integer)
    moment = _in_range(
        f"(CASE {v.kind} WHEN 'VARCHAR' THEN {iso} WHEN 'BIGINT' THEN {epoch} "
        f"WHEN 'TIMESTAMP' THEN {v.moment} END)"
    )
    return moment, f"({moment} IS NULL)"


def _falsy(v: _Value) -> str:
    """SQL true when the value is falsy in Python (None, "", 0, False)."""
    if v.absent:
        return "true"
    return _any(
        f"{v.kind} IS NULL",
        f"({v.kind} = 'VARCHAR' AND {v.text} = '')",
        f"({v.kind} IN ('BIGINT', 'DOUBLE') AND {v.number} = 0)",
        f"({v.kind} = 'BOOLEAN' AND {v.text} = 'false')",
    )


def _item_struct(values: dict[str, _Value]) -> tuple[str, str]:
    """RowMapper's _item for one item's field values: (STRUCT or NULL, unsure)."""
    item_id, item_id_unsure = _as_str(values.get("item_id", _Value()))
    fields = [f"item_id := {item_id}"]
    unsure = [item_id_unsure]
    for name, kind in ITEM_FIELDS.items():
        if name == "item_id":
            continue
        v = values.get(name, _Value())
        if v.absent:
            fields.append(f"{name} := NULL")
            continue
        if kind == "string":
            value, doubt = _as_str(v)
        else:
            number, doubt = _as_float(v)
            if kind == "number":
                value = _finite(number)
            else:
                value, not_whole = _whole(number)
                doubt = _any(doubt, f"({number} IS NOT NULL AND {not_whole})")
        fields.append(f"{name} := {value}")
        unsure.append(doubt)
    struct = f"CAST(struct_pack({', '.join(fields)}) AS {_ITEM_STRUCT})"
    return f"(CASE WHEN {item_id} IS NOT NULL THEN {struct} END)", _any(*unsure)


def columns_sql(
    layout: Layout,
    names: list[str],
    schema: pa.Schema,
    ingested_at: str,
) -> str:
    """The SELECT converting a chunk of typed columns (``c0``, ``c1``... named ``names``).

    Reads the registered table ``chunk`` (also ``_row``, and ``_bad`` for rows known bad).
    """
    mapper = layout.mapper
    checks = ["_bad"] if "_bad" in schema.names else []
    raw = {name: _arrow_value(f"c{i}", schema.field(f"c{i}").type) for i, name in enumerate(names)}
    known = mapper.used_columns if layout.mapped else frozenset(EVENT_COLUMNS)
    # Materialise each value's parts once; the conversions below read them many times.
    parts = ["_row", *checks]
    values: dict[str, _Value] = {}
    for at, (column_name, raw_value) in enumerate(raw.items()):
        aliases: dict[str, str] = {}
        for attribute in ("kind", "text", "number", "integer", "moment"):
            expression = getattr(raw_value, attribute)
            if expression != "NULL":
                alias = f"{attribute[0]}{at}"
                parts.append(f"{expression} AS {alias}")
                aliases[attribute] = alias
        values[column_name] = _Value(**aliases)

    def source(field_name: str) -> _Value:
        column = layout.column_of(field_name)
        return values.get(column, _Value()) if column is not None else _Value()

    out: dict[str, str] = {}
    unsure = list(checks)

    moment, doubt = _moment(source("event_ts"))
    out["event_ts"] = f"strftime({moment}, '{_FORMAT}')"
    unsure.append(doubt)

    raw_name, name_doubt = _as_str(source("event_name"))
    given_type, type_doubt = _as_str(source("event_type"))
    name = f"coalesce({raw_name}, {given_type})"
    out["event_name"] = name
    unsure += [name_doubt, type_doubt, f"({name} IS NULL)"]
    # A row with both a raw name and a type brings its own type (snake_cased); otherwise the
    # name goes through the crosswalk. Python maps the distinct values afterwards.
    out["_type_source"] = (
        f"(CASE WHEN {given_type} IS NOT NULL AND {raw_name} IS NOT NULL THEN 'S' || {given_type} "
        f"ELSE 'M' || {name} END)"
    )

    for field_name in ("source", "event_id", *_STRING_FIELDS):
        value, doubt = _as_str(source(field_name))
        out[field_name] = value
        unsure.append(doubt)
    out["source"] = f"coalesce({out['source']}, {quote(mapper.source)})"

    for field_name in _NUMBER_FIELDS:
        number, doubt = _as_float(source(field_name))
        out[field_name] = _finite(number)
        unsure.append(doubt)

    # Text is not an object: None (and the user properties {}); other types: Python decides.
    for field_name in _OBJECT_FIELDS:
        out[field_name] = "CAST(NULL AS VARCHAR)"
        unsure.append(source(field_name).kind_in("OTHER"))
    out["user_properties"] = "'{}'"

    v = source("ingested_at")
    falsy = _falsy(v)
    moment, doubt = _moment(v)
    out["ingested_at"] = (
        f"(CASE WHEN {falsy} THEN {quote(ingested_at)} ELSE strftime({moment}, '{_FORMAT}') END)"
    )
    unsure.append(f"(NOT {falsy} AND {doubt})")

    v = source("event_count")
    if v.absent:
        out["event_count"] = "CAST(1 AS BIGINT)"
    else:
        number, doubt = _as_float(v)
        whole, not_whole = _whole(number)
        out["event_count"] = f"(CASE WHEN coalesce({number} = 0, true) THEN 1 ELSE {whole} END)"
        unsure += [doubt, f"({number} <> 0 AND {not_whole})"]

    v = source("is_aggregate")
    out["is_aggregate"] = (
        "false"
        if v.absent
        else (
            f"coalesce(CASE {v.kind} WHEN 'VARCHAR' THEN lower({v.text}) IN ('true', '1') "
            f"WHEN 'BOOLEAN' THEN {v.text} = 'true' WHEN 'BIGINT' THEN {v.integer} = 1 END, false)"
        )
    )
    unsure.append(v.kind_in("OTHER"))

    if layout.mapped:
        item = {
            name: values.get(column, _Value())
            for name, column in mapper.item_fields.items()
            if name in ITEM_FIELDS
        }
        item_id = item.get("item_id", _Value())
        if item_id.absent:
            out["items"] = _EMPTY_ITEMS
        else:
            has_item = (
                f"NOT ({item_id.kind} IS NULL OR ({item_id.kind} = 'VARCHAR' AND "
                f"{item_id.text} = ''))"
            )
            struct, doubt = _item_struct(item)
            out["items"] = (
                f"(CASE WHEN {has_item} AND {struct} IS NOT NULL THEN [{struct}] "
                f"ELSE {_EMPTY_ITEMS} END)"
            )
            unsure.append(f"({has_item} AND {doubt})")
    else:
        # An ``items`` column: text is iterated and holds no objects (no items); a number,
        # true or anything else makes Python raise or decide.
        v = source("items")
        out["items"] = _EMPTY_ITEMS
        unsure.append(
            f"({v.kind_in('BIGINT', 'DOUBLE', 'BOOLEAN', 'TIMESTAMP', 'OTHER')} AND NOT {_falsy(v)})"
        )
        # A ``properties`` column (canonical layout) that is not empty: Python decides.
        given_properties = source("properties")
        if not given_properties.absent:
            unsure.append(f"NOT {_falsy(given_properties)}")

    # The columns the mapping does not name go to properties, in column order.
    members: list[str] = []
    pairs: list[str] = []
    plain: list[str] = []
    for column, v in values.items():
        if column in known:
            continue
        key = quote(json.dumps(column, ensure_ascii=False) + ":")
        member = (
            f"(CASE {v.kind} WHEN 'VARCHAR' THEN to_json({v.text}) WHEN 'BIGINT' THEN "
            f"CAST({v.integer} AS VARCHAR) WHEN 'BOOLEAN' THEN {v.text} WHEN 'DOUBLE' THEN "
            f"(CASE WHEN isfinite({v.number}) THEN CAST(to_json({v.number}) AS VARCHAR) "
            "ELSE 'null' END) END)"
        )
        members.append(f"{key} || {member}")
        text, _ = _as_str(v)
        # The "k=v" strings stable_event_id sorts: str(v) (a float's repr is Python's).
        pairs.append(
            f"{quote(column + '=')} || (CASE {v.kind} WHEN 'VARCHAR' THEN {v.text} ELSE {text} END)"
        )
        unsure.append(v.kind_in("TIMESTAMP", "OTHER"))
        plain.append(f"coalesce({v.kind} <> 'DOUBLE', true)")
    listed = f"list_filter([{', '.join(members)}], lambda m: m IS NOT NULL)"
    out["properties"] = f"('{{' || array_to_string({listed}, ',') || '}}')" if members else "'{}'"
    out["_pairs"] = (
        f"list_filter([{', '.join(pairs)}], lambda p: p IS NOT NULL)"
        if pairs
        else "CAST([] AS VARCHAR[])"
    )
    if plain:
        unsure.append(f"({out['event_id']} IS NULL AND NOT ({' AND '.join(plain)}))")

    listed_columns = ", ".join(f"{expression} AS {_ident(key)}" for key, expression in out.items())
    stage = f"SELECT {', '.join(parts)} FROM chunk"
    events = f"SELECT _row, {_any(*unsure)} AS _unsure, {listed_columns} FROM ({stage})"
    return f"SELECT *, {_IDENTITY} AS _id_text FROM ({events})"


# JSON lines. SQL converts only the lines whose values have types that from_json converts as
# Python does: per field, the JSON types below (None: any type). Text fields take strings and
# integers (whose digits are str(int)); number fields take numbers; a time takes text or an
# integer (epoch); ``filters`` and ``user_properties`` keep an object and drop anything else.

_TEXT = frozenset({"VARCHAR", "BIGINT", "UBIGINT", "NULL"})
_NUMBER = frozenset({"BIGINT", "UBIGINT", "DOUBLE", "NULL"})
_WHOLE = frozenset({"BIGINT", "UBIGINT", "NULL"})
_JSON_KINDS: dict[str, frozenset[str] | None] = {
    **dict.fromkeys(("source", "event_id", "event_name", "event_type", *_STRING_FIELDS), _TEXT),
    **dict.fromkeys(_NUMBER_FIELDS, _NUMBER),
    "event_ts": frozenset({"VARCHAR", "BIGINT", "UBIGINT"}),
    "ingested_at": frozenset({"VARCHAR", "BIGINT", "UBIGINT", "NULL"}),
    "event_count": _WHOLE,
    "is_aggregate": frozenset({"BOOLEAN", "NULL"}),
    "filters": None,
    "user_properties": None,
    "properties": frozenset({"OBJECT", "NULL"}),
    "items": frozenset({"ARRAY", "NULL"}),
    **{f"items.{name}": _TEXT for name, kind in ITEM_FIELDS.items() if kind == "string"},
    "items.price": _NUMBER,
    "items.quantity": _NUMBER,
    "items.position": _WHOLE,
}
#: Fields read as JSON text (objects and lists), the others typed by from_json.
_RAW_FIELDS = frozenset({"filters", "user_properties", "properties", "items"})
#: How from_json types a canonical field (text by default).
_TYPED_AS = {**dict.fromkeys((*_NUMBER_FIELDS, "event_count"), "DOUBLE"), "is_aggregate": "BOOLEAN"}


def _fitting_kinds(layout: Layout, column: str) -> frozenset[str] | None:
    """The JSON types (``-`` absent) a key may have in a line SQL converts; None: any."""
    allowed: frozenset[str] | None = None
    for name in layout.fields_of(column):
        kinds = _JSON_KINDS.get(name, frozenset())
        if kinds is None:
            continue
        # Absent is as null, except for the time (missing: Python words the reason).
        kinds = kinds if name == "event_ts" else kinds | {"-"}
        allowed = kinds if allowed is None else allowed & kinds
    return allowed


def _unquoted(raw: str) -> str:
    """The text of a JSON value: a string's content, else its JSON text."""
    return (
        f"(CASE WHEN left({raw}, 1) = '\"' THEN (CASE WHEN contains({raw}, '\\') "
        f"THEN {raw} ->> '$' ELSE substr({raw}, 2, length({raw}) - 2) END) "
        f"ELSE CAST({raw} AS VARCHAR) END)"
    )


def _nested_doubt(text: str) -> str:
    """SQL true when an object's or a list's JSON text holds what msgspec refuses."""
    return f"regexp_matches({text}, {quote(_NESTED_RE)})"


def _json_time(text: str, kind: str) -> str:
    """format_ts(parse_ts(value)) of a JSON string or integer (NULL: Python decides).

    Text in the canonical form already (``format_ts`` output) is kept as it is, as RowMapper
    does, once DuckDB confirms it is a real date and time (a naive cast ignores offsets, but
    only text it gives back unchanged is kept).
    """
    canonical = (
        f"({kind} = 'VARCHAR' AND strftime(TRY_CAST({text} AS TIMESTAMP), '{_FORMAT}') = {text} "
        f"AND left({text}, 1) <> '0')"
    )
    iso, epoch = _time(text, f"TRY_CAST({text} AS BIGINT)")
    moment = _in_range(f"(CASE WHEN {kind} = 'VARCHAR' THEN {iso} ELSE {epoch} END)")
    return f"(CASE WHEN {canonical} THEN {text} ELSE strftime({moment}, '{_FORMAT}') END)"


def json_sql(layout: Layout, present: frozenset[str], ingested_at: str) -> str:
    """The SELECT converting a chunk of JSON lines (the registered table ``chunk``).

    ``present``: the keys (of the layout) the chunk's lines hold; a line with others is
    unsure. A line converts in SQL when it is a JSON object without the trailing commas
    DuckDB allows (msgspec refuses them), whose keys are the layout's, each once (json_keys
    counts a repeated key twice, json_type once; an unmapped key goes to properties in
    Python), and whose values have types from_json converts as Python does (_JSON_KINDS).
    """
    mapper = layout.mapper
    columns = sorted(present)
    raw_columns = {c for c in columns if any(f in _RAW_FIELDS for f in layout.fields_of(c))}
    typed = {
        c: "JSON"
        if c in raw_columns
        else "VARCHAR"
        if layout.mapped
        else _TYPED_AS.get(c, "VARCHAR")
        for c in columns
    }
    pointers = "[" + ", ".join(quote(_pointer(c)) for c in columns) + "]"
    at = {c: i for i, c in enumerate(columns, start=1)}
    fits = [
        f"coalesce(_k[{i}], '-') IN {tuple(sorted(kinds))}"
        for c, i in at.items()
        if (kinds := _fitting_kinds(layout, c)) is not None
    ]
    found = " + ".join(f"CAST(_k[{i}] IS NOT NULL AS INTEGER)" for i in at.values()) or "0"
    valid = f"json_valid(line) AND NOT regexp_matches(line, {quote(TRAILING_COMMA_RE)})"
    parse = (
        f"SELECT _row, coalesce(_ok AND len(_keys) = {found} AND {' AND '.join(fits) or 'true'}, "
        "false) AS _good, _k, j FROM ("
        "SELECT _row, _ok, CASE WHEN _ok THEN json_keys(line) END AS _keys, "
        f"CASE WHEN _ok THEN json_type(line, {pointers}) END AS _k, "
        f"CASE WHEN _ok THEN from_json(line, {quote(json.dumps(typed))}) END AS j "
        f"FROM (SELECT _row, line, {valid} AS _ok FROM chunk))"
    )

    def column(field_name: str) -> str | None:
        name = layout.column_of(field_name)
        return f"j.{_ident(name)}" if name in present else None

    def kind(field_name: str) -> str:
        name = layout.column_of(field_name)
        return f"_k[{at[name]}]" if name in at else "NULL"

    def text(field_name: str) -> str:
        col = column(field_name)
        if col is None:
            return "CAST(NULL AS VARCHAR)"
        name = str(layout.column_of(field_name))
        if name in raw_columns:
            return _unquoted(col)
        return col if typed[name] == "VARCHAR" else f"CAST({col} AS VARCHAR)"

    # Three levels: parse, work (each costly value once), events (the columns, _unsure).
    work: dict[str, str] = {}
    out: dict[str, str] = {}
    unsure = ["NOT _good"]

    def number(field_name: str) -> str:
        alias = f"_n_{field_name.replace('.', '_')}"
        col = column(field_name)
        if col is not None and typed[str(layout.column_of(field_name))] == "DOUBLE":
            work[alias] = col
        else:
            work[alias] = f"TRY_CAST({text(field_name)} AS DOUBLE)"
        work[f"{alias}_given"] = "false" if col is None else f"({col} IS NOT NULL)"
        # Not finite (NaN, an infinity, 1e400, which msgspec refuses): Python decides.
        unsure.append(f"({alias}_given AND NOT isfinite(coalesce({alias}, 'inf'::DOUBLE)))")
        return alias

    if column("event_ts") is None:
        work["_ts"] = "CAST(NULL AS VARCHAR)"
    else:
        work["_ts"] = _json_time(text("event_ts"), kind("event_ts"))
    out["event_ts"] = "_ts"
    unsure.append("_ts IS NULL")

    work["_raw_name"] = f"nullif({text('event_name')}, '')"
    work["_given_type"] = f"nullif({text('event_type')}, '')"
    out["event_name"] = "coalesce(_raw_name, _given_type)"
    unsure.append("(_raw_name IS NULL AND _given_type IS NULL)")
    out["_type_source"] = (
        "(CASE WHEN _given_type IS NOT NULL AND _raw_name IS NOT NULL THEN 'S' || _given_type "
        "ELSE 'M' || coalesce(_raw_name, _given_type) END)"
    )
    for field_name in ("source", "event_id", *_STRING_FIELDS):
        work[field_name] = f"nullif({text(field_name)}, '')"
        out[field_name] = _ident(field_name)
    out["source"] = f"coalesce(source, {quote(mapper.source)})"

    for field_name in _NUMBER_FIELDS:
        out[field_name] = number(field_name)

    for field_name in _OBJECT_FIELDS:
        raw = column(field_name)
        work[field_name] = (
            "CAST(NULL AS VARCHAR)"
            if raw is None
            else f"(CASE WHEN left({raw}, 1) = '{{' THEN CAST({raw} AS VARCHAR) END)"
        )
        out[field_name] = _ident(field_name)
    out["user_properties"] = "coalesce(user_properties, '{}')"

    if column("ingested_at") is None:
        out["ingested_at"] = quote(ingested_at)
    else:
        # None, "" and 0 are falsy: the file's time.
        value = text("ingested_at")
        work["_in_falsy"] = f"({value} IS NULL OR {value} IN ('', '0'))"
        work["_in"] = _json_time(value, kind("ingested_at"))
        out["ingested_at"] = f"(CASE WHEN _in_falsy THEN {quote(ingested_at)} ELSE _in END)"
        unsure.append("(NOT _in_falsy AND _in IS NULL)")

    count = number("event_count")
    whole, not_whole = _whole(count)
    out["event_count"] = f"(CASE WHEN coalesce({count} = 0, true) THEN 1 ELSE {whole} END)"
    unsure.append(f"({count} <> 0 AND {not_whole})")
    flag = column("is_aggregate")
    if flag is None:
        work["is_aggregate"] = "false"
    elif typed[str(layout.column_of("is_aggregate"))] == "BOOLEAN":
        work["is_aggregate"] = f"coalesce({flag}, false)"
    else:
        work["is_aggregate"] = f"coalesce({text('is_aggregate')} = 'true', false)"
    out["is_aggregate"] = "is_aggregate"

    if layout.mapped:
        out["items"], doubt = _json_mapped_item(text, number, work)
    else:
        out["items"], doubt = _json_items(column("items"), work)
    unsure.append(doubt)

    properties = None if layout.mapped else column("properties")
    work["properties"] = (
        "'{}'" if properties is None else f"coalesce(CAST({properties} AS VARCHAR), '{{}}')"
    )
    out["properties"] = "properties"
    for field_name in ("filters", "user_properties", "properties", "items"):
        raw = None if layout.mapped and field_name == "items" else column(field_name)
        if raw is not None:
            # DuckDB reads NaN and 1e400 inside objects and lists, msgspec refuses them.
            alias = f"_nested_{field_name}"
            work[alias] = (
                f"(left({raw}, 1) IN ('{{', '[') AND {_nested_doubt(f'CAST({raw} AS VARCHAR)')})"
            )
            unsure.append(alias)
    # No event_id: the id hashes the properties' str() values (only an empty object here).
    unsure.append("(event_id IS NULL AND properties <> '{}')")
    out["_pairs"] = "CAST([] AS VARCHAR[])"

    middle = ", ".join(f"{expression} AS {_ident(key)}" for key, expression in work.items())
    listed = ", ".join(f"{expression} AS {_ident(key)}" for key, expression in out.items())
    return (
        f"WITH work AS (SELECT _row, _good, {middle} FROM ({parse})), "
        f"events AS (SELECT _row, {_any(*unsure)} AS _unsure, {listed} FROM work) "
        f"SELECT *, {_IDENTITY} AS _id_text FROM events"
    )


def _json_items(raw: str | None, work: dict[str, str]) -> tuple[str, str]:
    """The items of a canonical JSON line (a list, or none), and when Python must decide.

    from_json types each item's fields; a value it would convert unlike Python (a boolean,
    a float, an object or a list where text is wanted; anything but a number where a number
    is; a fraction as position) is spotted in the list's minified JSON text, as are numbers
    that are not finite (NaN, 1e400) in the typed values. Items that are not objects, or have
    no item_id, are skipped, as in Python.
    """
    if raw is None:
        return _EMPTY_ITEMS, "false"
    text = f"CAST({raw} AS VARCHAR)"
    is_list = f"left({raw}, 1) = '['"
    work["_items_typed"] = (
        f"(CASE WHEN {is_list} THEN from_json({text}, {quote(_TYPED_ITEMS)}) END)"
    )
    work["_items_odd"] = (
        f"(CASE WHEN {is_list} THEN regexp_matches({text}, {quote(_ODD_ITEM_RE)}) END)"
    )
    struct = (
        "struct_pack(item_id := i.item_id, name := nullif(i.name, ''), "
        "category := nullif(i.category, ''), brand := nullif(i.brand, ''), "
        "variant := nullif(i.variant, ''), price := i.price, quantity := i.quantity, "
        "position := i.position)"
    )
    items = (
        f"coalesce(list_transform(list_filter(_items_typed, lambda i: nullif(i.item_id, '') "
        f"IS NOT NULL), lambda i: CAST({struct} AS {_ITEM_STRUCT})), {_EMPTY_ITEMS})"
    )
    finite = (
        "list_bool_or(list_transform(_items_typed, lambda i: NOT isfinite(coalesce(i.price, 0)) "
        "OR NOT isfinite(coalesce(i.quantity, 0))))"
    )
    return items, f"(coalesce(_items_odd, false) OR coalesce({finite}, false))"


def _json_mapped_item(
    text: Callable[[str], str], number: Callable[[str], str], work: dict[str, str]
) -> tuple[str, str]:
    """The single item of a mapped JSON line (from ``items.<field>`` columns)."""
    work["_item_id"] = f"nullif({text('items.item_id')}, '')"
    fields = ["item_id := _item_id"]
    doubts: list[str] = []
    for name, kind in ITEM_FIELDS.items():
        if name == "item_id":
            continue
        if kind == "string":
            fields.append(f"{name} := nullif({text(f'items.{name}')}, '')")
            continue
        value = number(f"items.{name}")
        if kind == "integer":
            whole, not_whole = _whole(value)
            fields.append(f"{name} := {whole}")
            doubts.append(f"({value} IS NOT NULL AND {not_whole})")
        else:
            fields.append(f"{name} := {value}")
    work["_item"] = f"CAST(struct_pack({', '.join(fields)}) AS {_ITEM_STRUCT})"
    items = f"(CASE WHEN _item_id IS NOT NULL THEN [_item] ELSE {_EMPTY_ITEMS} END)"
    return items, f"(_item_id IS NOT NULL AND {_any(*doubts)})"
