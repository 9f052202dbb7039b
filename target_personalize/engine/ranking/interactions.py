"""Item interactions as compact numpy arrays: what every ranker and the evaluation read.

An :class:`Interactions` holds one row per (event, item) of the events that name items, sorted
by session and time, with strings replaced by indexes into small vocabularies. It comes from the
event store (:func:`interactions_from_store`), from a session-rec file
(:func:`read_session_file`, tab-separated ``SessionId``/``ItemId``/``Time``) or from canonical
event records (:func:`interactions_from_events`). Memory is proportional to events plus items.
"""

from __future__ import annotations

import csv
import logging
import math
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from target_personalize.engine.arrays import BoolArray, FloatArray, Int32Array, IntArray, StrArray
from target_personalize.engine.exceptions import RankerError
from target_personalize.engine.store.views import event_items_sql, sessionized_events_sql

if TYPE_CHECKING:
    from target_personalize.engine.store.event_store import EventStore

__all__ = [
    "Interactions",
    "ItemTable",
    "interactions_from_events",
    "interactions_from_store",
    "read_session_file",
    "to_epoch",
    "training_window_start",
]

logger = logging.getLogger(__name__)


#: Event type given to rows of a session-rec file (clicks).
SESSION_FILE_EVENT_TYPE = "product_view"


def to_epoch(moment: datetime | float | str | None) -> float:
    """Seconds since the epoch of a naive-UTC datetime, an ISO string or a number.

    ``None`` gives ``nan``.
    """
    if moment is None:
        return math.nan
    if isinstance(moment, int | float):
        return float(moment)
    if isinstance(moment, str):
        from target_personalize.engine.store.records import parse_timestamp  # noqa: PLC0415

        moment = parse_timestamp(moment)
    if moment.tzinfo is not None:
        return moment.timestamp()
    return (moment - _EPOCH).total_seconds()


_EPOCH = datetime(1970, 1, 1)


def _str_array(values: Iterable[str]) -> StrArray:
    array = np.asarray(list(values), dtype=np.str_)
    return array if array.size else np.zeros(0, dtype="<U1")


