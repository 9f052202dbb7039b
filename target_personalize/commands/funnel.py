"""``personalize funnel``: the funnel toward the key conversion, discovered or explicit."""

from __future__ import annotations

import json
import re
import typing as t
from contextlib import contextmanager
from datetime import datetime, timedelta

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from target_personalize.commands._options import DATABASE_URL, EVENTS_TABLE, FORMAT
from target_personalize.engine import (
    DEFAULT_WINDOW,
    EngineError,
    EventStore,
    discover_funnel,
    explicit_funnel,
)

if t.TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from target_personalize.engine import DiscoveredFunnel, Funnel
    from target_personalize.engine.funnel.shared import ProgressCallback

__all__ = [
    "FUNNEL_OPTIONS",
    "funnel",
    "open_store",
    "parse_window",
    "progress_bar",
    "run_funnels",
]

_WINDOW = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_DATE_FORMATS = ["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S"]


def parse_window(text: str | None) -> timedelta | str | None:
    """``7d``, ``12h``, ``30m``, ``90s``, ``2w`` -> a timedelta; ``none`` -> None.

    Returns the string ``"default"`` when no window was given.

    Raises:
        click.BadParameter: for anything else.
    """
    if text is None:
        return "default"
    if text.strip().lower() in {"none", "unbounded", "off"}:
        return None
    match = _WINDOW.match(text)
    if not match:
        raise click.BadParameter(
            f"{text!r} is not a window: use a number and s, m, h, d or w (e.g. 7d, 30m), or none"
        )
    return timedelta(**{_UNITS[match.group(2)]: float(match.group(1))})


def _window_callback(
    _ctx: click.Context, _param: click.Parameter, value: str | None
) -> timedelta | str | None:
    return parse_window(value)


def _steps_callback(_ctx: click.Context, _param: click.Parameter, value: str | None) -> list[str]:
    if value is None:
        return []
    steps = [s.strip() for s in value.split(",")]
    if not all(steps):
        raise click.BadParameter("a comma-separated list of event types or names, none empty")
    return steps


def _compose(*decorators: Callable[[t.Any], t.Any]) -> Callable[[t.Any], t.Any]:
    def apply(function: t.Any) -> t.Any:
        for decorator in reversed(decorators):
            function = decorator(function)
        return function

    return apply


#: Options that ``funnel`` and ``report`` share.
FUNNEL_OPTIONS = _compose(
    DATABASE_URL,
    EVENTS_TABLE,
    click.option(
        "--conversion",
        required=True,
        help="The key conversion: an event type (purchase) or a raw event name.",
    ),
    click.option(
        "--steps",
        callback=_steps_callback,
        help="Explicit funnel steps, comma-separated (the conversion is appended if not last).",
    ),
    click.option(
        "--unit",
        type=click.Choice(["session", "user"]),
        default="session",
        show_default=True,
        help="Count sessions or users.",
    ),
    click.option(
        "--order",
        type=click.Choice(["loose", "strict"]),
        default="loose",
        show_default=True,
        help="Explicit funnels: other events may happen between steps (loose) or not (strict).",
    ),
    click.option(
        "--window",
        callback=_window_callback,
        help="Conversion window from step 1, e.g. 7d, 12h, 30m, or none. "
        "Default: 7d for explicit funnels, none for discovered ones.",
    ),
    click.option(
        "--since",
        type=click.DateTime(_DATE_FORMATS),
        help="Only events at or after this UTC date/time.",
    ),
    click.option(
        "--until",
        type=click.DateTime(_DATE_FORMATS),
        help="Only events before this UTC date/time.",
    ),
    click.option(
        "--min-share",
        type=click.FloatRange(0.0, 1.0, min_open=True),
        default=0.25,
        show_default=True,
        help="Discovered steps: least share of converting journeys that pass through a step.",
    ),
    click.option(
        "--max-steps",
        type=click.IntRange(0),
        default=5,
        show_default=True,
        help="Discovered steps: most steps before the conversion.",
    ),
    click.option(
        "--top-paths",
        type=click.IntRange(0),
        default=10,
        show_default=True,
        help="How many converting and non-converting paths to show.",
    ),
)


