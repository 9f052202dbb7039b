"""``personalize experiment``: define, list and stop experiments, and read one out."""

from __future__ import annotations

import io
import json
import re
import typing as t
from datetime import timedelta
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from target_personalize.commands._options import DATABASE_URL
from target_personalize.engine import EngineError, EventStore
from target_personalize.engine.experiments import Experiment, ExperimentError
from target_personalize.engine.experiments.registry import ExperimentRegistry
from target_personalize.engine.experiments.report import readout_from_store, readout_html

__all__ = ["experiment", "parse_duration"]

_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([smhd])\s*")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
_WIDTH = 80


def parse_duration(text: str) -> timedelta:
    """``24h``, ``30m``, ``7d`` or ``90s`` as a time span.

    Raises:
        click.BadParameter: for any other form.
    """
    found = _DURATION.fullmatch(text)
    if not found:
        raise click.BadParameter(
            f"{text!r} is not a duration: write a number and s, m, h or d, e.g. 24h",
            param_hint="--attribution-window",
        )
    return timedelta(**{_UNITS[found.group(2)]: float(found.group(1))})


@click.group()
def experiment() -> None:
    """A/B tests of rankings: define, list, stop, and read out lift with intervals."""


def _fail(error: Exception) -> t.NoReturn:
    raise click.ClickException(str(error)) from error


@experiment.command()
@click.argument("name")
@click.option(
    "--variant",
    "variants",
    multiple=True,
    required=True,
    help="ID=RANKER, repeated: engine, objectives:conversion=1,margin=0.5, popularity, "
    "views_only or none.",
)
@click.option("--traffic", help="Percent of all visitors per variant, e.g. 50,50 (default even).")
@click.option("--conversion", default="purchase", show_default=True, help="Key conversion.")
@click.option("--control", help="The control variant (default: the first).")
@DATABASE_URL
def create(  # click passes every option by keyword
    *,
    name: str,
    variants: tuple[str, ...],
    traffic: str | None,
    conversion: str,
    control: str | None,
    database_url: str,
) -> None:
    """Define experiment NAME in the store; it runs until stopped."""
    try:
        defined = Experiment.from_cli(
            name, variants, traffic, conversion=conversion, control=control
        )
        with EventStore(database_url) as store:
            stored = ExperimentRegistry(store).create(defined)
    except (EngineError, ExperimentError) as error:
        _fail(error)
    split = ", ".join(
        f"{v.variant_id}={v.spec} {w * stored.experiment.coverage:.0%}"
        for v, w in zip(defined.variants, defined.weights, strict=True)
    )
    click.echo(f"Created experiment {name}: {split}; conversion {conversion}")


@experiment.command(name="list")
@DATABASE_URL
@click.option("--format", "output_format", type=click.Choice(["table", "json"]), default="table")
def list_command(database_url: str, output_format: str) -> None:
    """The experiments in the store, the newest first."""
    try:
        with EventStore(database_url) as store:
            found = ExperimentRegistry(store).list()
    except (EngineError, ExperimentError) as error:
        _fail(error)
    if output_format == "json":
        click.echo(json.dumps([s.as_dict() for s in found], indent=2))
        return
    table = Table(title="Experiments", title_justify="left")
    for column in ("id", "status", "created (UTC)", "variants"):
        table.add_column(column, overflow="fold")
    for stored in found:
        variants = ", ".join(f"{v.variant_id}={v.spec}" for v in stored.experiment.variants)
        table.add_row(
            stored.experiment.experiment_id,
            stored.status,
            f"{stored.created_at:%Y-%m-%d %H:%M}",
            variants,
        )
    Console(width=_WIDTH).print(table)


@experiment.command()
@click.argument("name")
@DATABASE_URL
def stop(name: str, database_url: str) -> None:
    """Stop experiment NAME: serving stops assigning; its data stay for the readout."""
    try:
        with EventStore(database_url) as store:
            stored = ExperimentRegistry(store).stop(name)
    except (EngineError, ExperimentError) as error:
        _fail(error)
    click.echo(f"Stopped experiment {name} at {stored.stopped_at:%Y-%m-%d %H:%M:%S} UTC")