@dataclass(frozen=True, eq=False)
class ItemTable:
    """What is known about each item, aligned with an item vocabulary.

    Attributes:
        item_ids: the item ids, sorted (so lookups are binary searches).
        category: index into ``categories`` per item, -1 when unknown.
        brand: index into ``brands`` per item, -1 when unknown.
        categories: category names.
        brands: brand names.
        price: unit price, ``nan`` when unknown.
        margin: margin per unit from the catalog (``margin``, else ``price - cost``), ``nan``
            when unknown.
        order_value: mean share of an order's revenue per item, ``nan`` when unknown.
        available: whether the item may be recommended.
        engagement: mean engagement per item event that carries it (``engagement_kind``),
            ``nan`` when unknown.
        engagement_kind: which signal ``engagement`` holds: ``engagement_ms``,
            ``media_progress_pct`` (where no event has ``engagement_ms``) or ``none``.
    """

    item_ids: StrArray
    category: Int32Array
    brand: Int32Array
    categories: tuple[str, ...]
    brands: tuple[str, ...]
    price: FloatArray
    margin: FloatArray
    order_value: FloatArray
    available: BoolArray
    engagement: FloatArray
    engagement_kind: str = "none"

    def __len__(self) -> int:
        return int(self.item_ids.size)

    def index(self, item_ids: Sequence[str] | StrArray) -> IntArray:
        """Indexes of ``item_ids`` in the vocabulary, -1 for unknown ids."""
        wanted = np.asarray(item_ids, dtype=np.str_)
        if wanted.size == 0 or self.item_ids.size == 0:
            return np.full(wanted.size, -1, dtype=np.int64)
        # Ids longer than the vocabulary's are unknown; searching with a wider string type
        # would copy the whole vocabulary first.
        too_long = np.char.str_len(wanted) > self.item_ids.dtype.itemsize // 4
        wanted = np.where(too_long, "", wanted).astype(self.item_ids.dtype)
        at = np.searchsorted(self.item_ids, wanted)
        at = np.minimum(at, self.item_ids.size - 1)
        return np.where((self.item_ids[at] == wanted) & ~too_long, at, -1).astype(np.int64)

    def value(self) -> FloatArray:
        """Business value per item: margin, else price, else order value; ``nan`` if none."""
        value = np.where(np.isnan(self.margin), self.price, self.margin)
        return np.where(np.isnan(value), self.order_value, value)

    def value_kind(self) -> str:
        """Which value most items have: ``margin``, ``price``, ``order value`` or ``none``."""
        for name, array in (
            ("margin", self.margin),
            ("price", self.price),
            ("order value", self.order_value),
        ):
            if array.size and np.count_nonzero(~np.isnan(array)) * 2 >= array.size:
                return name
        return "none"

    @classmethod
    def build(
        cls,
        item_ids: Sequence[str] | StrArray,
        *,
        category: Sequence[str | None] | None = None,
        brand: Sequence[str | None] | None = None,
        price: Sequence[float | None] | FloatArray | None = None,
        margin: Sequence[float | None] | FloatArray | None = None,
        order_value: Sequence[float | None] | FloatArray | None = None,
        available: Sequence[bool | None] | None = None,
        engagement: Sequence[float | None] | FloatArray | None = None,
        engagement_kind: str = "none",
    ) -> ItemTable:
        """Build a table from per-item lists (any order; ids must be unique).

        Returns:
            The table, sorted by item id.
        """
        ids = np.asarray(item_ids, dtype=np.str_)
        order = np.argsort(ids, kind="stable")
        n = ids.size

        def floats(values: Sequence[float | None] | FloatArray | None) -> FloatArray:
            if values is None:
                return np.full(n, np.nan)
            return np.array([np.nan if v is None else v for v in values], dtype=np.float64)[order]

        def codes(values: Sequence[str | None] | None) -> tuple[Int32Array, tuple[str, ...]]:
            if values is None:
                return np.full(n, -1, dtype=np.int32), ()
            names = sorted({v for v in values if v})
            at = {name: i for i, name in enumerate(names)}
            coded = np.array([at.get(v, -1) if v else -1 for v in values], dtype=np.int32)
            return coded[order], tuple(names)

        cat, categories = codes(category)
        brd, brands = codes(brand)
        avail = (
            np.ones(n, dtype=np.bool_)
            if available is None
            else np.array([v is not False for v in available], dtype=np.bool_)[order]
        )
        return cls(
            item_ids=ids[order] if n else np.zeros(0, dtype="<U1"),
            category=cat,
            brand=brd,
            categories=categories,
            brands=brands,
            price=floats(price),
            margin=floats(margin),
            order_value=floats(order_value),
            available=avail,
            engagement=floats(engagement),
            engagement_kind=engagement_kind if engagement is not None else "none",
        )

    def extended(
        self,
        item_id: str,
        *,
        category: str | None = None,
        brand: str | None = None,
        price: float | None = None,
    ) -> tuple[ItemTable, int]:
        """A copy with one more item appended (out of sort order), and its index.

        Used for items first seen live; :meth:`index` does not find appended ids, so the
        caller keeps its own lookup for them.
        """
        categories, cat = _code_append(self.categories, category)
        brands, brd = _code_append(self.brands, brand)
        table = ItemTable(
            item_ids=np.append(self.item_ids, np.str_(item_id)),
            category=np.append(self.category, np.int32(cat)),
            brand=np.append(self.brand, np.int32(brd)),
            categories=categories,
            brands=brands,
            price=np.append(self.price, np.nan if price is None else price),
            margin=np.append(self.margin, np.nan),
            order_value=np.append(self.order_value, np.nan),
            available=np.append(self.available, True),
            engagement=np.append(self.engagement, np.nan),
            engagement_kind=self.engagement_kind,
        )
        return table, len(self)

    def head(self, count: int) -> ItemTable:
        """The first ``count`` items (drops items appended by :meth:`extended`)."""
        return ItemTable(
            item_ids=self.item_ids[:count],
            category=self.category[:count],
            brand=self.brand[:count],
            categories=self.categories,
            brands=self.brands,
            price=self.price[:count],
            margin=self.margin[:count],
            order_value=self.order_value[:count],
            available=self.available[:count],
            engagement=self.engagement[:count],
            engagement_kind=self.engagement_kind,
        )

    def arrays(self) -> dict[str, npt.NDArray[Any]]:
        """The table as named arrays (for ``.npz`` files)."""
        return {
            "item_ids": self.item_ids,
            "item_category": self.category,
            "item_brand": self.brand,
            "categories": _str_array(self.categories),
            "brands": _str_array(self.brands),
            "item_price": self.price,
            "item_margin": self.margin,
            "item_order_value": self.order_value,
            "item_available": self.available,
            "item_engagement": self.engagement,
            "item_engagement_kind": np.array(self.engagement_kind),
        }

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, npt.NDArray[Any]]) -> ItemTable:
        """The inverse of :meth:`arrays` (models saved before engagement have none)."""
        n = arrays["item_ids"].size
        return cls(
            item_ids=arrays["item_ids"].astype(np.str_),
            category=arrays["item_category"].astype(np.int32),
            brand=arrays["item_brand"].astype(np.int32),
            categories=tuple(str(c) for c in arrays["categories"]),
            brands=tuple(str(b) for b in arrays["brands"]),
            price=arrays["item_price"].astype(np.float64),
            margin=arrays["item_margin"].astype(np.float64),
            order_value=arrays["item_order_value"].astype(np.float64),
            available=arrays["item_available"].astype(np.bool_),
            engagement=(
                arrays["item_engagement"].astype(np.float64)
                if "item_engagement" in arrays
                else np.full(n, np.nan)
            ),
            engagement_kind=(
                str(arrays["item_engagement_kind"]) if "item_engagement_kind" in arrays else "none"
            ),
        )


