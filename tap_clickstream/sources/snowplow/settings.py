"""Snowplow settings (the ``snowplow`` block) and constants: layouts, the page-ping model."""

from __future__ import annotations

import typing as t

from singer_sdk import typing as th

from tap_clickstream.source_settings import (
    SourceSettings,
    sqlalchemy_url_description,
    sqlalchemy_url_errors,
    whole_number_errors,
)

LAYOUTS = ("auto", "wide", "shredded")
#: The layout each warehouse's loader writes, by SQLAlchemy dialect name (``layout: auto``).
#: Snowflake, BigQuery and Databricks get one wide ``events`` table; the Postgres and Redshift
#: loaders shred each entity and self-describing event into a table of its own.
DIALECT_LAYOUTS = {
    "snowflake": "wide",
    "bigquery": "wide",
    "databricks": "wide",
    "duckdb": "wide",
    "postgresql": "shredded",
    "redshift": "shredded",
}
#: The incremental cursor: ``load_tstamp`` where the loader writes it (RDB Loader >= 4,
#: BigQuery Loader >= 1, Snowflake Loader), else ``collector_tstamp`` (Postgres loader).
CURSOR_COLUMNS = ("load_tstamp", "collector_tstamp")
#: Columns of shredded tables that locate the entity, not part of its data.
SHRED_COLUMNS = frozenset(
    {
        "schema_vendor",
        "schema_name",
        "schema_format",
        "schema_version",
        "root_id",
        "root_tstamp",
        "ref_root",
        "ref_tree",
        "ref_parent",
    }
)
#: Page-ping model of the Snowplow web package (dbt-snowplow-web): seconds between pings
#: (``heartbeatDelay``) and before the first one (``minimumVisitLength``).
HEARTBEAT_SECONDS = 10
MIN_VISIT_SECONDS = 5
WEB_PAGE = "com_snowplowanalytics_snowplow_web_page_1"
ECOMMERCE_ACTION = "com_snowplowanalytics_snowplow_ecommerce_snowplow_ecommerce_action_1"
ECOMMERCE_PRODUCT = "com_snowplowanalytics_snowplow_ecommerce_product_1"
ECOMMERCE_TRANSACTION = "com_snowplowanalytics_snowplow_ecommerce_transaction_1"
SITE_SEARCH = "com_snowplowanalytics_snowplow_site_search_1"
#: Snowplow ecommerce action types -> canonical event types, where the crosswalk has none.
ECOMMERCE_TYPES = {
    "product_view": "product_view",
    "list_click": "product_view",
    "list_view": "category_view",
    "add_to_cart": "add_to_cart",
    "remove_from_cart": "remove_from_cart",
    "checkout_step": "begin_checkout",
    "transaction": "purchase",
}

SCHEMA = th.ObjectType(
    th.Property(
        "sqlalchemy_url",
        th.StringType,
        secret=True,
        title="Warehouse URL",
        description=sqlalchemy_url_description(
            "warehouse holding the Snowplow events table",
            "postgresql+psycopg://user:pass@host/db or snowflake://user@account/db",
        ),
    ),
    th.Property(
        "schema",
        th.StringType,
        default="atomic",
        title="Schema",
        description="Schema (BigQuery: dataset) of the events table.",
    ),
    th.Property(
        "layout",
        th.StringType,
        default="auto",
        allowed_values=list(LAYOUTS),
        title="Layout",
        description=(
            "wide (entities as contexts_* / unstruct_event_* columns: Snowflake, BigQuery, "
            "Databricks) or shredded (one table per entity: Redshift, Postgres); auto picks "
            "by the URL's dialect."
        ),
    ),
    th.Property(
        "lookback_hours",
        th.IntegerType,
        default=6,
        title="Lookback (hours)",
        description="Hours of load time before the bookmark read again on each sync.",
    ),
    th.Property(
        "window_hours",
        th.IntegerType,
        default=6,
        title="Window (hours)",
        description="Hours of load time per query. State is saved after each window.",
    ),
    additional_properties=False,
)


def check(block: dict[str, t.Any]) -> list[str]:
    """The Snowplow rules JSON schema cannot express."""
    errors: list[str] = []
    if not block.get("sqlalchemy_url"):
        errors.append("snowplow.sqlalchemy_url is required to read the Snowplow events table")
    else:
        errors += sqlalchemy_url_errors(block, "snowplow")
    schema = block.get("schema")
    if not isinstance(schema, str) or not schema.strip():
        errors.append(f"snowplow.schema must name a schema, not {schema!r}")
    errors += whole_number_errors(block, "snowplow", "lookback_hours", 0)
    errors += whole_number_errors(block, "snowplow", "window_hours", 1)
    return errors


SETTINGS = SourceSettings(
    key="snowplow",
    title="Snowplow",
    description="Snowplow atomic events in a SQL warehouse (stream snowplow_events).",
    schema=SCHEMA,
    groups=(("sqlalchemy_url",),),
    check=check,
)
