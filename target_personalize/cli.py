"""The ``personalize`` command: inspect the store, mine funnels, rank items."""

from __future__ import annotations

import click

from target_personalize.commands.summary import summary


@click.group()
@click.version_option(package_name="clickstream-personalize")
def main() -> None:
    """Personalization from your clickstream: inspect the store, mine funnels, rank items."""


main.add_command(summary)