def _code_append(names: tuple[str, ...], name: str | None) -> tuple[tuple[str, ...], int]:
    if not name:
        return names, -1
    if name in names:
        return names, names.index(name)
    return (*names, name), len(names)


@dataclass(frozen=True, eq=False)
class Interactions:
    """Item events, one row per (event, item), sorted by session then time.

    Attributes:
        session: index into ``session_keys`` per row.
        item: index into ``items.item_ids`` per row.
        kind: index into ``event_types`` per row.
        ts: event time, seconds since the epoch (UTC).
        session_keys: session keys (the store's ``session_key``).
        session_visitor: index into ``visitors`` per session.
        visitors: known user, else device id, else session id.
        event_types: event type names.
        items: the item vocabulary and attributes.
    """

    session: Int32Array
    item: Int32Array
    kind: npt.NDArray[np.int16]
    ts: FloatArray
    session_keys: StrArray
    session_visitor: Int32Array
    visitors: StrArray
    event_types: tuple[str, ...]
    items: ItemTable

    def __len__(self) -> int:
        return int(self.item.size)

    @property
    def n_sessions(self) -> int:
        """Number of sessions in the vocabulary."""
        return int(self.session_keys.size)

    def kind_of(self, name: str) -> int:
        """Index of event type ``name``, -1 if absent."""
        return self.event_types.index(name) if name in self.event_types else -1

    def session_bounds(self) -> tuple[IntArray, IntArray]:
        """For each run of rows of one session: (sessions, start offsets incl. the end)."""
        if self.session.size == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(1, dtype=np.int64)
        change = np.flatnonzero(np.diff(self.session)) + 1
        starts = np.concatenate(([0], change, [self.session.size])).astype(np.int64)
        return self.session[starts[:-1]].astype(np.int64), starts

    def take(self, rows: IntArray | BoolArray) -> Interactions:
        """The same vocabularies with a subset of rows (order kept)."""
        return replace(
            self,
            session=self.session[rows],
            item=self.item[rows],
            kind=self.kind[rows],
            ts=self.ts[rows],
        )

    def session_end_times(self) -> FloatArray:
        """Last event time per session in the vocabulary (``-inf`` for empty sessions)."""
        end = np.full(self.n_sessions, -np.inf)
        np.maximum.at(end, self.session, self.ts)
        return end

    def split_by_time(self, cut: float) -> tuple[Interactions, Interactions]:
        """Train on sessions that end before ``cut``, test on the others (session-rec style)."""
        ended = self.session_end_times() < cut
        in_train = ended[self.session]
        return self.take(in_train), self.take(~in_train)

    def filter_support(
        self, min_item_support: int = 5, min_session_length: int = 2
    ) -> Interactions:
        """Drop short sessions, then rare items, then sessions short again (session-rec)."""
        data = self._drop_short(min_session_length)
        counts = np.bincount(data.item, minlength=len(self.items))
        data = data.take(counts[data.item] >= min_item_support)
        return data._drop_short(min_session_length)

    def _drop_short(self, min_length: int) -> Interactions:
        lengths = np.bincount(self.session, minlength=self.n_sessions)
        return self.take(lengths[self.session] >= min_length)

    def restrict_items(self, known: BoolArray) -> Interactions:
        """Keep rows whose item is marked in ``known`` (a mask over the vocabulary)."""
        return self.take(known[self.item])

    def with_items(self, items: ItemTable) -> Interactions:
        """Re-index onto another item vocabulary; rows with items it lacks are dropped."""
        at = items.index(self.items.item_ids)
        mapped = at[self.item]
        kept = self.take(mapped >= 0)
        return replace(kept, item=mapped[mapped >= 0].astype(np.int32), items=items)

    def with_event_types(self, event_types: Sequence[str]) -> Interactions:
        """Re-index event types onto ``event_types`` (types it lacks are appended)."""
        names = list(event_types)
        for name in self.event_types:
            if name not in names:
                names.append(name)
        mapping = np.array([names.index(n) for n in self.event_types] or [0], dtype=np.int16)
        return replace(self, kind=mapping[self.kind], event_types=tuple(names))

    def concat(self, other: Interactions) -> Interactions:
        """Rows of both (same item vocabulary and event types required), sorted again.

        Sessions are matched by key: the rows of a session present in both come together.
        """
        if other.items is not self.items or other.event_types != self.event_types:
            raise ValueError("concat needs the same item vocabulary and event types")
        keys = np.concatenate([self.session_keys, other.session_keys])
        visitors_all = np.concatenate([self.visitors, other.visitors])
        visitor_keys = np.concatenate(
            [self.visitors[self.session_visitor], other.visitors[other.session_visitor]]
        )
        session_keys, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
        visitors = np.unique(visitors_all)
        session_visitor = np.searchsorted(visitors, visitor_keys[first]).astype(np.int32)
        session = np.concatenate(
            [inverse[self.session], inverse[self.session_keys.size + other.session]]
        ).astype(np.int32)
        return _sorted(
            Interactions(
                session=session,
                item=np.concatenate([self.item, other.item]),
                kind=np.concatenate([self.kind, other.kind]),
                ts=np.concatenate([self.ts, other.ts]),
                session_keys=session_keys,
                session_visitor=session_visitor,
                visitors=visitors,
                event_types=self.event_types,
                items=self.items,
            )
        )

    def arrays(self) -> dict[str, npt.NDArray[Any]]:
        """The interactions as named arrays (for ``.npz`` files)."""
        return {
            "session": self.session,
            "item": self.item,
            "kind": self.kind,
            "ts": self.ts,
            "session_keys": self.session_keys,
            "session_visitor": self.session_visitor,
            "visitors": self.visitors,
            "event_types": _str_array(self.event_types),
            **self.items.arrays(),
        }

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, npt.NDArray[Any]]) -> Interactions:
        """The inverse of :meth:`arrays`."""
        return cls(
            session=arrays["session"].astype(np.int32),
            item=arrays["item"].astype(np.int32),
            kind=arrays["kind"].astype(np.int16),
            ts=arrays["ts"].astype(np.float64),
            session_keys=arrays["session_keys"].astype(np.str_),
            session_visitor=arrays["session_visitor"].astype(np.int32),
            visitors=arrays["visitors"].astype(np.str_),
            event_types=tuple(str(t) for t in arrays["event_types"]),
            items=ItemTable.from_arrays(arrays),
        )

    @classmethod
    def from_rows(
        cls,
        session_keys: Sequence[str] | StrArray,
        item_ids: Sequence[str] | StrArray,
        event_types: Sequence[str] | StrArray,
        ts: Sequence[float] | FloatArray,
        *,
        visitors: Sequence[str] | StrArray | None = None,
        items: ItemTable | None = None,
    ) -> Interactions:
        """Build from parallel per-row lists; rows are sorted by session, then time (stable).

        Args:
            session_keys: session key per row.
            item_ids: item id per row.
            event_types: event type per row.
            ts: event time per row (epoch seconds).
            visitors: visitor per row (default: the session key).
            items: the item table; built from the ids seen when omitted. Rows whose item it
                lacks are dropped.

        Returns:
            The interactions.
        """
        skeys = np.asarray(session_keys, dtype=np.str_)
        ids = np.asarray(item_ids, dtype=np.str_)
        kinds = np.asarray(event_types, dtype=np.str_)
        times = np.asarray(ts, dtype=np.float64)
        who = skeys if visitors is None else np.asarray(visitors, dtype=np.str_)
        if items is None:
            items = ItemTable.build(np.unique(ids))
        item = items.index(ids)
        keep = item >= 0
        skeys, kinds, times, who, item = (
            skeys[keep],
            kinds[keep],
            times[keep],
            who[keep],
            item[keep],
        )
        session_vocab, first, session = np.unique(skeys, return_index=True, return_inverse=True)
        type_vocab, kind = np.unique(kinds, return_inverse=True)
        visitor_vocab = np.unique(who)
        session_visitor = np.searchsorted(visitor_vocab, who[first]).astype(np.int32)
        return _sorted(
            cls(
                session=session.astype(np.int32).ravel(),
                item=item.astype(np.int32),
                kind=kind.astype(np.int16).ravel(),
                ts=times,
                session_keys=session_vocab if session_vocab.size else np.zeros(0, "<U1"),
                session_visitor=session_visitor,
                visitors=visitor_vocab if visitor_vocab.size else np.zeros(0, "<U1"),
                event_types=tuple(str(t) for t in type_vocab),
                items=items,
            )
        )


