"""The event store: canonical events, the catalog and rejects, in DuckDB, PostgreSQL or Snowflake.

``event_store`` (:class:`~target_personalize.engine.EventStore`, idempotent loads) over
``backends`` (one connection per database kind; Snowflake's in ``snowflake``), ``columns``
(the canonical columns), ``records`` (checks and coercion of incoming records), ``keys`` (the
key filter of a long-running writer) and ``views`` (the SQL views the funnel and the ranker
read).
The public names are exported by :mod:`target_personalize.engine`.
"""
