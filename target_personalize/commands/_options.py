"""Options shared by the ``personalize`` subcommands."""

from __future__ import annotations

from collections.abc import Sequence

import click

from target_personalize.engine import DEFAULT_DATABASE_URL, Objectives, RankerError

__all__ = ["DATABASE_URL", "EVENTS_TABLE", "FORMAT", "parse_objectives"]

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