def _sorted(data: Interactions) -> Interactions:
    order = np.lexsort((data.ts, data.session))
    return data.take(order)


def read_session_file(
    path: str | Path, *, items: ItemTable | None = None, delimiter: str = "\t"
) -> Interactions:
    """Read session-rec's ``SessionId``, ``ItemId``, ``Time`` format (tab-separated by default).

    Every row becomes a ``product_view`` (the format has clicks only). Rows keep their file
    order within equal times, as session-rec's stable pandas sort does.

    Args:
        path: the file.
        items: an item table to index onto (rows with other items are dropped); by default
            one is built from the file.
        delimiter: the column separator (YooChoose's own CSV files use commas).

    Returns:
        The interactions.
    """
    sessions: list[str] = []
    item_ids: list[str] = []
    times: list[float] = []
    with Path(path).open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle, delimiter=delimiter)
        header = next(reader)
        at = {name: i for i, name in enumerate(header)}
        s_at, i_at, t_at = at["SessionId"], at["ItemId"], at["Time"]
        for row in reader:
            if not row:
                continue
            sessions.append(row[s_at])
            item_ids.append(row[i_at])
            times.append(float(row[t_at]))
    return Interactions.from_rows(
        sessions,
        item_ids,
        [SESSION_FILE_EVENT_TYPE] * len(sessions),
        times,
        items=items,
    )


