"""Options shared by the ``personalize`` subcommands."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import click
from rich.console import Console
from sqlalchemy.engine import make_url

from target_personalize.engine import DEFAULT_DATABASE_URL, EventStore, Objectives, RankerError

__all__ = [
    "DATABASE_URL",
    "EVENTS_TABLE",
    "FORMAT",
    "event_types",
    "open_existing_store",
    "parse_objectives",
    "warn_unknown_conversion",
]

_stderr = Console(stderr=True)

DATABASE_URL = click.option(
    "--database-url",
    envvar="PERSONALIZE_DATABASE_URL",
    default=DEFAULT_DATABASE_URL,
    show_default=True,
    help="The engine's store (env PERSONALIZE_DATABASE_URL).",
)
EVENTS_TABLE = click.option(
    "--events-table",
    envvar="PERSONALIZE_EVENTS_TABLE",
    metavar="SCHEMA.VIEW",
    help="Mine this table or view of the --database-url database in place of the store's "
    "events: e.g. a canonical view over Snowplow or GA4 events (tap-clickstream --emit-view; "
    "docs/warehouse-views.md). Nothing is copied or created (env PERSONALIZE_EVENTS_TABLE).",
)
FORMAT = click.option(
    "--format",
    "output_format",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="A readable table, or JSON for scripts.",
)


def parse_objectives(pairs: Sequence[str]) -> Objectives | None:
    """Parse repeated ``--objective NAME=WEIGHT`` options (None when there are none)."""
    if not pairs:
        return None
    try:
        return Objectives.from_pairs(pairs)
    except RankerError as error:
        raise click.BadParameter(str(error), param_hint="--objective") from None


def _duckdb_file(database_url: str) -> Path | None:
    """The file of a DuckDB URL (``None`` for other stores and in-memory DuckDB)."""
    if "://" not in database_url:
        return Path(database_url)
    url = make_url(database_url)
    if url.get_backend_name() != "duckdb" or url.database in {None, "", ":memory:"}:
        return None
    return Path(str(url.database))


def open_existing_store(database_url: str) -> EventStore:
    """Open a store that must already hold events (never create an empty one).

    Raises:
        click.ClickException: when the DuckDB file does not exist or the store has no events.
    """
    file = _duckdb_file(database_url)
    if file is not None and not file.exists():
        raise click.ClickException(
            f"no store at {file}: load events first (meltano run tap-clickstream "
            "target-personalize), or point --database-url (env PERSONALIZE_DATABASE_URL) at "
            "the store"
        )
    store = EventStore(database_url)
    if not event_types(store):
        store.close()
        raise click.ClickException(
            f"the store {database_url} holds no events: load some first (meltano run "
            "tap-clickstream target-personalize)"
        )
    return store


def event_types(store: EventStore) -> dict[str, int]:
    """Events per event type in the store, most frequent first."""
    rows = store.query("SELECT event_type, count(*) FROM events GROUP BY 1 ORDER BY 2 DESC, 1")
    return {str(kind): int(count) for kind, count in rows}


def warn_unknown_conversion(store: EventStore, conversion: str) -> None:
    """Say on stderr when the store has no event of the key conversion, listing its types."""
    types = event_types(store)
    if conversion not in types:
        known = ", ".join(f"{kind} ({count:,})" for kind, count in types.items())
        _stderr.print(
            f"[yellow]Warning:[/] no {conversion!r} events in the store, so conversion "
            f"figures and the conversion dial have nothing to learn from. Its event types: "
            f"{known}. Give one with --conversion."
        )
