"""The warehouse side of the Snowplow source: layout, cursor, and one window's rows.

Rows come back as plain dicts (lower-case column names) with two extra keys the normaliser
reads: ``_contexts`` (entity name -> list of objects) and ``_sdes`` (self-describing event name
-> object), the same for both layouts. Entity names are the shredded table names, which are
also the wide columns' names without their ``contexts_`` / ``unstruct_event_`` prefix, e.g.
``com_snowplowanalytics_snowplow_ecommerce_product_1``.
"""

from __future__ import annotations

import json
import re
import typing as t
from collections import defaultdict
from datetime import UTC, datetime

import sqlalchemy as sa

from tap_clickstream.sources.snowplow import settings

if t.TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["SnowplowWarehouse", "entity_query", "events_query", "resolve_layout"]

_CONTEXTS = "contexts_"
_UNSTRUCT = "unstruct_event_"
#: Shredded tables: ``<vendor>_<name>_<major>``, snake case (Postgres cuts names at 63
#: characters, so the major version may be gone); told apart by their root_id column.
_SHRED_TABLE = re.compile(r"^[a-z][a-z0-9_]*_[a-z0-9]+$")
_NOT_SHREDDED = frozenset({"events", "manifest"})
#: BigQuery Loader < 2 named columns with the full version (``..._product_1_0_0``).
_FULL_VERSION = re.compile(r"_([0-9]+)_[0-9]+_[0-9]+$")
#: Dialects whose timestamp columns compare only with zone-aware parameters.
_AWARE_DIALECTS = frozenset({"bigquery"})


def resolve_layout(layout: str, dialect: str) -> str:
    """The layout to read: the one given, or the one the dialect's loader writes.

    Raises:
        ValueError: for ``auto`` with a dialect whose loader is unknown.
    """
    if layout != "auto":
        return layout
    try:
        return settings.DIALECT_LAYOUTS[dialect]
    except KeyError:
        raise ValueError(
            f"snowplow.layout auto cannot tell the layout of a {dialect} warehouse: "
            "set it to wide or shredded"
        ) from None


def _table(name: str, schema: str | None, columns: t.Iterable[str]) -> sa.TableClause:
    return sa.table(name, *(sa.column(c) for c in columns), schema=schema)


def events_query(schema: str | None, columns: t.Sequence[str], cursor: str) -> sa.Select[t.Any]:
    """One window of ``events`` on ``cursor`` (bound ``lo`` <= cursor < ``hi``), oldest first."""
    events = _table("events", schema, columns)
    where = events.c[cursor]
    return (
        sa.select(*events.c)
        .where(where >= sa.bindparam("lo"), where < sa.bindparam("hi"))
        .order_by(where, events.c.event_id, events.c.collector_tstamp)
    )


def first_cursor_query(schema: str | None, cursor: str) -> sa.Select[t.Any]:
    """The earliest ``cursor`` value in ``lo`` <= cursor < ``hi`` (to skip empty windows)."""
    events = _table("events", schema, [cursor])
    where = events.c[cursor]
    return sa.select(sa.func.min(where)).where(
        where >= sa.bindparam("lo"), where < sa.bindparam("hi")
    )


def entity_query(
    schema: str | None, table: str, columns: t.Sequence[str], cursor: str
) -> sa.Select[t.Any]:
    """The rows of a shredded table whose event is in the window (joined as the loader keys it)."""
    entity = _table(table, schema, columns)
    events = _table("events", schema, ["event_id", "collector_tstamp", cursor]).alias("e")
    in_window = (
        sa.select(sa.literal(1))
        .select_from(events)
        .where(
            events.c.event_id == entity.c.root_id,
            events.c.collector_tstamp == entity.c.root_tstamp,
            events.c[cursor] >= sa.bindparam("lo"),
            events.c[cursor] < sa.bindparam("hi"),
        )
    )
    return sa.select(*entity.c).where(sa.exists(in_window))


def parse_json(value: object, column: str) -> t.Any:
    """A VARIANT / JSON value as Python objects (Snowflake and DuckDB hand JSON as text).

    Raises:
        ValueError: when the text is not JSON.
    """
    if isinstance(value, str | bytes):
        try:
            return json.loads(value)
        except ValueError:
            raise ValueError(f"{column} is not valid JSON") from None
    return value


