"""Options shared by the ``personalize`` subcommands."""

from __future__ import annotations

import click

from target_personalize.engine import DEFAULT_DATABASE_URL

__all__ = ["DATABASE_URL", "FORMAT"]

DATABASE_URL = click.option(
    "--database-url",
    envvar="PERSONALIZE_DATABASE_URL",
    default=DEFAULT_DATABASE_URL,
    show_default=True,
    help="The engine's store (env PERSONALIZE_DATABASE_URL).",
)
FORMAT = click.option(
    "--format",
    "output_format",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="A readable table, or JSON for scripts.",
)
