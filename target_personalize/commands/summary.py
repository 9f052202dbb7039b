"""``personalize summary``: what the store holds."""

from __future__ import annotations

import json
import typing as t

import click
from rich.console import Console
from rich.table import Table

from target_personalize.commands._options import DATABASE_URL, FORMAT
from target_personalize.engine import EngineError, EventStore

if t.TYPE_CHECKING:
    from target_personalize.engine import StoreSummary


@click.command()
@DATABASE_URL
@FORMAT
def summary(database_url: str, output_format: str) -> None:
    """What the store holds: events by source and type, users, sessions, items, time range."""
    try:
        with EventStore(database_url) as store:
            result = store.summary()
    except EngineError as error:
        raise click.ClickException(str(error)) from error
    if output_format == "json":
        click.echo(json.dumps(result.as_dict(), indent=2))
    else:
        _print_summary(result, database_url)


def _print_summary(result: StoreSummary, database_url: str) -> None:
    console = Console()
    table = Table(title="Events in the store", title_justify="left")
    table.add_column("source")
    table.add_column("event type")
    table.add_column("events", justify="right")
    for source, event_type, count in result.events_by_source_type:
        table.add_row(source, event_type, f"{count:,}")
    table.add_section()
    table.add_row("all", "", f"{result.events:,}", style="bold")
    console.print(table)
    span = (
        f"{result.first_event:%Y-%m-%d %H:%M:%S} .. {result.last_event:%Y-%m-%d %H:%M:%S} UTC"
        if result.first_event and result.last_event
        else "no events"
    )
    console.print(
        f"users {result.users:,} · sessions {result.sessions:,} · items {result.items:,} "
        f"(catalog {result.catalog_items:,}) · {span} · rejected records {result.rejects:,}"
    )