def interactions_from_events(records: Iterable[Mapping[str, Any]]) -> Interactions:
    """Interactions from canonical event records, through an in-memory store.

    Sessions are derived exactly as the store derives them.
    """
    from target_personalize.engine.store.event_store import EventStore  # noqa: PLC0415

    with EventStore("duckdb:///:memory:") as store:
        store.load_events(records)
        return interactions_from_store(store)


def training_window_start(store: EventStore, days: float) -> datetime | None:
    """The start of a training window of ``days`` days back from the store's latest event.

    Measured from the data, not the clock, so a backfill of an old year trains on its last
    days, and a store that stopped receiving events keeps a full window.

    Returns:
        ``None`` for a store without (non-aggregate) events.

    Raises:
        RankerError: if ``days`` is not a positive number.
    """
    if not (isinstance(days, int | float) and math.isfinite(days) and days > 0):
        raise RankerError(
            f"a training window of {days!r} days: give a positive number of days "
            "(or no window to train on every event)"
        )
    rows = store.query("SELECT max(event_ts) FROM events WHERE NOT is_aggregate")
    latest = rows[0][0] if rows else None
    return latest - timedelta(days=days) if isinstance(latest, datetime) else None


def interactions_from_store(
    store: EventStore,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    session_keys: Sequence[str] | None = None,
    min_loaded_at: datetime | None = None,
) -> Interactions:
    """Read the item events of the store (one row per event and item) and the catalog.

    Args:
        store: the event store.
        since: only events at or after this time (a training window: see
            :func:`training_window_start`). Sessions are derived from all events first, so
            a session the window cuts keeps its key and its events inside the window.
        until: only events strictly before this time.
        session_keys: only these sessions.
        min_loaded_at: only sessions with an event loaded at or after this time (whole
            sessions are read, so a session that grew is read again in full).

    Returns:
        The interactions; the item table holds every item seen in events or in the catalog.
    """
    table = f"_rank_events_{uuid.uuid4().hex[:12]}"
    where: list[str] = []
    params: list[Any] = []
    if since is not None:
        where.append("s.event_ts >= %s")
        params.append(since)
    if until is not None:
        where.append("s.event_ts < %s")
        params.append(until)
    if session_keys is not None:
        if not session_keys:
            where.append("1 = 0")
        else:
            where.append("s.session_key IN (" + ", ".join(["%s"] * len(session_keys)) + ")")
            params.extend(session_keys)
    # Only the window's events are unnested (their item rows are most of what is read).
    items_sql = event_items_sql(store.dialect, "" if since is None else "event_ts >= %s")
    body = (
        f"SELECT s.session_key, s.visitor, s.event_type, s.event_ts, s.event_id, s.loaded_at, "
        f"s.revenue, s.engagement_ms, s.media_progress_pct, "
        f"ei.item_id, ei.category, ei.brand, ei.price, ei.quantity "
        f"FROM ({sessionized_events_sql()}) s "
        f"JOIN ({items_sql}) ei "
        f"ON s.source = ei.source AND s.event_id = ei.event_id"
    )
    if since is not None:
        params.insert(0, since)  # the placeholder in items_sql comes first
    if min_loaded_at is not None:
        # Whole sessions that received an event since: only those rows are materialized.
        where.append(
            f"s.session_key IN (SELECT session_key FROM ({sessionized_events_sql()}) touched "
            "WHERE touched.loaded_at >= %s)"
        )
        params.append(min_loaded_at)
    if where:
        body += " WHERE " + " AND ".join(where)
    store.query(f"CREATE TEMP TABLE {table} AS {body}", params)
    try:
        return _read_table(store, table)
    finally:
        store.query(f"DROP TABLE IF EXISTS {table}")


