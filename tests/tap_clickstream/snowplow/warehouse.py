"""A small Snowplow warehouse for the tests: atomic.events (real column names) and entities.

``create_shredded`` lays it out as the Postgres/Redshift loader does (one table per entity and
self-describing event, keyed by ``root_id``/``root_tstamp``, no ``load_tstamp``);
``create_wide`` as the Snowflake/BigQuery loaders do (``contexts_*`` / ``unstruct_event_*``
columns holding JSON, and ``load_tstamp``).

The seeded sessions (collector times in March 2024):

- s1 (user u1): a page view with two pings in the same window, an ecommerce product view,
  add to cart (duplicated row) and transaction with product and transaction entities;
- s2 (anonymous d2): a structured search, a custom structured event, a legacy transaction
  with two transaction items;
- s3: a page view at the end of one 6-hour window whose ping lands in the next one.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

ECOM = "com.snowplowanalytics.snowplow.ecommerce"
WEB_PAGE = "com_snowplowanalytics_snowplow_web_page_1"
PRODUCT = "com_snowplowanalytics_snowplow_ecommerce_product_1"
TRANSACTION = "com_snowplowanalytics_snowplow_ecommerce_transaction_1"
ACTION = "com_snowplowanalytics_snowplow_ecommerce_snowplow_ecommerce_action_1"

#: atomic.events columns (Postgres loader names and types), in table order.
EVENT_COLUMNS: dict[str, str] = {
    "app_id": "varchar(255)",
    "platform": "varchar(255)",
    "etl_tstamp": "timestamp",
    "collector_tstamp": "timestamp NOT NULL",
    "dvce_created_tstamp": "timestamp",
    "event": "varchar(128)",
    "event_id": "char(36)",
    "name_tracker": "varchar(128)",
    "v_tracker": "varchar(100)",
    "user_id": "varchar(255)",
    "user_ipaddress": "varchar(128)",
    "domain_userid": "varchar(128)",
    "domain_sessionidx": "int",
    "network_userid": "varchar(128)",
    "geo_country": "char(2)",
    "geo_region": "char(3)",
    "geo_city": "varchar(75)",
    "page_url": "text",
    "page_title": "varchar(2000)",
    "page_referrer": "text",
    "page_urlhost": "varchar(255)",
    "page_urlpath": "varchar(3000)",
    "mkt_medium": "varchar(255)",
    "mkt_source": "varchar(255)",
    "mkt_term": "varchar(255)",
    "mkt_content": "varchar(500)",
    "mkt_campaign": "varchar(255)",
    "se_category": "varchar(1000)",
    "se_action": "varchar(1000)",
    "se_label": "varchar(4096)",
    "se_property": "varchar(1000)",
    "se_value": "double precision",
    "tr_orderid": "varchar(255)",
    "tr_affiliation": "varchar(255)",
    "tr_total": "decimal(18,2)",
    "tr_tax": "decimal(18,2)",
    "tr_shipping": "decimal(18,2)",
    "ti_orderid": "varchar(255)",
    "ti_sku": "varchar(255)",
    "ti_name": "varchar(255)",
    "ti_category": "varchar(255)",
    "ti_price": "decimal(18,2)",
    "ti_quantity": "int",
    "pp_xoffset_min": "int",
    "pp_xoffset_max": "int",
    "pp_yoffset_min": "int",
    "pp_yoffset_max": "int",
    "useragent": "varchar(1000)",
    "br_family": "varchar(50)",
    "br_viewwidth": "int",
    "br_viewheight": "int",
    "os_family": "varchar(50)",
    "dvce_type": "varchar(50)",
    "doc_width": "int",
    "doc_height": "int",
    "tr_currency": "char(3)",
    "ti_currency": "char(3)",
    "dvce_sent_tstamp": "timestamp",
    "domain_sessionid": "char(128)",
    "derived_tstamp": "timestamp",
    "event_vendor": "varchar(1000)",
    "event_name": "varchar(1000)",
    "event_format": "varchar(128)",
    "event_version": "varchar(128)",
    "event_fingerprint": "varchar(128)",
    "true_tstamp": "timestamp",
}
#: Shredded tables: their own columns after the loader's metadata columns.
ENTITY_COLUMNS: dict[str, dict[str, str]] = {
    WEB_PAGE: {"id": "char(36) NOT NULL"},
    PRODUCT: {
        "id": "varchar(4096) NOT NULL",
        "name": "varchar(4096)",
        "category": "varchar(4096) NOT NULL",
        "price": "double precision NOT NULL",
        "list_price": "double precision",
        "quantity": "int",
        "brand": "varchar(4096)",
        "variant": "varchar(4096)",
        "currency": "varchar(3) NOT NULL",
        "position": "int",
    },
    TRANSACTION: {
        "transaction_id": "varchar(4096) NOT NULL",
        "revenue": "double precision NOT NULL",
        "currency": "varchar(3) NOT NULL",
        "payment_method": "varchar(4096) NOT NULL",
        "total_quantity": "int",
    },
    ACTION: {"type": "varchar(4096) NOT NULL", "name": "varchar(4096)"},
}
#: Each entity's schema vendor and name (its version is 1-0-0 here).
ENTITY_SCHEMAS = {
    WEB_PAGE: ("com.snowplowanalytics.snowplow", "web_page"),
    PRODUCT: (ECOM, "product"),
    TRANSACTION: (ECOM, "transaction"),
    ACTION: (ECOM, "snowplow_ecommerce_action"),
}
SHRED_META = {
    "schema_vendor": "varchar(128) NOT NULL",
    "schema_name": "varchar(128) NOT NULL",
    "schema_format": "varchar(128) NOT NULL",
    "schema_version": "varchar(128) NOT NULL",
    "root_id": "char(36) NOT NULL",
    "root_tstamp": "timestamp NOT NULL",
    "ref_root": "varchar(255) NOT NULL",
    "ref_tree": "varchar(1500) NOT NULL",
    "ref_parent": "varchar(255) NOT NULL",
}

T0 = datetime(2024, 3, 1, 10, 0, 0)


def _uuid(n: int) -> str:
    return f"00000000-0000-4000-8000-{n:012d}"


def _event(n: int, at: datetime, kind: str, **fields: Any) -> dict[str, Any]:
    row = {
        "app_id": "shop",
        "platform": "web",
        "collector_tstamp": at,
        "dvce_created_tstamp": at - timedelta(seconds=1),
        "derived_tstamp": at - timedelta(seconds=1),
        "etl_tstamp": at + timedelta(seconds=30),
        "event": kind,
        "event_id": _uuid(n),
        "event_name": kind if kind != "struct" else "event",
        "event_vendor": "com.google.analytics",
        "event_format": "jsonschema",
        "event_version": "1-0-0",
        "_contexts": {},
        "_sde": None,
    }
    row.update(fields)
    return row


def _ecom(n: int, at: datetime, action: str, contexts: dict[str, Any], **fields: Any) -> dict:
    return _event(
        n,
        at,
        "unstruct",
        event_vendor=ECOM,
        event_name="snowplow_ecommerce_action",
        event_version="1-0-2",
        _sde={"type": action},
        _contexts=contexts,
        **fields,
    )


S1 = {"user_id": "u1", "domain_userid": "d1", "domain_sessionid": "s1", "geo_country": "US"}
S2 = {"domain_userid": "d2", "domain_sessionid": "s2", "os_family": "Linux"}
S3 = {"domain_userid": "d3", "domain_sessionid": "s3"}
PAGE = {
    "page_url": "https://shop.example/products/42?ref=home",
    "page_urlpath": "/products/42",
    "page_title": "Red shoes",
    "page_referrer": "https://www.google.com/",
    "mkt_source": "google",
    "mkt_medium": "cpc",
    "mkt_campaign": "spring",
    "br_family": "Firefox",
}
SHOE = {"id": "42", "name": "Red shoes", "category": "shoes", "price": 19.99, "currency": "USD",
        "brand": "Acme"}  # fmt: skip
PING = {"br_viewheight": 800, "doc_height": 2000, "pp_yoffset_min": 0}


def _pv(page_view_id: str) -> dict[str, list[dict[str, Any]]]:
    return {WEB_PAGE: [{"id": page_view_id}]}


EVENTS: list[dict[str, Any]] = [
    _event(1, T0, "page_view", **S1, **PAGE, _contexts=_pv("pv-1")),
    _event(2, T0 + timedelta(seconds=6), "page_ping", **S1, **PAGE, **PING, pp_yoffset_max=500,
           _contexts=_pv("pv-1")),
    _event(3, T0 + timedelta(seconds=16), "page_ping", **S1, **PAGE, **PING, pp_yoffset_max=900,
           _contexts=_pv("pv-1")),
    _ecom(4, T0 + timedelta(seconds=20), "product_view", {**_pv("pv-1"), PRODUCT: [SHOE]}, **S1),
    _ecom(5, T0 + timedelta(seconds=40), "add_to_cart",
          {**_pv("pv-1"), PRODUCT: [{**SHOE, "quantity": 2}]}, **S1),
    _ecom(6, T0 + timedelta(minutes=2), "transaction", {
        PRODUCT: [{**SHOE, "quantity": 2}],
        TRANSACTION: [{"transaction_id": "o-1", "revenue": 39.98, "currency": "USD",
                       "payment_method": "card", "total_quantity": 2}],
    }, **S1),
    # The same event loaded twice (at-least-once delivery): emitted once.
    _ecom(5, T0 + timedelta(seconds=40), "add_to_cart",
          {**_pv("pv-1"), PRODUCT: [{**SHOE, "quantity": 2}]}, **S1),
    _event(8, T0 + timedelta(days=1), "struct", **S2, se_category="search", se_action="search",
           se_label="red shoes"),
    _event(9, T0 + timedelta(days=1, minutes=1), "struct", **S2, se_category="promo",
           se_action="banner-click", se_label="spring", se_value=3.5),
    _event(10, T0 + timedelta(days=1, minutes=5), "transaction", **S2, tr_orderid="o-2",
           tr_total=50, tr_currency="EUR", tr_affiliation="web"),
    _event(11, T0 + timedelta(days=1, minutes=5), "transaction_item", **S2, ti_orderid="o-2",
           ti_sku="A", ti_name="Socks", ti_category="socks", ti_price=20, ti_quantity=1),
    _event(12, T0 + timedelta(days=1, minutes=5), "transaction_item", **S2, ti_orderid="o-2",
           ti_sku="B", ti_name="Laces", ti_category="laces", ti_price=15, ti_quantity=2),
    _event(13, datetime(2024, 3, 3, 5, 58, 50), "page_view", **S3, **PAGE, _contexts=_pv("pv-3")),
    _event(14, datetime(2024, 3, 3, 6, 0, 5), "page_ping", **S3, **PAGE, **PING,
           pp_yoffset_max=1600, _contexts=_pv("pv-3")),
]  # fmt: skip

#: The events the stream emits: the pings of pv-1, the repeat and the items of o-2 fold in.
EMITTED = {_uuid(n) for n in (1, 4, 5, 6, 8, 9, 10, 13, 14)}
UUID = _uuid

S4 = {"domain_userid": "d4", "domain_sessionid": "s4"}
BOOT = {"id": "7", "name": "Boot", "category": "boots", "price": 80.0, "currency": "EUR",
        "position": 2, "variant": "black"}  # fmt: skip
#: Item cases beyond the sessions above (s4, March 3): a listing of several products (one
#: without id), legacy transactions and items without an order id (none folds into another),
#: an item without a SKU, and an item whose transaction never came (its name quoted, with a
#: backslash: JSON escapes).
ITEM_EVENTS: list[dict[str, Any]] = [
    _ecom(30, T0 + timedelta(days=2), "list_view", {PRODUCT: [
        BOOT, {**SHOE, "id": " ", "position": 3}, {**SHOE, "position": 1, "quantity": 1}]}, **S4),
    _event(31, T0 + timedelta(days=2, minutes=1), "transaction", **S4, tr_total=10,
           tr_currency="EUR"),
    _event(32, T0 + timedelta(days=2, minutes=1), "transaction_item", **S4, ti_sku="C",
           ti_name="Cap", ti_price=10, ti_quantity=1, ti_currency="EUR"),
    _event(33, T0 + timedelta(days=2, minutes=2), "transaction", **S4, tr_orderid="o-3",
           tr_total=7, tr_currency="EUR"),
    _event(34, T0 + timedelta(days=2, minutes=2), "transaction_item", **S4, ti_orderid="o-3",
           ti_sku="D", ti_price=7, ti_quantity=1),
    _event(35, T0 + timedelta(days=2, minutes=2), "transaction_item", **S4, ti_orderid="o-3",
           ti_name="No SKU", ti_price=1, ti_quantity=1),
    _event(36, T0 + timedelta(days=2, minutes=3), "transaction_item", **S4, ti_orderid="o-9",
           ti_sku="E", ti_name='Orphan "mini" \\ cap', ti_category="misc", ti_price=3, ti_quantity=4),
]  # fmt: skip
#: What the stream emits of ITEM_EVENTS: the lines of o-3 fold into it.
ITEM_EMITTED = {_uuid(n) for n in (30, 31, 32, 33, 36)}


def _ddl(name: str, columns: dict[str, str], schema: str) -> str:
    body = ", ".join(f'"{c}" {kind}' for c, kind in columns.items())
    return f'CREATE TABLE "{schema}"."{name}" ({body})'


def _atomic(row: dict[str, Any]) -> dict[str, Any]:
    return {c: row.get(c) for c in EVENT_COLUMNS}


def create_shredded(url: str, schema: str, events: list[dict[str, Any]] = EVENTS) -> None:
    """Lay out ``events`` as the Postgres loader does, in an existing schema."""
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.execute(sa.text(_ddl("events", EVENT_COLUMNS, schema)))
        for name, columns in ENTITY_COLUMNS.items():
            connection.execute(sa.text(_ddl(name, {**SHRED_META, **columns}, schema)))
        events_table = sa.table("events", *map(sa.column, EVENT_COLUMNS), schema=schema)
        connection.execute(sa.insert(events_table), [_atomic(r) for r in events])
        for row in events:
            shreds = dict(row["_contexts"])
            if row["_sde"] is not None:
                shreds[ACTION] = [row["_sde"]]
            for name, objects in shreds.items():
                columns = [*SHRED_META, *ENTITY_COLUMNS[name]]
                table = sa.table(name, *map(sa.column, columns), schema=schema)
                vendor, schema_name = ENTITY_SCHEMAS[name]
                for obj in objects:
                    meta = {
                        "schema_vendor": vendor,
                        "schema_name": schema_name,
                        "schema_format": "jsonschema",
                        "schema_version": "1-0-0",
                        "root_id": row["event_id"],
                        "root_tstamp": row["collector_tstamp"],
                        "ref_root": "events",
                        "ref_tree": f'["events","{schema_name}"]',
                        "ref_parent": "events",
                    }
                    connection.execute(sa.insert(table), [{**meta, **obj}])
    engine.dispose()


def wide_row(row: dict[str, Any]) -> dict[str, Any]:
    """An events row of the wide layout: entities as JSON columns, plus load_tstamp."""
    wide = _atomic(row)
    wide["load_tstamp"] = row["collector_tstamp"] + timedelta(minutes=1)
    for name in (WEB_PAGE, PRODUCT, TRANSACTION):
        objects = row["_contexts"].get(name)
        wide[f"contexts_{name}"] = json.dumps(objects) if objects else None
    wide[f"unstruct_event_{ACTION}"] = json.dumps(row["_sde"]) if row["_sde"] else None
    return wide


WIDE_COLUMNS = {
    **{c: kind.replace(" NOT NULL", "") for c, kind in EVENT_COLUMNS.items()},
    "load_tstamp": "timestamp",
    **{f"contexts_{name}": "varchar" for name in (WEB_PAGE, PRODUCT, TRANSACTION)},
    f"unstruct_event_{ACTION}": "varchar",
}


def create_wide(
    url: str,
    schema: str = "atomic",
    rows: list[dict[str, Any]] | None = None,
    columns: dict[str, str] = WIDE_COLUMNS,
) -> None:
    """Lay out the events as the Snowflake/BigQuery loaders do (JSON held as text)."""
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
        connection.execute(sa.text(_ddl("events", columns, schema)))
        table = sa.table("events", *map(sa.column, columns), schema=schema)
        connection.execute(sa.insert(table), rows or [wide_row(r) for r in EVENTS])
    engine.dispose()
