"""``personalize report``: the funnel toward the key conversion as one self-contained HTML page."""

from __future__ import annotations

import typing as t
from pathlib import Path

import click

from target_personalize.commands.funnel import (
    FUNNEL_OPTIONS,
    open_store,
    progress_bar,
    run_funnels,
)
from target_personalize.engine import EngineError, write_report

__all__ = ["report"]


@click.command()
@FUNNEL_OPTIONS
@click.option(
    "--out",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    default=Path("report.html"),
    show_default=True,
    help="Where to write the page.",
)
@click.option("--title", help="The page title (default: Funnel toward CONVERSION).")
def report(
    database_url: str, events_table: str | None, out: Path, title: str | None, **options: t.Any
) -> None:
    """Write an HTML report of the funnel toward the key conversion.

    One page with no external assets: the discovered funnel as a chart with drop-off (and the
    explicit funnel of --steps, if given), the top paths, each event type's contribution and
    weight, the time-to-convert distribution and the implicit signals.
    """
    try:
        with open_store(database_url, events_table) as store, progress_bar() as bar:
            found, named = run_funnels(store, options, discovered=True, progress=bar)
    except EngineError as error:
        raise click.ClickException(str(error)) from error
    if found is None:  # pragma: no cover - always computed with discovered=True
        raise click.ClickException("nothing to report")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        write_report(out, found, explicit=named, title=title)
    except OSError as error:
        raise click.ClickException(f"cannot write {out}: {error}") from error
    click.echo(
        f"Wrote {out}: {found.converters:,} of {found.units:,} {found.unit}s converted "
        f"({found.conversion})"
    )