class SnowplowWarehouse:
    """A Snowplow ``events`` table (and its shredded tables) behind a SQLAlchemy URL."""

    def __init__(self, url: str, schema: str | None, layout: str) -> None:
        self.engine = sa.create_engine(url)
        self.schema = schema or None
        self.layout = resolve_layout(layout, self.engine.dialect.name)
        self.columns = self._columns("events")
        missing = {"event_id", "collector_tstamp", "event"} - set(self.columns)
        if missing:
            raise ValueError(
                f"{self.schema}.events has no column {', '.join(sorted(missing))}: "
                "check snowplow.schema"
            )
        self.cursor = next(c for c in settings.CURSOR_COLUMNS if c in self.columns)
        self.entities: dict[str, list[str]] = {}
        if self.layout == "shredded":
            names = sa.inspect(self.engine).get_table_names(schema=self.schema)
            for name in sorted(names):
                if name not in _NOT_SHREDDED and _SHRED_TABLE.match(name):
                    columns = self._columns(name)
                    if {"root_id", "root_tstamp"} <= set(columns):
                        self.entities[name] = columns

    def _columns(self, table: str) -> list[str]:
        # A query for no rows names the columns without reflecting their (vendor) types.
        query = sa.select(sa.text("*")).select_from(sa.table(table, schema=self.schema)).limit(0)
        with self.engine.connect() as connection:
            names = list(connection.execute(query).keys())
        return [str(name).lower() for name in names]

    def _bind(self, moment: datetime) -> datetime:
        """A naive UTC bound as the dialect compares it with the table's timestamps."""
        if self.engine.dialect.name in _AWARE_DIALECTS:
            return moment.replace(tzinfo=UTC)
        return moment

    def close(self) -> None:
        """Close the connection pool."""
        self.engine.dispose()

    def first_cursor(self, lo: datetime, hi: datetime) -> datetime | None:
        """The earliest cursor value in ``[lo, hi)``, None when the range holds no event."""
        with self.engine.connect() as connection:
            value = connection.execute(
                first_cursor_query(self.schema, self.cursor),
                {"lo": self._bind(lo), "hi": self._bind(hi)},
            ).scalar()
        return t.cast("datetime | None", value)

    def window(self, lo: datetime, hi: datetime) -> Iterator[dict[str, t.Any] | str]:
        """The events loaded in ``[lo, hi)``, each with its entities, in cursor order.

        A row whose entity columns are not JSON comes as an error message instead, for the
        caller to count.
        """
        params = {"lo": self._bind(lo), "hi": self._bind(hi)}
        with self.engine.connect() as connection:
            shredded = self._shredded(connection, params) if self.entities else {}
            result = connection.execute(
                events_query(self.schema, self.columns, self.cursor), params
            )
            for raw in result.mappings():
                row = {str(k).lower(): v for k, v in raw.items()}
                try:
                    self._attach(row, shredded)
                except ValueError as error:
                    yield f"event {row.get('event_id')}: {error}"
                    continue
                yield row

    def _attach(
        self,
        row: dict[str, t.Any],
        shredded: dict[tuple[t.Any, t.Any], dict[str, list[dict[str, t.Any]]]],
    ) -> None:
        contexts: dict[str, list[dict[str, t.Any]]] = {}
        sdes: dict[str, dict[str, t.Any]] = {}
        for column in [c for c in row if c.startswith((_CONTEXTS, _UNSTRUCT))]:
            value = parse_json(row.pop(column), column)
            if value is None:
                continue
            if column.startswith(_CONTEXTS):
                if not isinstance(value, list):
                    raise ValueError(f"{column} is not an array")
                name = _FULL_VERSION.sub(r"_\1", column[len(_CONTEXTS) :])
                contexts[name] = [v for v in value if isinstance(v, dict)]
            elif isinstance(value, dict):
                sdes[_FULL_VERSION.sub(r"_\1", column[len(_UNSTRUCT) :])] = value
            else:
                raise ValueError(f"{column} is not an object")
        found = shredded.get((row.get("event_id"), row.get("collector_tstamp")), {})
        sde_name = _sde_table(row)
        for name, objects in found.items():
            if name == sde_name and objects:
                sdes[name] = objects[0]
            else:
                contexts[name] = objects
        row["_contexts"] = contexts
        row["_sdes"] = sdes

    def _shredded(
        self, connection: sa.Connection, params: dict[str, t.Any]
    ) -> dict[tuple[t.Any, t.Any], dict[str, list[dict[str, t.Any]]]]:
        found: dict[tuple[t.Any, t.Any], dict[str, list[dict[str, t.Any]]]] = defaultdict(dict)
        for name, columns in self.entities.items():
            query = entity_query(self.schema, name, columns, self.cursor)
            seen: set[tuple[t.Any, ...]] = set()
            for raw in connection.execute(query, params).mappings():
                # A duplicated event is shredded twice: keep each entity once.
                fingerprint = tuple(sorted((k, repr(v)) for k, v in raw.items()))
                if fingerprint in seen:
                    continue
                seen.add(fingerprint)
                data = {
                    str(k).lower(): v
                    for k, v in raw.items()
                    if v is not None and str(k).lower() not in settings.SHRED_COLUMNS
                }
                key = (raw["root_id"], raw["root_tstamp"])
                found[key].setdefault(_entity_name(raw, name), []).append(data)
        return found


def _schema_key(vendor: object, name: object, version: object) -> str:
    major = str(version).split("-", 1)[0]
    return f"{str(vendor).replace('.', '_').replace('-', '_')}_{name}_{major}".lower()


def _entity_name(raw: t.Mapping[t.Any, t.Any], table: str) -> str:
    """An entity's full name, from the shredded row's schema columns.

    Table names can be cut short (Postgres keeps 63 characters of a name: the ecommerce
    action's table loses its tail), so the name comes from the row where it can.
    """
    vendor, name, version = (
        raw.get("schema_vendor"),
        raw.get("schema_name"),
        raw.get("schema_version"),
    )
    if vendor and name and version:
        return _schema_key(vendor, name, version)
    return table


def _sde_table(row: dict[str, t.Any]) -> str | None:
    """The entity name of the row's self-describing event (``event_vendor`` + name + major)."""
    vendor, name, version = row.get("event_vendor"), row.get("event_name"), row.get("event_version")
    if row.get("event") != "unstruct" or not (vendor and name and version):
        return None
    return _schema_key(vendor, name, version)