def _read_items(store: EventStore, table: str) -> ItemTable:
    """The items of a table of item events, with what the catalog says of them."""
    run = store.query
    # Items: from events (any category/brand, mean price) and the catalog, which wins.
    event_items = run(
        f"SELECT item_id, max(category), max(brand), avg(price) FROM {table} GROUP BY item_id"
    )
    order_values = dict(
        run(
            f"SELECT item_id, avg(revenue / n) FROM (SELECT item_id, revenue, "
            f"count(*) OVER (PARTITION BY session_key, event_id) AS n FROM {table} "
            f"WHERE revenue IS NOT NULL) shares GROUP BY item_id"
        )
    )
    catalog = {
        str(r[0]): r
        for r in run(
            "SELECT item_id, category, brand, price, "
            "coalesce(margin, price - cost), available FROM items"
        )
    }
    merged: dict[str, list[Any]] = {}
    for item_id, category, brand, price in event_items:
        merged[str(item_id)] = [category, brand, price, None, None, None]
    for item_id, (_, category, brand, price, margin, available) in catalog.items():
        row = merged.setdefault(item_id, [None] * 6)
        row[0] = category or row[0]
        row[1] = brand or row[1]
        row[2] = price if price is not None else row[2]
        row[3] = margin
        row[5] = available
    for item_id, value in order_values.items():
        if str(item_id) in merged and value is not None:
            merged[str(item_id)][4] = float(value)
    engagement_kind, engagement = _read_engagement(store, table)
    ids = list(merged)
    rows = [merged[i] for i in ids]
    return ItemTable.build(
        ids,
        category=[r[0] for r in rows],
        brand=[r[1] for r in rows],
        price=[None if r[2] is None else float(r[2]) for r in rows],
        margin=[None if r[3] is None else float(r[3]) for r in rows],
        order_value=[r[4] for r in rows],
        available=[r[5] for r in rows],
        engagement=[engagement.get(i) for i in ids],
        engagement_kind=engagement_kind,
    )


