"""``personalize tradeoff``: what each dial setting earns on held-out sessions, before it is moved."""

from __future__ import annotations

import html
import json
import math
from datetime import datetime
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from target_personalize.commands._options import (
    DATABASE_URL,
    FORMAT,
    open_existing_store,
    warn_unknown_conversion,
)
from target_personalize.engine import (
    EngineError,
    Objectives,
    SessionRanker,
    interactions_from_store,
    load_ranker,
    read_split_file,
)
from target_personalize.engine.evaluation.splits import prepare_fixed_split, prepare_split
from target_personalize.engine.evaluation.tradeoff import (
    MIN_PREDICTIONS,
    DialPoint,
    Interval,
    TradeoffReport,
    objective_grid,
    tradeoff,
)
from target_personalize.engine.ranking.interactions import to_epoch

__all__ = ["tradeoff_command"]

_stderr = Console(stderr=True)


@click.command("tradeoff")
@DATABASE_URL
@click.option(
    "--conversion", default="purchase", show_default=True, help="The key conversion (event type)."
)
@click.option(
    "--objective",
    "ranges",
    multiple=True,
    metavar="NAME=LOW..HIGH",
    help="A dial and the range to sweep, e.g. margin=0..2 (repeatable; every combination is "
    "tried). Default: conversion=0..1 and margin=0..1.",
)
@click.option(
    "--steps", default=3, show_default=True, type=click.IntRange(min=2), help="Values per range."
)
@click.option(
    "-k", "k", default=20, show_default=True, type=click.IntRange(min=1), help="List length."
)
@click.option("--cut", type=click.DateTime(), help="Split time (UTC): train before, test after.")
@click.option(
    "--test-days", default=1.0, show_default=True, type=float, help="Without --cut: test days."
)
@click.option(
    "--train",
    "train_file",
    type=click.Path(exists=True, dir_okay=False),
    help="A fixed training file (as `evaluate --train`), instead of the store.",
)
@click.option(
    "--test", "test_file", type=click.Path(exists=True, dir_okay=False), help="Its test file."
)
@click.option(
    "--html",
    "html_out",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Also write the frontier as a self-contained HTML page with a chart.",
)
@FORMAT
def tradeoff_command(
    *,
    database_url: str,
    conversion: str,
    ranges: tuple[str, ...],
    steps: int,
    k: int,
    cut: datetime | None,
    test_days: float,
    train_file: str | None,
    test_file: str | None,
    html_out: Path | None,
    output_format: str,
) -> None:
    """Sweep the objective dials on held-out sessions and show the frontier.

    Per setting: HR@k, conversion hit@k, realized value@k (the value of later-converted items
    the list held, over all of it) and the expected value per list (sum of P x value), each
    with a 90% bootstrap interval over test sessions. Settings marked * are on the frontier
    (no other setting does better on both conversions and realized value); the setting the
    saved model uses is marked <.
    """
    if (train_file is None) != (test_file is None):
        raise click.UsageError("--train and --test go together")
    try:
        settings = objective_grid(ranges, steps)
    except EngineError as error:
        raise click.BadParameter(str(error), param_hint="--objective") from None
    current: Objectives | None = None
    try:
        if train_file and test_file:
            train, test = prepare_fixed_split(
                read_split_file(train_file), read_split_file(test_file)
            )
        else:
            with open_existing_store(database_url) as store:
                warn_unknown_conversion(store, conversion)
                saved = load_ranker(store)
                current = saved.objectives if saved is not None else None
                train, test, _ = prepare_split(
                    interactions_from_store(store),
                    cut=None if cut is None else to_epoch(cut),
                    test_days=test_days,
                )
        with _stderr.status(f"Replaying the test sessions under {len(settings)} settings..."):
            report = tradeoff(
                SessionRanker(random_state=0),
                train,
                test,
                settings,
                k=k,
                key_conversion=conversion,
                current=current,
            )
    except EngineError as error:
        raise click.ClickException(str(error)) from error
    if report.too_small:
        _stderr.print(
            f"[yellow]Warning:[/] only {report.predictions:,} predictions (under "
            f"{MIN_PREDICTIONS}): the intervals are too wide to tell the settings apart."
        )
    elif report.conversion_predictions < MIN_PREDICTIONS:
        _stderr.print(
            f"[yellow]Warning:[/] only {report.conversion_predictions:,} predictions with a "
            f"later conversion (under {MIN_PREDICTIONS}): conversion hit and realized value "
            "are too uncertain to tell close settings apart."
        )
    if html_out is not None:
        try:
            html_out.parent.mkdir(parents=True, exist_ok=True)
            html_out.write_text(frontier_page(report), encoding="utf-8")
        except OSError as error:
            raise click.ClickException(f"cannot write {html_out}: {error}") from error
        _stderr.print(f"Wrote {html_out}")
    if output_format == "json":
        click.echo(json.dumps(report.as_dict(), indent=2))
        return
    console = Console()
    print_tradeoff(report, console if console.is_terminal else Console(width=80))


