"""``personalize fit | recommend | rank | evaluate``: the ranker from the command line."""

from __future__ import annotations

import json
import time
import typing as t
from datetime import datetime
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from target_personalize.commands._options import (
    DATABASE_URL,
    FORMAT,
    open_existing_store,
    parse_objectives,
    warn_unknown_conversion,
)
from target_personalize.engine import (
    EngineError,
    EvaluationReport,
    EventStore,
    Objectives,
    RankerBase,
    RerankedSessionRanker,
    SessionRanker,
    default_rankers,
    discover_funnel,
    evaluate,
    evaluate_store,
    load_ranker,
    read_split_file,
    save_ranker,
)
from target_personalize.engine.evaluation.splits import prepare_fixed_split
from target_personalize.engine.ranking.rerank import RERANKERS

if t.TYPE_CHECKING:
    from target_personalize.engine import ScoredItem

__all__ = ["evaluate_command", "fit", "rank", "recommend"]

_stderr = Console(stderr=True)

CONVERSION = click.option(
    "--conversion",
    default="purchase",
    show_default=True,
    help="The key conversion (event type) to optimize.",
)
OBJECTIVE = click.option(
    "--objective",
    "objective_pairs",
    multiple=True,
    metavar="NAME=WEIGHT",
    help="An objective weight: conversion, margin, revenue or engagement, e.g. margin=0.5 "
    "(repeatable).",
)
EVENT_WEIGHTS = click.option(
    "--event-weights",
    default="default",
    show_default=True,
    metavar="default|mined|FILE",
    help="Event-type weights: built-in defaults, mined from the store's funnel, or a JSON file "
    "mapping event type to a weight in [0, 1].",
)