def _read_engagement(store: EventStore, table: str) -> tuple[str, dict[str, float]]:
    """Which engagement signal the item events carry, and its mean per item.

    ``engagement_ms`` (time engaged) when any item event has it, else ``media_progress_pct``
    (share of a video or track played), else ``none`` with no values.
    """
    for column in ("engagement_ms", "media_progress_pct"):
        means = store.query(
            f"SELECT item_id, avg({column}) FROM {table} WHERE {column} IS NOT NULL "
            "GROUP BY item_id"
        )
        if means:
            return column, {str(item): float(mean) for item, mean in means}
    return "none", {}


def _read_table(store: EventStore, table: str) -> Interactions:
    """The interactions of a table of item events (``event_items_sql`` columns)."""
    run = store.query
    items = _read_items(store, table)
    # Rows, with strings coded in SQL. Dense ranks follow the database's collation, so they
    # are mapped onto the numpy-sorted vocabularies here.
    session_rank, item_rank, kind_rank, epoch = store.query_arrays(
        f"SELECT dense_rank() OVER (ORDER BY session_key) - 1 AS session_rank, "
        f"dense_rank() OVER (ORDER BY item_id) - 1 AS item_rank, "
        f"dense_rank() OVER (ORDER BY event_type) - 1 AS kind_rank, "
        f"CAST(extract(epoch FROM event_ts) AS DOUBLE PRECISION) AS epoch "
        f"FROM {table} ORDER BY session_key, event_ts, event_id, item_id"
    )
    sql_sessions = _str_array(
        str(r[0]) for r in run(f"SELECT DISTINCT session_key FROM {table} ORDER BY 1")
    )
    sql_items = _str_array(
        str(r[0]) for r in run(f"SELECT DISTINCT item_id FROM {table} ORDER BY 1")
    )
    event_types = tuple(
        str(r[0]) for r in run(f"SELECT DISTINCT event_type FROM {table} ORDER BY 1")
    )
    session_keys = np.sort(sql_sessions)
    owner = dict(run(f"SELECT session_key, max(visitor) FROM {table} GROUP BY session_key"))
    visitors = np.unique(_str_array(str(v) for v in owner.values()))
    session_visitor = np.searchsorted(
        visitors, _str_array(str(owner[k]) for k in session_keys.tolist())
    ).astype(np.int32)
    if epoch.size:
        session_map = np.searchsorted(session_keys, sql_sessions)
        item_map = items.index(sql_items)
        session = session_map[session_rank.astype(np.int64)].astype(np.int32)
        item = item_map[item_rank.astype(np.int64)].astype(np.int32)
        kind = kind_rank.astype(np.int16)
        ts = epoch.astype(np.float64)
    else:
        session = np.zeros(0, np.int32)
        item = np.zeros(0, np.int32)
        kind = np.zeros(0, np.int16)
        ts = np.zeros(0, np.float64)
    return _sorted(
        Interactions(
            session=session,
            item=item,
            kind=kind,
            ts=ts,
            session_keys=session_keys,
            session_visitor=session_visitor,
            visitors=visitors,
            event_types=event_types,
            items=items,
        )
    )