def open_store(database_url: str, events_table: str | None) -> EventStore:
    """The store to mine: its own events, or ``events_table`` read in place.

    Raises:
        click.BadParameter: when ``events_table`` is not a plain name.
    """
    try:
        return EventStore(database_url, events_table=events_table)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--events-table") from None


@contextmanager
def progress_bar(enabled: bool = True) -> Iterator[ProgressCallback | None]:
    """A rich progress bar on stderr, fed by the engine's progress callback."""
    if not enabled:
        yield None
        return
    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    task = progress.add_task("Starting", total=None)

    def report(stage: str, done: int, total: int) -> None:
        progress.update(task, description=stage, completed=done, total=total)

    with progress:
        yield report


def run_funnels(
    store: EventStore,
    options: dict[str, t.Any],
    *,
    discovered: bool,
    progress: ProgressCallback | None,
) -> tuple[DiscoveredFunnel | None, Funnel | None]:
    """Compute what the options ask for: the discovered funnel and/or the explicit one."""
    window = options["window"]
    common = {"unit": options["unit"], "since": options["since"], "until": options["until"]}
    found = None
    if discovered:
        found = discover_funnel(
            store,
            options["conversion"],
            min_share=options["min_share"],
            max_steps=options["max_steps"],
            top_paths=options["top_paths"],
            window=None if window == "default" else window,
            progress=progress,
            **common,
        )
    named = None
    if options["steps"]:
        steps = list(options["steps"])
        if steps[-1] != options["conversion"]:
            steps.append(options["conversion"])
        named = explicit_funnel(
            store,
            steps,
            order=options["order"],
            window=DEFAULT_WINDOW if window == "default" else window,
            progress=progress,
            **common,
        )
    return found, named


@click.command()
@FUNNEL_OPTIONS
@FORMAT
def funnel(
    database_url: str, events_table: str | None, output_format: str, **options: t.Any
) -> None:
    """The funnel toward the key conversion.

    Without --steps, discovers it from the data: the typical steps of converting journeys and
    their drop-off, the top paths, what each event type contributes and the weights the ranker
    reads. With --steps, counts that explicit funnel (ordered steps, conversion window from
    step 1, each unit once). JSON output is documented in docs/funnel.md.
    """
    try:
        with (
            open_store(database_url, events_table) as store,
            progress_bar(output_format == "table") as bar,
        ):
            found, named = run_funnels(
                store, options, discovered=not options["steps"], progress=bar
            )
    except EngineError as error:
        raise click.ClickException(str(error)) from error
    result = named if named is not None else found
    if result is None:  # pragma: no cover - one of the two is always computed
        raise click.ClickException("nothing to compute")
    if output_format == "json":
        click.echo(json.dumps(result.as_dict(), indent=2))
        return
    console = Console()
    if named is not None:
        print_explicit(console, named)
    elif found is not None:
        print_discovered(console, found)


def _pct(value: float | None, digits: int = 1) -> str:
    return "" if value is None else f"{value * 100:.{digits}f}%"


def _seconds(value: float | None) -> str:
    if value is None:
        return ""
    if value < 120:
        return f"{value:.0f} s"
    if value < 7200:
        return f"{value / 60:.1f} min"
    if value < 172800:
        return f"{value / 3600:.1f} h"
    return f"{value / 86400:.1f} d"


def _range(since: datetime | None, until: datetime | None) -> str:
    if since is None and until is None:
        return "all events"
    return f"{since or '…'} .. {until or '…'} UTC"


