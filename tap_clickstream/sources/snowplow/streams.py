"""Snowplow streams: ``snowplow_events``."""

from __future__ import annotations

import json
import math
import typing as t
from collections import defaultdict
from datetime import datetime, timedelta

import sqlalchemy as sa
from singer_sdk.exceptions import FatalAPIError
from typing_extensions import override

from tap_clickstream.events import ClickstreamEvent, Item, format_ts, parse_ts, snake_case
from tap_clickstream.normalize import as_float, experiment_fields, json_ready, path_of
from tap_clickstream.normalize import as_str as _as_str
from tap_clickstream.source_settings import DEFAULT_HISTORY_DAYS
from tap_clickstream.sources.snowplow import settings
from tap_clickstream.sources.snowplow.connector import SnowplowWarehouse
from tap_clickstream.streams import EventStream

if t.TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from singer_sdk.helpers.types import Context

Row = dict[str, t.Any]

#: atomic.events columns that become canonical fields (the rest go to ``properties``).
_MAPPED = frozenset(
    {
        "event_id", "event", "event_name", "derived_tstamp", "collector_tstamp", "load_tstamp",
        "user_id", "domain_userid", "network_userid", "domain_sessionid", "page_url",
        "page_urlpath", "page_title", "page_referrer", "mkt_source", "mkt_medium",
        "mkt_campaign", "mkt_term", "mkt_content", "geo_country", "geo_region", "geo_city",
        "os_family", "br_family", "dvce_type",
    }
)  # fmt: skip


def as_str(value: object) -> str | None:
    """A value as text, None when empty; CHAR(n) columns (Postgres, Redshift) come padded."""
    if isinstance(value, str):
        return value.strip() or None
    return _as_str(value)


def _plain(value: object) -> t.Any:
    return json_ready(value, rstrip=True)


def _get(data: t.Mapping[str, t.Any], name: str) -> t.Any:
    """A field by its snake_case name, or its camelCase one (Snowflake keeps the original)."""
    if name in data:
        return data[name]
    head, *rest = name.split("_")
    return data.get(head + "".join(part.title() for part in rest))


def _sde_fields(sdes: t.Mapping[str, t.Any]) -> dict[str, t.Any]:
    """The fields of the row's self-describing events, merged (a copy: the events stay kept)."""
    return {k: v for sde in sdes.values() if isinstance(sde, dict) for k, v in sde.items()}


def _json(value: object) -> t.Any:
    if isinstance(value, str) and value[:1] in {"[", "{"}:
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _page_view_id(row: Row) -> str | None:
    pages = row["_contexts"].get(settings.WEB_PAGE) or []
    return as_str(pages[0].get("id")) if pages else None


def _ping_key(row: Row) -> tuple[t.Any, ...]:
    """What ties a page ping to its page view: the web_page entity's id, else session and URL."""
    page_view_id = _page_view_id(row)
    if page_view_id:
        return ("id", page_view_id)
    return ("url", row.get("domain_sessionid"), row.get("page_url"))


def engagement(pings: list[Row]) -> tuple[float | None, float | None]:
    """Engaged time (ms) and vertical scroll depth (%) of a page view, from its page pings.

    As the Snowplow web model computes them: heartbeat x (distinct heartbeat slots among the
    pings - 1) + minimum visit length; scroll = (max pp_yoffset_max, clamped to the document,
    + viewport height) / document height.
    """
    if not pings:
        return None, None
    slots = set()
    for ping in pings:
        moment = ping.get("dvce_created_tstamp") or ping.get("derived_tstamp")
        moment = moment or ping["collector_tstamp"]
        slots.add(math.floor(parse_ts(moment).timestamp() / settings.HEARTBEAT_SECONDS))
    engaged = settings.HEARTBEAT_SECONDS * (len(slots) - 1) + settings.MIN_VISIT_SECONDS
    heights = [as_float(p.get("doc_height")) for p in pings]
    doc_height = max((h for h in heights if h), default=None)
    offsets = [as_float(p.get("pp_yoffset_max")) for p in pings]
    views = [as_float(p.get("br_viewheight")) for p in pings]
    scroll = None
    if doc_height:
        vmax = min(max(max((o for o in offsets if o is not None), default=0.0), 0.0), doc_height)
        view = max((v for v in views if v is not None), default=0.0)
        scroll = round(min(100.0, 100.0 * (vmax + view) / doc_height), 2)
    return engaged * 1000.0, scroll


