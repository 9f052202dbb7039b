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


def parse_objectives(pairs: Sequence[str]) -> dict[str, float] | None:
    """Parse repeated ``--objective NAME=WEIGHT`` options (None when there are none)."""
    if not pairs:
        return None
    parsed: dict[str, float] = {}
    for pair in pairs:
        name, sep, weight = pair.partition("=")
        try:
            parsed[name.strip()] = float(weight)
        except ValueError:
            sep = ""
        if not sep:
            raise click.BadParameter(f"{pair!r}: expected NAME=WEIGHT", param_hint="--objective")
    try:
        Objectives.parse(parsed)
    except RankerError as error:
        raise click.BadParameter(str(error), param_hint="--objective") from None
    return parsed