def print_explicit(console: Console, named: Funnel) -> None:
    """Print an explicit funnel as a rich table."""
    window = "none" if named.window_seconds is None else _seconds(named.window_seconds)
    table = Table(
        title=f"Funnel per {named.unit} ({named.order} order, window {window}, "
        f"{_range(named.since, named.until)})",
        title_justify="left",
    )
    for column in ("step", "units", "step conversion", "overall", "dropped", "median from start"):
        table.add_column(column, justify="left" if column == "step" else "right")
    for i, step in enumerate(named.steps, start=1):
        table.add_row(
            f"{i}. {step.name}",
            f"{step.units:,}",
            _pct(step.step_conversion),
            _pct(step.overall_conversion),
            f"{step.drop_off:,}" if i > 1 else "",
            _seconds(step.median_seconds_from_start),
        )
    console.print(table)
    ttc = named.time_to_convert
    console.print(
        f"completed {named.completed:,} of {named.entered:,} ({_pct(named.overall_conversion)}) · "
        f"time to convert: median {_seconds(ttc.median_seconds) or 'n/a'}, "
        f"mean {_seconds(ttc.mean_seconds) or 'n/a'}"
    )


def print_discovered(console: Console, found: DiscoveredFunnel) -> None:
    """Print a discovered funnel as rich tables."""
    ttc = found.time_to_convert
    console.print(
        f"[bold]{found.conversion}[/bold] per {found.unit} · {_range(found.since, found.until)} · "
        f"{found.converters:,} of {found.units:,} converted ({_pct(found.base_rate, 2)}) · "
        f"time to convert: median {_seconds(ttc.median_seconds) or 'n/a'}, "
        f"p90 {_seconds(ttc.p90_seconds) or 'n/a'}"
    )
    steps = Table(title="Discovered funnel", title_justify="left")
    steps.add_column("step", no_wrap=True)
    for column in (
        "in order",
        "drop-off",
        "units with it",
        "share of converters",
        "conv. rate",
        "lift",
        "median to conv.",
        "p90 to conv.",
    ):
        steps.add_column(column, justify="right")
    for i, s in enumerate(found.steps, start=1):
        steps.add_row(
            f"{i}. {s.event_type}",
            f"{s.funnel_units:,}",
            _pct(s.drop_off),
            f"{s.units:,}",
            _pct(s.converter_share),
            _pct(s.conversion_rate),
            "" if s.lift is None else f"{s.lift:.2f}",
            _seconds(s.median_seconds_to_conversion),
            _seconds(s.p90_seconds_to_conversion),
        )
    console.print(steps)
    for title, paths, converting in (
        ("Top converting paths", found.converting_paths, True),
        ("Top non-converting paths", found.non_converting_paths, False),
    ):
        table = Table(title=title, title_justify="left")
        for column in ("path", "units", "support", "conv. rate"):
            table.add_column(column, justify="left" if column == "path" else "right")
        for p in paths:
            shown = " → ".join(p.path) or "(nothing before)"
            if converting:
                shown += f" → {found.conversion}"
            table.add_row(shown, f"{p.units:,}", _pct(p.support), _pct(p.conversion_rate))
        console.print(table)
    contributions = Table(title="Event types", title_justify="left")
    contributions.add_column("event type", no_wrap=True)
    for column in ("units", "conv. rate", "lift", "removal effect", "weight"):
        contributions.add_column(column, justify="right")
    for c in found.contributions:
        contributions.add_row(
            c.event_type,
            f"{c.units:,}",
            _pct(c.conversion_rate),
            "" if c.lift is None else f"{c.lift:.2f}",
            f"{c.removal_effect:.3f}",
            f"{c.weight:.4f}",
        )
    console.print(contributions)
    weights = ", ".join(f"{k} {v:.2f}" for k, v in found.event_weights.items())
    console.print(f"event weights: {weights or 'none'}")
    for signal in found.signals:
        if signal.units:
            console.print(
                f"{signal.name}: {signal.units:,} units, median {signal.median_converters} "
                f"({signal.unit}) for converters vs {signal.median_others} for the others, "
                f"correlation {signal.correlation}"
            )