@experiment.command()
@DATABASE_URL
@click.option("--experiment", "experiment_id", required=True, help="The experiment's id.")
@click.option("--conversion", help="Key conversion (default: the experiment's, else purchase).")
@click.option("--control", help="Control variant (default: the experiment's, else the first).")
@click.option("--sequential", is_flag=True, help="Always-valid intervals: look any day.")
@click.option(
    "--attribution-window",
    default="24h",
    show_default=True,
    help="View-through window after a list was shown (s, m, h or d).",
)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["table", "json", "html"]),
    default="table",
    show_default=True,
)
@click.option(
    "--output",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Write to this file instead of the terminal.",
)
def report(
    *,
    database_url: str,
    experiment_id: str,
    conversion: str | None,
    control: str | None,
    sequential: bool,
    attribution_window: str,
    output_format: str,
    output: Path | None,
) -> None:
    """Read out an experiment: per-variant figures, lift with 95% intervals, SRM, CUPED.

    Works for experiments defined here and for A/B tests run by other tools whose exposure
    events are in the store (an even split is then assumed for the sample-ratio check).
    """
    window = parse_duration(attribution_window)
    try:
        with EventStore(database_url) as store:
            result = readout_from_store(
                store,
                experiment_id,
                conversion=conversion,
                control=control,
                sequential=sequential,
                attribution_window=window,
            )
    except (EngineError, ExperimentError) as error:
        _fail(error)
    if output_format == "json":
        text = json.dumps(result, indent=2) + "\n"
    elif output_format == "html":
        text = readout_html(result)
    else:
        text = readout_table(result)
    if output is None:
        click.echo(text, nl=False)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as error:
        _fail(error)
    click.echo(f"Wrote {output}")


def _pct(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "n/a"
    return f"{value:+.1%}" if signed else f"{value:.2%}"


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.2f}"


def readout_table(result: dict[str, t.Any]) -> str:
    """The readout as text tables at most 80 columns wide."""
    console = Console(width=_WIDTH, record=True, file=io.StringIO())
    kind = "always-valid" if result["sequential"] else "fixed"
    console.print(
        f"Experiment {result['experiment_id']}: conversion {result['conversion']}, "
        f"control {result['control']}, {kind} 95% intervals",
        highlight=False,
    )
    variants = Table(title="Variants", title_justify="left")
    for column in ("variant", "visitors", "conv.", "rate", "rev/vis", "mrg/vis", "CTR", "attr."):
        variants.add_column(column, justify="left" if column == "variant" else "right")
    for v in result["variants"]:
        variants.add_row(
            v["variant_id"],
            f"{v['visitors']:,}",
            f"{v['conversions']:,}",
            _pct(v["conversion_rate"]),
            _num(v["revenue_per_visitor"]),
            _num(v["margin_per_visitor"]),
            _pct(v["ctr"]),
            f"{v['attributed_conversions']:,}",
        )
    console.print(variants)
    lifts = Table(title="Lift against the control", title_justify="left")
    for column in ("variant", "metric", "lift", "95% interval", "p", "CUPED lift"):
        lifts.add_column(column, justify="left" if column in ("variant", "metric") else "right")
    for lift in result["lift"]:
        interval = (
            f"{_pct(lift['ci_low'], True)} .. {_pct(lift['ci_high'], True)}"
            if lift["ci_low"] is not None
            else "waiting"
        )
        cuped = lift["cuped"]
        lifts.add_row(
            lift["variant_id"],
            lift["metric"],
            _pct(lift["estimate"], True),
            interval,
            "n/a" if lift["p_value"] is None else f"{lift['p_value']:.3g}",
            _pct(cuped["estimate"], True) if cuped else "",
        )
    console.print(lifts)
    srm = result["srm"]
    flag = "MISMATCH: do not trust the lifts" if srm["flagged"] else "ok"
    p = "n/a" if srm["p_value"] is None else f"{srm['p_value']:.3g}"
    console.print(
        f"Sample ratio: p = {p} ({flag}) · left out, in more than one variant: "
        f"{result['excluded']['multiple_variants']:,}",
        highlight=False,
    )
    waiting = {lift["reason"] for lift in result["lift"] if lift["reason"]}
    for reason in sorted(waiting):
        console.print(f"Note: {reason}", highlight=False)
    return console.export_text()