class SnowplowEventsStream(EventStream):
    """Snowplow atomic events, read in windows of load time and normalised to canonical events.

    Within a window, duplicated ``event_id`` s are read once, the page pings of a page view
    loaded in the same window become its engaged time and scroll depth (pings whose page view
    came earlier are emitted as ``engagement`` events), and legacy ``transaction_item`` rows
    become the items of their ``transaction``.
    """

    name = "snowplow_events"
    source_settings = settings.SETTINGS
    replication_key = "ingested_at"

    def warehouse(self) -> SnowplowWarehouse:
        """Connect to the configured warehouse."""
        return SnowplowWarehouse(
            str(self.settings["sqlalchemy_url"]),
            self.settings["schema"],
            self.settings["layout"],
        )

    def bounds(self, context: Context | None) -> tuple[datetime, datetime]:
        """The range of load times this sync reads (naive UTC, as warehouses store them)."""
        bookmark = self.bookmark(context)
        if bookmark:
            hours = self.settings["lookback_hours"]
            start = parse_ts(bookmark) - timedelta(hours=int(hours))
        elif self.config.get("start_date"):
            start = parse_ts(self.config["start_date"])
        else:
            start = self.sync_started_at - timedelta(days=DEFAULT_HISTORY_DAYS)
        end = self.sync_started_at
        if self.config.get("end_date"):
            end = min(end, parse_ts(self.config["end_date"]))
        return start.replace(tzinfo=None), end.replace(tzinfo=None)

    @override
    def read_events(self, context: Context | None) -> Iterator[dict[str, t.Any]]:
        try:
            warehouse = self.warehouse()
        except (sa.exc.SQLAlchemyError, ValueError) as error:
            # The URL may hold a password: the error names the setting, not its value.
            detail = getattr(error, "orig", None) or error
            raise FatalAPIError(
                f"Cannot read the Snowplow events table (check snowplow.sqlalchemy_url, "
                f"snowplow.schema and snowplow.layout): {type(detail).__name__}: "
                f"{str(detail).splitlines()[0] if str(detail) else ''}"
            ) from None
        try:
            self.logger.info(
                "Reading Snowplow %s.events (%s layout, cursor %s)",
                warehouse.schema,
                warehouse.layout,
                warehouse.cursor,
            )
            yield from self._read(context, warehouse)
        finally:
            warehouse.close()

    def _read(self, context: Context | None, warehouse: SnowplowWarehouse) -> Iterator[Row]:
        start, end = self.bounds(context)
        size = timedelta(hours=max(1, int(self.settings["window_hours"])))
        normalise = _Normaliser(self.map_event_type, warehouse.cursor)
        lo = start
        while lo < end:
            found = warehouse.first_cursor(lo, end)
            if found is None:
                break
            first = parse_ts(found).replace(tzinfo=None)
            # Skip the empty stretch: windows start on a whole multiple of their size.
            if first - lo >= size:
                lo = lo + size * ((first - lo) // size)
            hi = min(lo + size, end)
            label = f"window {format_ts(lo)}..{format_ts(hi)}"
            self.logger.info("Reading Snowplow events, %s", label)
            yield from self._window(warehouse.window(lo, hi), normalise, label)
            self.complete_window(context, format_ts(hi))
            lo = hi
        bookmark = self.bookmark(context)
        # Never move a bookmark back (a state from a sync with a later end_date).
        if bookmark is None or parse_ts(bookmark).replace(tzinfo=None) < end:
            self.complete_window(context, format_ts(end))

    def _window(
        self, rows: Iterator[Row | str], normalise: _Normaliser, label: str
    ) -> Iterator[Row]:
        kept: list[Row] = []
        seen: set[str] = set()
        for row in rows:
            if isinstance(row, str):
                self.skip_bad_record(label, f"invalid event: {row}")
                continue
            event_id = as_str(row.get("event_id"))
            if event_id is None or row.get("collector_tstamp") is None:
                self.skip_bad_record(label, "invalid event: event_id or collector_tstamp missing")
                continue
            if event_id in seen:
                self.duplicates += 1
                continue
            seen.add(event_id)
            kept.append(row)
        # Page pings by page view, transaction items by order. Only an order id ties an item
        # to its transaction: without one, neither is the other's.
        views = {_ping_key(r) for r in kept if r.get("event") == "page_view"}
        pings: dict[tuple[t.Any, ...], list[Row]] = defaultdict(list)
        orders = {as_str(r.get("tr_orderid")) for r in kept if r.get("event") == "transaction"}
        orders.discard(None)
        order_items: dict[str | None, list[Row]] = defaultdict(list)
        for row in kept:
            if row.get("event") == "page_ping":
                pings[_ping_key(row)].append(row)
            elif row.get("event") == "transaction_item":
                order_items[as_str(row.get("ti_orderid"))].append(row)
        order_items.pop(None, None)
        for row in kept:
            kind = row.get("event")
            if kind == "page_ping" and _ping_key(row) in views:
                continue
            if kind == "transaction_item" and as_str(row.get("ti_orderid")) in orders:
                continue
            try:
                if kind == "page_view":
                    event = normalise(row, pings=pings.get(_ping_key(row), []))
                elif kind == "page_ping":
                    event = normalise(row, pings=[row])
                elif kind == "transaction":
                    lines = order_items.get(as_str(row.get("tr_orderid")), [])
                    event = normalise(row, order_items=lines)
                else:
                    event = normalise(row)
            except (KeyError, TypeError, ValueError, OverflowError, AttributeError) as error:
                self.skip_bad_record(
                    f"{label}, event {row.get('event_id')}", f"invalid event: {error}"
                )
                continue
            yield t.cast("dict[str, t.Any]", event)


class _Normaliser:
    """Turn one atomic.events row (with its entities) into a canonical event."""

    def __init__(self, map_event_type: Callable[[str], str], cursor: str) -> None:
        self.map_event_type = map_event_type
        self.cursor = cursor

    def event_type(self, name: str, ecommerce: bool) -> str:
        kind = self.map_event_type(name)
        if ecommerce and kind == snake_case(name):
            return settings.ECOMMERCE_TYPES.get(name, kind)
        return kind

    def __call__(
        self,
        row: Row,
        *,
        pings: list[Row] | None = None,
        order_items: list[Row] | None = None,
    ) -> ClickstreamEvent:
        kind = str(row["event"])
        contexts: dict[str, list[dict[str, t.Any]]] = row["_contexts"]
        sdes: dict[str, dict[str, t.Any]] = row["_sdes"]
        event_ts = format_ts(parse_ts(row.get("derived_tstamp") or row["collector_tstamp"]))
        cursor_value = row.get(self.cursor) or row["collector_tstamp"]
        props = {
            k: _plain(v)
            for k, v in row.items()
            if v is not None and k not in _MAPPED and not k.startswith("_")
        }
        items: list[Item] = []
        order_id = revenue = currency = search_query = filters = None
        action = sdes.get(settings.ECOMMERCE_ACTION)
        name = as_str(row.get("event_name")) or kind
        if kind == "struct":
            name = as_str(row.get("se_action")) or "struct"
        elif kind in {"page_view", "page_ping", "transaction", "transaction_item"}:
            name = kind
        if action is not None and as_str(_get(action, "type")):
            name = str(_get(action, "type"))
        event_type = self.event_type(name, action is not None)
        if kind == "struct" and event_type == "search":
            search_query = as_str(row.get("se_label"))
        search = sdes.get(settings.SITE_SEARCH)
        if search is not None:
            # Shredded tables hold arrays and objects as JSON text.
            terms = _json(_get(search, "terms"))
            search_query = " ".join(map(str, terms)) if isinstance(terms, list) else as_str(terms)
            found = _json(_get(search, "filters"))
            filters = found if isinstance(found, dict) and found else None
            if event_type == snake_case(name):
                event_type = "search"
        for product in contexts.get(settings.ECOMMERCE_PRODUCT) or []:
            item = _product(product)
            if item is not None:
                items.append(item)
        for transaction in contexts.get(settings.ECOMMERCE_TRANSACTION) or []:
            order_id = as_str(_get(transaction, "transaction_id"))
            revenue = as_float(_get(transaction, "revenue"))
            currency = as_str(_get(transaction, "currency"))
        if kind == "transaction":
            order_id = as_str(row.get("tr_orderid"))
            revenue = as_float(row.get("tr_total"))
            currency = as_str(row.get("tr_currency"))
            items = [i for line in order_items or [] if (i := _legacy_item(line))]
        elif kind == "transaction_item":
            order_id = as_str(row.get("ti_orderid"))
            currency = as_str(row.get("ti_currency"))
            items = [i for i in [_legacy_item(row)] if i]
        if currency is None and items and action is not None:
            currency = as_str(
                _get((contexts.get(settings.ECOMMERCE_PRODUCT) or [{}])[0], "currency")
            )
        engaged_ms, scroll = engagement(pings or [])
        if contexts:
            props["contexts"] = _plain(contexts)
        if sdes:
            props["self_describing_event"] = _plain(sdes)
        if order_items:
            props["transaction_items"] = [
                _plain({k: v for k, v in line.items() if k.startswith("ti_") and v is not None})
                for line in order_items
            ]
        if pings and kind == "page_view":
            props["page_pings"] = len(pings)
        page_url = as_str(row.get("page_url"))
        experiment_id, variant_id, rec_id = experiment_fields(event_type, _sde_fields(sdes))
        return {
            "source": "snowplow",
            "event_id": str(row["event_id"]),
            "event_name": name,
            "event_type": event_type,
            "event_ts": event_ts,
            "ingested_at": format_ts(parse_ts(cursor_value)),
            "user_id": as_str(row.get("user_id")),
            "anonymous_id": as_str(row.get("domain_userid") or row.get("network_userid")),
            "session_id": as_str(row.get("domain_sessionid")),
            "page_url": page_url,
            "page_path": as_str(row.get("page_urlpath")) or path_of(page_url),
            "page_title": as_str(row.get("page_title")),
            "referrer": as_str(row.get("page_referrer")),
            "utm_source": as_str(row.get("mkt_source")),
            "utm_medium": as_str(row.get("mkt_medium")),
            "utm_campaign": as_str(row.get("mkt_campaign")),
            "utm_term": as_str(row.get("mkt_term")),
            "utm_content": as_str(row.get("mkt_content")),
            "search_query": search_query,
            "filters": filters,
            "items": items,
            "order_id": order_id,
            "revenue": revenue,
            "currency": currency,
            "engagement_ms": engaged_ms,
            "scroll_depth_pct": scroll,
            "media_progress_pct": None,
            "event_count": 1,
            "is_aggregate": False,
            "device_category": as_str(row.get("dvce_type")),
            "os": as_str(row.get("os_family")),
            "browser": as_str(row.get("br_family")),
            "country": as_str(row.get("geo_country")),
            "region": as_str(row.get("geo_region")),
            "city": as_str(row.get("geo_city")),
            "properties": props,
            "user_properties": {},
            "experiment_id": experiment_id,
            "variant_id": variant_id,
            "rec_id": rec_id,
        }


def _product(product: dict[str, t.Any]) -> Item | None:
    item_id = as_str(_get(product, "id"))
    if item_id is None:
        return None
    item: dict[str, t.Any] = {"item_id": item_id}
    for field in ("name", "category", "brand", "variant"):
        value = as_str(_get(product, field))
        if value is not None:
            item[field] = value
    for field in ("price", "quantity"):
        number = as_float(_get(product, field))
        if number is not None:
            item[field] = number
    position = as_float(_get(product, "position"))
    if position is not None:
        item["position"] = int(position)
    return t.cast("Item", item)


def _legacy_item(row: Row) -> Item | None:
    sku = as_str(row.get("ti_sku"))
    if sku is None:
        return None
    item: dict[str, t.Any] = {"item_id": sku}
    for field, column in (("name", "ti_name"), ("category", "ti_category")):
        value = as_str(row.get(column))
        if value is not None:
            item[field] = value
    for field, column in (("price", "ti_price"), ("quantity", "ti_quantity")):
        number = as_float(row.get(column))
        if number is not None:
            item[field] = number
    return t.cast("Item", item)


__all__ = ["SnowplowEventsStream", "engagement"]