def _cell(interval: Interval, digits: int = 3) -> str:
    if math.isnan(interval.value):
        return "-"
    half = (interval.high - interval.low) / 2
    return f"{interval.value:.{digits}f}±{half:.{digits}f}"


def _value_note(report: TradeoffReport) -> str:
    if report.value_kind == "price":
        return "value = price (the catalog has no margin or cost)"
    return f"value = {report.value_kind}"


def print_tradeoff(report: TradeoffReport, console: Console) -> None:
    """Print the frontier as a table that fits 80 columns."""
    k = report.k
    table = Table(
        title=f"What each dial earns at k={k} ({report.confidence:.0%} intervals)",
        title_justify="left",
    )
    table.add_column("setting", ratio=1, overflow="fold")
    for name in (f"HR@{k}", f"conv.\nhit@{k}", f"realized\nvalue@{k}", "expected\nvalue"):
        table.add_column(name, justify="right", no_wrap=True)
    table.add_column("", no_wrap=True)
    for point in report.points:
        digits = 1 if point.expected_value.value >= 10 else 3
        table.add_row(
            point.objectives.label(),
            _cell(point.hit_rate),
            _cell(point.conversion_hit_rate),
            _cell(point.realized_value),
            _cell(point.expected_value, digits),
            ("*" if point.on_frontier else "")
            + ("<" if point.objectives == report.current else ""),
        )
    console.print(table)
    console.print(
        f"{report.sessions:,} test sessions, {report.predictions:,} predictions, "
        f"{report.conversion_predictions:,} with a later add-to-cart or conversion; "
        f"{_value_note(report)}. * on the frontier, < the saved model's setting."
    )


# The HTML page: conversion hit (x) against realized value (y), with their intervals.

_W, _H, _PAD = 560, 380, 56


def frontier_page(report: TradeoffReport) -> str:
    """A self-contained HTML page: the frontier chart (inline SVG) and the table."""
    title = f"What each dial earns at k={report.k}"
    rows = "".join(
        "<tr>"
        + "".join(
            f"<td>{html.escape(c)}</td>"
            for c in (
                p.objectives.label(),
                _cell(p.hit_rate),
                _cell(p.conversion_hit_rate),
                _cell(p.realized_value),
                _cell(p.expected_value),
                ("frontier" if p.on_frontier else "")
                + (" current" if p.objectives == report.current else ""),
            )
        )
        + "</tr>"
        for p in report.points
    )
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>body{{font-family:sans-serif;margin:2em}}"
        "td,th{padding:2px 10px;text-align:right}td:first-child{text-align:left}</style>"
        f"</head><body><h1>{html.escape(title)}</h1>{_chart(report.points, report.current)}"
        f"<p>{report.sessions:,} test sessions, {report.predictions:,} predictions, "
        f"{report.conversion_predictions:,} with a later add-to-cart or conversion; "
        f"{html.escape(_value_note(report))}; {report.confidence:.0%} bootstrap intervals over "
        "sessions.</p><table><tr><th>setting</th><th>HR</th><th>conversion hit</th>"
        f"<th>realized value</th><th>expected value / list</th><th></th></tr>{rows}</table>"
        "</body></html>"
    )


