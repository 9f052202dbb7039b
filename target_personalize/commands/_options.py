"""Options shared by the ``personalize`` subcommands."""

from __future__ import annotations

from collections.abc import Sequence

import click

from target_personalize.engine import DEFAULT_DATABASE_URL, Objectives, RankerError

__all__ = ["DATABASE_URL", "FORMAT", "parse_objectives"]

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


def parse_objectives(pairs: Sequence[str]) -> Objectives | None:
    """Parse repeated ``--objective NAME=WEIGHT`` options (None when there are none)."""
    if not pairs:
        return None
    try:
        return Objectives.from_pairs(pairs)
    except RankerError as error:
        raise click.BadParameter(str(error), param_hint="--objective") from None