def _event_weights(
    choice: str, store: EventStore | None, conversion: str
) -> dict[str, float] | None:
    if choice == "default":
        return None
    if choice == "mined":
        if store is None:
            raise click.BadParameter("mined weights need the store", param_hint="--event-weights")
        weights = dict(discover_funnel(store, conversion).event_weights)
        _stderr.print(f"Mined event weights: {json.dumps(weights)}")
        return weights
    try:
        loaded = json.loads(Path(choice).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise click.BadParameter(
            f"cannot read {choice}: {error}", param_hint="--event-weights"
        ) from None
    if not isinstance(loaded, dict) or not all(isinstance(v, int | float) for v in loaded.values()):
        raise click.BadParameter("expected a JSON object of numbers", param_hint="--event-weights")
    return {str(k): float(v) for k, v in loaded.items()}


@click.command()
@DATABASE_URL
@CONVERSION
@OBJECTIVE
@EVENT_WEIGHTS
@click.option(
    "--rerank",
    type=click.Choice(["none", *RERANKERS]),
    default="none",
    show_default=True,
    help="A second stage: lambdarank re-orders the ranker's 100 best candidates with a "
    "LightGBM LambdaRank model learned from the store's later sessions (fit takes longer).",
)
@click.option(
    "--train-window-days",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    metavar="N",
    help="Train on the events of the latest N days, counted back from the store's latest "
    "event (not today). Default: every event. Refreshes after loads keep the window.",
)
@FORMAT
def fit(
    *,
    database_url: str,
    conversion: str,
    objective_pairs: tuple[str, ...],
    event_weights: str,
    rerank: str,
    train_window_days: float | None,
    output_format: str,
) -> None:
    """Fit the ranker on the store and save it next to the store."""
    objectives = parse_objectives(objective_pairs)
    try:
        with open_existing_store(database_url) as store:
            warn_unknown_conversion(store, conversion)
            weights = _event_weights(event_weights, store, conversion)
            started = time.perf_counter()
            with _stderr.status("Fitting the ranker..."):
                chosen = RerankedSessionRanker() if rerank == "lambdarank" else SessionRanker()
                ranker = chosen.fit(
                    store,
                    event_weights=weights,
                    key_conversion=conversion,
                    objectives=objectives,
                    train_window_days=train_window_days,
                )
            seconds = time.perf_counter() - started
            where = save_ranker(ranker, store)
    except EngineError as error:
        raise click.ClickException(str(error)) from error
    data = ranker.data
    summary = {
        "ranker": ranker.name,
        "events": len(data),
        "sessions": int(data.n_sessions),
        "items": len(data.items),
        "key_conversion": ranker.key_conversion,
        "objectives": ranker.objectives.as_dict(),
        "train_window_days": ranker.train_window_days,
        "conversion_source": ranker.conversion_source,
        "engagement": data.items.engagement_kind,
        "fit_seconds": round(seconds, 3),
        "saved_to": where,
    }
    if output_format == "json":
        click.echo(json.dumps(summary, indent=2))
        return
    console = Console()
    window = f" of the latest {ranker.train_window_days:g} days" if ranker.train_window_days else ""
    console.print(
        f"Fitted the {ranker.name} on {len(data):,} item events{window}, "
        f"{data.n_sessions:,} sessions, {len(data.items):,} items in {seconds:.2f} s; "
        f"key conversion {ranker.key_conversion}; saved to {where}"
    )
    console.print(_conversion_line(ranker.conversion_source), highlight=False)
    console.print(f"Dials: {_engagement_note(data.items.engagement_kind)}", highlight=False)


def _engagement_note(kind: str) -> str:
    """What the engagement dial weighs, e.g. ``engagement = none (...)``."""
    if kind == "none":
        return (
            "engagement = none (no engagement_ms or media_progress_pct on item events: "
            "the engagement dial changes nothing)"
        )
    return f"engagement = {kind} (mean per item event)"


def _warn_engagement(ranker: RankerBase, objectives: Objectives | None) -> None:
    """Say on stderr when the engagement dial is on but the store has no engagement signal."""
    weight = (objectives or ranker.objectives).engagement
    if weight and ranker.items.engagement_kind == "none":
        _stderr.print(f"[yellow]Warning:[/] {_engagement_note('none')}.")


def _conversion_line(source: dict[str, t.Any]) -> str:
    """What the dials' P(conversion) is, in one line."""
    if source["source"] == "impressions":
        return (
            f"Dials: P(buy | shown) learnt from {source['impressions']:,} impressions "
            f"({source['conversions']:,} converted, {source['items_shown']:,} items), "
            f"position-corrected; position 1-3 examination {source['examination'][:3]}"
        )
    if source["source"] == "item rates":
        return (
            "Dials: P(conversion) is each item's smoothed conversion rate (too few recorded "
            "impressions converted to learn P(buy | shown))"
        )
    return f"Dials: P(conversion) from {source['source']}"


def _ranker(store: EventStore) -> RankerBase:
    ranker = load_ranker(store)
    if ranker is None:
        _stderr.print(
            "No saved ranker next to the store: fitting one now (run `personalize fit` to keep it)."
        )
        ranker = SessionRanker().fit(store)
    return ranker


def _print_items(
    items: list[ScoredItem],
    title: str,
    output_format: str,
    value_kind: str = "value",
    engagement_kind: str = "none",
) -> None:
    if output_format == "json":
        click.echo(json.dumps([item.as_dict() for item in items], indent=2))
        return
    table = Table(
        title=title,
        title_justify="left",
        caption=_engagement_note(engagement_kind),
        caption_justify="left",
    )
    for name, justify in (
        ("#", "right"),
        ("item", "left"),
        ("score", "right"),
        ("relevance", "right"),
        ("P(conversion)", "right"),
        ("value" if value_kind in {"value", "none"} else f"value ({value_kind})", "right"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for position, item in enumerate(items, start=1):
        table.add_row(
            str(position),
            item.item_id,
            f"{item.score:.4g}",
            f"{item.relevance:.3f}",
            f"{item.conversion:.3f}",
            "" if item.value is None else f"{item.value:,.2f}",
        )
    Console().print(table)


@click.command()
@DATABASE_URL
@click.option("--user", "user_id", help="A known user.")
@click.option("--session", "session_id", help="A session (from the store).")
@click.option(
    "--sessions-file",
    type=click.File("r", encoding="utf-8"),
    help="Many sessions: one session id per line (or JSON lines with session_id or user_id); "
    "writes one JSON line per session.",
)
@click.option(
    "-k", "k", default=20, show_default=True, type=click.IntRange(min=1), help="How many items."
)
@click.option("--exclude-seen", is_flag=True, help="Leave out items the visitor already saw.")
@click.option("--category", help="Only items of this category (or its subcategories).")
@click.option("--brand", help="Only items of this brand.")
@OBJECTIVE
@FORMAT
def recommend(
    *,
    database_url: str,
    user_id: str | None,
    session_id: str | None,
    sessions_file: t.TextIO | None,
    k: int,
    exclude_seen: bool,
    category: str | None,
    brand: str | None,
    objective_pairs: tuple[str, ...],
    output_format: str,
) -> None:
    """The best items for a user (--user), a session (--session) or many (--sessions-file).

    A user or session the ranker has never seen gets cold-start items (popular and trending);
    the output says so.
    """
    if sum(x is not None for x in (user_id, session_id, sessions_file)) != 1:
        raise click.UsageError("give exactly one of --user, --session and --sessions-file")
    objectives = parse_objectives(objective_pairs)
    filters = {key: value for key, value in (("category", category), ("brand", brand)) if value}
    requests = (
        _read_requests(sessions_file) if sessions_file is not None else [(user_id, session_id)]
    )
    try:
        with open_existing_store(database_url) as store:
            ranker = _ranker(store)
        _warn_engagement(ranker, objectives)
        answers = [
            (
                user,
                session,
                ranker.knows(user, session),
                ranker.recommend(
                    user,
                    session,
                    k,
                    exclude_seen=exclude_seen,
                    filters=filters,
                    objectives=objectives,
                ),
            )
            for user, session in requests
        ]
    except EngineError as error:
        raise click.ClickException(str(error)) from error
    if sessions_file is not None:
        for user, session, known, items in answers:
            line: dict[str, t.Any] = {"session_id": session} if session else {"user_id": user}
            line["cold_start"] = not known
            line["items"] = [item.as_dict() for item in items]
            click.echo(json.dumps(line))
        return
    _, _, known, items = answers[0]
    who = f"user {user_id}" if user_id else f"session {session_id}"
    if not known:
        _stderr.print(
            f"[yellow]Cold start:[/] {who} is unknown to the ranker (not in the store, not "
            "observed live): these are popular and trending items."
        )
    title = f"Top {k} for {who}" + ("" if known else " (cold start: unknown, popular items)")
    _print_items(
        items, title, output_format, ranker.items.value_kind(), ranker.items.engagement_kind
    )


def _read_requests(handle: t.TextIO) -> list[tuple[str | None, str | None]]:
    """(user, session) per non-empty line: a session id, or JSON with session_id/user_id."""
    requests: list[tuple[str | None, str | None]] = []
    for number, raw in enumerate(handle, start=1):
        line = raw.strip()
        if not line:
            continue
        if not line.startswith("{"):
            requests.append((None, line))
            continue
        try:
            record = json.loads(line)
        except ValueError as error:
            raise click.BadParameter(
                f"line {number} is not JSON ({error})", param_hint="--sessions-file"
            ) from None
        session, user = record.get("session_id"), record.get("user_id")
        if session is None and user is None:
            raise click.BadParameter(
                f"line {number} has neither session_id nor user_id", param_hint="--sessions-file"
            )
        requests.append(
            (
                None if user is None or session is not None else str(user),
                None if session is None else str(session),
            )
        )
    return requests


@click.command()
@DATABASE_URL
@click.option("--user", "user_id", help="A known user.")
@click.option("--session", "session_id", help="A session (from the store).")
@click.option("--items", "item_list", required=True, help="Comma-separated item ids to re-rank.")
@OBJECTIVE
@FORMAT
def rank(
    *,
    database_url: str,
    user_id: str | None,
    session_id: str | None,
    item_list: str,
    objective_pairs: tuple[str, ...],
    output_format: str,
) -> None:
    """Re-rank given items (e.g. search results) for a user or a session."""
    if (user_id is None) == (session_id is None):
        raise click.UsageError("give exactly one of --user and --session")
    candidates = [item.strip() for item in item_list.split(",") if item.strip()]
    objectives = parse_objectives(objective_pairs)
    try:
        with open_existing_store(database_url) as store:
            ranker = _ranker(store)
        items = ranker.rank(candidates, user_id, session_id, objectives=objectives)
    except EngineError as error:
        raise click.ClickException(str(error)) from error
    who = f"user {user_id}" if user_id else f"session {session_id}"
    _warn_engagement(ranker, objectives)
    _print_items(
        items,
        f"{len(candidates)} items re-ranked for {who}",
        output_format,
        ranker.items.value_kind(),
        ranker.items.engagement_kind,
    )


@click.command("evaluate")
@DATABASE_URL
@CONVERSION
@click.option(
    "-k", "k", default=20, show_default=True, type=click.IntRange(min=1), help="List length."
)
@click.option(
    "--objective",
    "objective_pairs",
    multiple=True,
    default=("conversion=1.0", "margin=0.5"),
    show_default=True,
    metavar="NAME=WEIGHT",
    help="Objectives of the extra 'session ranker (...)' row; conversion=0 margin=0 drops it.",
)
@EVENT_WEIGHTS
@click.option("--cut", type=click.DateTime(), help="Split time (UTC): train before, test after.")
@click.option(
    "--test-days",
    default=1.0,
    show_default=True,
    type=float,
    help="Without --cut: test on the last days (short data: the last 20% of sessions).",
)
@click.option(
    "--train",
    "train_file",
    type=click.Path(exists=True, dir_okay=False),
    help="A fixed training file: session-rec TSV (SessionId, ItemId, Time) or canonical JSON lines.",
)
@click.option(
    "--test",
    "test_file",
    type=click.Path(exists=True, dir_okay=False),
    help="The fixed test file that goes with --train.",
)
@click.option(
    "--max-sessions", type=click.IntRange(min=1), help="Evaluate a sample of test sessions."
)
@FORMAT
def evaluate_command(
    *,
    database_url: str,
    conversion: str,
    k: int,
    objective_pairs: tuple[str, ...],
    event_weights: str,
    cut: datetime | None,
    test_days: float,
    train_file: str | None,
    test_file: str | None,
    max_sessions: int | None,
    output_format: str,
) -> None:
    """Replay held-out sessions: HR@k, MRR@k, conversions, value, coverage, against baselines.

    By default the store's events are split by time (session-rec protocol: items seen fewer
    than 5 times and sessions shorter than 2 events dropped). With --train and --test, that
    exact split is used instead, so figures can be set beside published ones.
    """
    if (train_file is None) != (test_file is None):
        raise click.UsageError("--train and --test go together")
    objectives = parse_objectives(objective_pairs)
    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=_stderr,
        transient=True,
    ) as bar:
        task = bar.add_task("Replaying test sessions", total=None)

        def advance(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        try:
            if train_file and test_file:
                train, test = prepare_fixed_split(
                    read_split_file(train_file), read_split_file(test_file)
                )
                weights = _event_weights(event_weights, None, conversion)
                report = evaluate(
                    train,
                    test,
                    default_rankers(objectives=objectives),
                    k=k,
                    event_weights=weights,
                    key_conversion=conversion,
                    max_sessions=max_sessions,
                    source=f"{train_file} / {test_file}",
                    progress=advance,
                )
            else:
                with open_existing_store(database_url) as store:
                    warn_unknown_conversion(store, conversion)
                    weights = _event_weights(event_weights, store, conversion)
                    report = evaluate_store(
                        store,
                        key_conversion=conversion,
                        k=k,
                        cut=cut,
                        test_days=test_days,
                        objectives=objectives,
                        event_weights=weights,
                        max_sessions=max_sessions,
                        progress=advance,
                    )
        except EngineError as error:
            raise click.ClickException(str(error)) from error
    if output_format == "json":
        click.echo(json.dumps(report.as_dict(), indent=2))
    else:
        console = Console()
        print_report(report, console if console.is_terminal else Console(width=80))


def _fmt(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def print_report(report: EvaluationReport, console: Console) -> None:
    """Print an evaluation report as two tables that fit 80 columns: quality, then speed."""
    k = report.k
    split = report.split
    quality = Table(title=f"Offline evaluation at k={k} ({report.protocol})", title_justify="left")
    quality.add_column("model", ratio=1, overflow="fold")
    for name in (f"HR@{k}", f"MRR@{k}", f"conv.\nhit@{k}", f"value\ncapt.@{k}", f"cover.\n@{k}"):
        quality.add_column(name, justify="right", no_wrap=True)
    speed = Table(title="Fit and prediction time", title_justify="left")
    speed.add_column("model", ratio=1, overflow="fold")
    for name in ("fit s", "ms/pred", "p99 ms"):
        speed.add_column(name, justify="right", no_wrap=True)
    for r in report.results:
        quality.add_row(
            r.name,
            _fmt(r.hit_rate),
            _fmt(r.mrr),
            _fmt(r.conversion_hit_rate),
            _fmt(r.value_captured),
            _fmt(r.coverage, 3),
        )
        speed.add_row(
            r.name, f"{r.fit_seconds:.2f}", f"{r.predict_ms:.2f}", f"{r.predict_p99_ms:.2f}"
        )
    console.print(quality)
    first = report.results[0] if report.results else None
    cut = f"cut {split.cut:%Y-%m-%d %H:%M:%S} UTC · " if split.cut else ""
    value = (
        "value = price (the catalog has no margin or cost)"
        if split.value_kind == "price"
        else f"value = {split.value_kind}"
    )
    console.print(
        f"{split.source}: {cut}train {split.train_events:,} events / {split.train_sessions:,} "
        f"sessions / {split.items:,} items; test {split.test_events:,} events / "
        f"{split.test_sessions:,} sessions; {first.predictions if first else 0:,} predictions, "
        f"{first.conversion_predictions if first else 0:,} with a later add-to-cart or "
        f"{report.key_conversion}; {value}"
    )
    console.print(speed)