def _chart(points: tuple[DialPoint, ...], current: Objectives | None) -> str:
    usable = [
        p
        for p in points
        if not math.isnan(p.conversion_hit_rate.value) and not math.isnan(p.realized_value.value)
    ]
    if not usable:
        return "<p>No conversions in the test sessions: nothing to chart.</p>"
    xs = [v for p in usable for v in (p.conversion_hit_rate.low, p.conversion_hit_rate.high)]
    ys = [v for p in usable for v in (p.realized_value.low, p.realized_value.high)]
    x0, x1 = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 0.01
    y0, y1 = min(ys), max(ys) if max(ys) > min(ys) else min(ys) + 0.01

    def sx(v: float) -> float:
        return _PAD + (v - x0) / (x1 - x0) * (_W - 2 * _PAD)

    def sy(v: float) -> float:
        return _H - _PAD - (v - y0) / (y1 - y0) * (_H - 2 * _PAD)

    parts = [
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{_W}' height='{_H}' "
        "role='img' aria-label='conversion hit against realized value per dial setting'>",
        f"<line x1='{_PAD}' y1='{_H - _PAD}' x2='{_W - _PAD}' y2='{_H - _PAD}' stroke='#333'/>",
        f"<line x1='{_PAD}' y1='{_PAD}' x2='{_PAD}' y2='{_H - _PAD}' stroke='#333'/>",
        f"<text x='{_W / 2}' y='{_H - 16}' text-anchor='middle'>conversion hit "
        f"({x0:.3f} to {x1:.3f})</text>",
        f"<text x='16' y='{_H / 2}' transform='rotate(-90 16 {_H / 2})' "
        f"text-anchor='middle'>realized value ({y0:.3f} to {y1:.3f})</text>",
    ]
    frontier = sorted(
        (p for p in usable if p.on_frontier), key=lambda p: p.conversion_hit_rate.value
    )
    if len(frontier) > 1:
        path = " ".join(
            f"{sx(p.conversion_hit_rate.value):.1f},{sy(p.realized_value.value):.1f}"
            for p in frontier
        )
        parts.append(f"<polyline points='{path}' fill='none' stroke='#2a7' stroke-width='2'/>")
    # Settings that land on the same spot share one label.
    labels: dict[tuple[float, float], list[str]] = {}
    for p in usable:
        spot = (round(sx(p.conversion_hit_rate.value), 1), round(sy(p.realized_value.value), 1))
        labels.setdefault(spot, []).append(p.objectives.label())
    for p in usable:
        x, y = sx(p.conversion_hit_rate.value), sy(p.realized_value.value)
        colour = "#c33" if p.objectives == current else ("#2a7" if p.on_frontier else "#888")
        parts += [
            f"<line x1='{sx(p.conversion_hit_rate.low):.1f}' y1='{y:.1f}' "
            f"x2='{sx(p.conversion_hit_rate.high):.1f}' y2='{y:.1f}' stroke='{colour}' "
            "stroke-opacity='.4'/>",
            f"<line x1='{x:.1f}' y1='{sy(p.realized_value.low):.1f}' x2='{x:.1f}' "
            f"y2='{sy(p.realized_value.high):.1f}' stroke='{colour}' stroke-opacity='.4'/>",
            f"<circle cx='{x:.1f}' cy='{y:.1f}' r='4' fill='{colour}'>"
            f"<title>{html.escape(p.objectives.label())}</title></circle>",
        ]
    for (x, y), names in labels.items():
        parts.append(
            f"<text x='{x + 6:.1f}' y='{y - 6:.1f}' font-size='11'>"
            f"{html.escape(' / '.join(names))}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)
