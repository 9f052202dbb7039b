"""What serving hands out, kept for the experiments' readout: exposures and impressions.

Four tables beside the events, the same on DuckDB and PostgreSQL:

* ``experiments``: each experiment's definition (JSON), status and times;
* ``exposures``: a visitor seen in a variant, at most once per experiment, visitor and UTC day
  (keyed by ``exposure_key``);
* ``impressions``: one served list (keyed by its ``rec_id``): experiment, variant, visitor,
  session, time and the item ids in order (``item_ids``, a JSON array);
* ``impression_items``: the same lists one row per item (``rec_id``, 1-based ``position``,
  ``item_id``), so attribution is plain SQL on both databases.

Writes are idempotent: a row whose key is stored already (a journal replayed after a crash, a
retried request) is skipped, and inside one batch the first row of a key wins.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from target_personalize.engine.store.backends import PostgresBackend
from target_personalize.engine.store.columns import Kind

if TYPE_CHECKING:
    from target_personalize.engine.store.backends import Backend
    from target_personalize.engine.store.event_store import EventStore

__all__ = [
    "EXPERIMENT_COLUMNS",
    "EXPOSURE_COLUMNS",
    "IMPRESSION_COLUMNS",
    "IMPRESSION_ITEM_COLUMNS",
    "Exposure",
    "Impression",
    "create_served_tables",
    "exposure_key",
    "record_exposures",
    "record_impressions",
]

#: Table ``experiments``: one row per experiment.
EXPERIMENT_COLUMNS: dict[str, Kind] = {
    "experiment_id": "str",
    "definition": "json",
    "status": "str",
    "created_at": "ts",
    "stopped_at": "ts",
}
#: Table ``exposures``: a visitor seen in a variant (once per experiment, visitor and day).
EXPOSURE_COLUMNS: dict[str, Kind] = {
    "exposure_key": "str",
    "experiment_id": "str",
    "variant_id": "str",
    "visitor_id": "str",
    "session_id": "str",
    "exposed_at": "ts",
}
#: Table ``impressions``: one served list.
IMPRESSION_COLUMNS: dict[str, Kind] = {
    "rec_id": "str",
    "experiment_id": "str",
    "variant_id": "str",
    "visitor_id": "str",
    "session_id": "str",
    "served_at": "ts",
    "item_ids": "json",
}
#: Table ``impression_items``: the items of each served list, one row each.
IMPRESSION_ITEM_COLUMNS: dict[str, Kind] = {"rec_id": "str", "position": "int", "item_id": "str"}

_KEYS = {
    "experiments": ("experiment_id",),
    "exposures": ("exposure_key",),
    "impressions": ("rec_id",),
    "impression_items": ("rec_id", "position"),
}
_TABLES = {
    "experiments": EXPERIMENT_COLUMNS,
    "exposures": EXPOSURE_COLUMNS,
    "impressions": IMPRESSION_COLUMNS,
    "impression_items": IMPRESSION_ITEM_COLUMNS,
}


def exposure_key(experiment_id: str, visitor_id: str, moment: datetime) -> str:
    """The key that keeps one exposure per experiment, visitor and UTC day."""
    return f"{experiment_id}\x1f{visitor_id}\x1f{moment.date().isoformat()}"


@dataclass(frozen=True)
class Exposure:
    """A visitor seen in a variant of an experiment (times are naive UTC)."""

    experiment_id: str
    variant_id: str
    visitor_id: str
    exposed_at: datetime
    session_id: str | None = None

    def row(self) -> tuple[Any, ...]:
        """The ``exposures`` row."""
        key = exposure_key(self.experiment_id, self.visitor_id, self.exposed_at)
        return (
            key,
            self.experiment_id,
            self.variant_id,
            self.visitor_id,
            self.session_id,
            self.exposed_at,
        )


@dataclass(frozen=True)
class Impression:
    """One served list: its ``rec_id``, who saw it, in which variant, and its items in order."""

    rec_id: str
    experiment_id: str | None
    variant_id: str | None
    visitor_id: str | None
    session_id: str | None
    served_at: datetime
    item_ids: tuple[str, ...]

    def row(self) -> tuple[Any, ...]:
        """The ``impressions`` row."""
        return (
            self.rec_id,
            self.experiment_id,
            self.variant_id,
            self.visitor_id,
            self.session_id,
            self.served_at,
            json.dumps(list(self.item_ids)),
        )


def create_served_tables(backend: Backend) -> None:
    """Create the four tables if they do not exist (PostgreSQL gets their keys as primary keys).

    DuckDB gets no key constraint, as for the events: the writers skip stored keys themselves.
    """
    keyed = isinstance(backend, PostgresBackend)
    for table, columns in _TABLES.items():
        key = f", PRIMARY KEY ({', '.join(_KEYS[table])})" if keyed else ""
        backend.execute(f"CREATE TABLE IF NOT EXISTS {table} ({backend.column_ddl(columns)}{key})")


def _insert_new(backend: Backend, table: str, rows: Sequence[tuple[Any, ...]]) -> None:
    """Insert the rows whose key is not stored yet; the first row of a key in ``rows`` wins."""
    columns = _TABLES[table]
    keys = _KEYS[table]
    staged = f"staged_{table}"
    backend.stage(staged, columns, rows)
    names = ", ".join(columns)
    group = ", ".join(keys)
    match = " AND ".join(f"t.{k} = s.{k}" for k in keys)
    backend.execute(
        f"INSERT INTO {table} ({names}) SELECT {names} FROM {staged} s "
        f"WHERE _seq IN (SELECT min(_seq) FROM {staged} GROUP BY {group}) "
        f"AND NOT EXISTS (SELECT 1 FROM {table} t WHERE {match})"
    )


def record_exposures(store: EventStore, exposures: Sequence[Exposure]) -> None:
    """Store exposures, skipping those already stored for the experiment, visitor and day."""
    if not exposures:
        return
    with store.writing() as backend:
        _insert_new(backend, "exposures", [e.row() for e in exposures])


def record_impressions(store: EventStore, impressions: Sequence[Impression]) -> None:
    """Store served lists and their items, skipping lists whose ``rec_id`` is stored already."""
    if not impressions:
        return
    items = [
        (impression.rec_id, position, item_id)
        for impression in impressions
        for position, item_id in enumerate(impression.item_ids, start=1)
    ]
    with store.writing() as backend:
        # Items first: their lists are not stored yet exactly when their rec_id is new.
        if items:
            backend.stage("staged_impression_items", IMPRESSION_ITEM_COLUMNS, items)
            names = ", ".join(IMPRESSION_ITEM_COLUMNS)
            backend.execute(
                f"INSERT INTO impression_items ({names}) SELECT {names} "
                "FROM staged_impression_items s WHERE _seq IN (SELECT min(_seq) FROM "
                "staged_impression_items GROUP BY rec_id, position) AND NOT EXISTS "
                "(SELECT 1 FROM impressions t WHERE t.rec_id = s.rec_id)"
            )
        _insert_new(backend, "impressions", [i.row() for i in impressions])
