"""Snowplow atomic events read from a SQL warehouse (Postgres, Redshift, Snowflake, BigQuery)."""
