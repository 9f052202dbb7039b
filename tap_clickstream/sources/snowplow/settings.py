"""Snowplow constants: layouts by warehouse, defaults, and the page-ping model's parameters."""

from __future__ import annotations

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
DEFAULT_SCHEMA = "atomic"
DEFAULT_LOOKBACK_HOURS = 6
DEFAULT_WINDOW_HOURS = 6
DEFAULT_HISTORY_DAYS = 30
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
