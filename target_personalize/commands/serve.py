"""``personalize serve`` (the HTTP API and dashboard) and ``personalize keys`` (its API keys)."""

from __future__ import annotations

import sys
import typing as t
from pathlib import Path

import click

from target_personalize.commands._options import DATABASE_URL, parse_objectives
from target_personalize.engine import EngineError

__all__ = ["keys", "serve"]


@click.command()
@DATABASE_URL
@click.option(
    "--config",
    "config_file",
    type=click.Path(exists=True, dir_okay=False),
    help="The target's config JSON: database_url, key_conversion, objectives (and the tap's "
    "event_map) are read from it; options given here win.",
)
@click.option("--conversion", help="The key conversion (default: the config's, else purchase).")
@click.option(
    "--objective",
    "objective_pairs",
    multiple=True,
    metavar="NAME=WEIGHT",
    help="A default objective weight, e.g. conversion=1.0 (repeatable).",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--api-keys-file",
    envvar="PERSONALIZE_API_KEYS_FILE",
    type=click.Path(dir_okay=False),
    help="Hashed API keys (personalize keys add); PERSONALIZE_API_KEYS adds more. Required "
    "to bind anything but loopback.",
)
@click.option(
    "--ack",
    type=click.Choice(["commit", "journal"]),
    help="Answer POST /v1/events once the events are committed in the store, or once they are "
    "flushed to the write-ahead journal (the store gets them within --flush-ms). Default: "
    "journal for a DuckDB file, commit for PostgreSQL.",
)
@click.option("--journal-dir", type=click.Path(file_okay=False), help="The journal's directory.")
@click.option(
    "--flush-ms",
    type=click.FloatRange(min=0),
    help="How long the writer gathers events into one store commit (default 0, journal 250).",
)
@click.option(
    "--refresh-minutes",
    type=click.FloatRange(min=0),
    default=10.0,
    show_default=True,
    help="How often the model is brought up to date with the store in the background (0: never).",
)
@click.option(
    "--allow-origin",
    "allow_origins",
    multiple=True,
    metavar="ORIGIN",
    help="An origin whose pages may call the API, e.g. https://shop.example (repeatable). "
    "Default: any loopback origin when binding loopback, else none (browser keys' origins "
    "are always allowed).",
)
@click.option(
    "--browser-keys-file",
    envvar="PERSONALIZE_BROWSER_KEYS_FILE",
    type=click.Path(exists=True, dir_okay=False),
    help="Origin-bound, write-only keys for personalize.js (personalize keys add-browser).",
)
@click.option(
    "--browser-rate",
    type=click.FloatRange(min=0),
    default=20.0,
    show_default=True,
    help="Requests a second one address may make with a browser key (0: no limit).",
)
@click.option(
    "--browser-key-rate",
    type=click.FloatRange(min=0),
    default=1000.0,
    show_default=True,
    help="Requests a second all pages together may make with one browser key (0: no limit).",
)
@click.option("--demo", is_flag=True, help="Serve the live storefront at /demo.")
@click.option(
    "--max-body-bytes",
    type=click.IntRange(min=1),
    help="Largest request body (413 above it; default 10 MiB).",
)
@click.option(
    "--max-event-bytes",
    type=click.IntRange(min=1),
    help="Largest event of POST /v1/events, as JSON (413 above it; default 256 KiB).",
)
@click.option(
    "--max-property-bytes",
    type=click.IntRange(min=1),
    help="Largest value of an event's properties, as JSON (422 above it; default 64 KiB).",
)
@click.option(
    "--max-json-depth",
    type=click.IntRange(min=1),
    help="Deepest nesting of arrays and objects in a JSON body (422 above it; default 32).",
)
@click.option(
    "--forwarded-allow-ips",
    help="Addresses of reverse proxies whose X-Forwarded-For is believed (comma-separated, "
    "* for any). Default: none, a client is its connection's address.",
)
@click.option(
    "--open-docs",
    is_flag=True,
    help="Serve /docs, /redoc and /openapi.json without a key off loopback.",
)
@click.option(
    "--state-url",
    envvar="PERSONALIZE_STATE_URL",
    help="redis://HOST:PORT/DB: live sessions, wrong-key counters and the model version are "
    "shared there by every process naming it (needed by --workers; default: the config's "
    "state_url, else in this process).",
)
@click.option(
    "--state-prefix",
    default="personalize:",
    show_default=True,
    help="Prefix of the keys in Redis (deployments sharing one Redis).",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Server processes on this host (needs --state-url and a PostgreSQL store).",
)
@click.option("--log-level", default="info", show_default=True, help="uvicorn's log level.")
def serve(
    *,
    database_url: str,
    config_file: str | None,
    conversion: str | None,
    objective_pairs: tuple[str, ...],
    host: str,
    port: int,
    api_keys_file: str | None,
    ack: str | None,
    journal_dir: str | None,
    flush_ms: float | None,
    refresh_minutes: float,
    allow_origins: tuple[str, ...],
    browser_keys_file: str | None,
    browser_rate: float,
    browser_key_rate: float,
    demo: bool,
    max_body_bytes: int | None,
    max_event_bytes: int | None,
    max_property_bytes: int | None,
    max_json_depth: int | None,
    forwarded_allow_ips: str | None,
    open_docs: bool,
    state_url: str | None,
    state_prefix: str,
    workers: int,
    log_level: str,
) -> None:
    """Serve the HTTP API (events in, rankings out) and the dashboard at /."""
    import uvicorn  # noqa: PLC0415

    from target_personalize.serve import ServeConfigError, ServeSettings, create_app  # noqa: PLC0415
    from target_personalize.serve.browser import BrowserSettings  # noqa: PLC0415

    objectives = parse_objectives(objective_pairs)
    overrides: dict[str, t.Any] = {
        "key_conversion": conversion,
        "objectives": None if objectives is None else objectives.as_dict(),
        "host": host,
        "api_keys_file": api_keys_file,
        "ack": ack,
        "journal_dir": journal_dir,
        "flush_ms": flush_ms,
        "refresh_seconds": refresh_minutes * 60,
        "max_body_bytes": max_body_bytes,
        "max_event_bytes": max_event_bytes,
        "max_property_bytes": max_property_bytes,
        "max_json_depth": max_json_depth,
        "forwarded_allow_ips": forwarded_allow_ips,
        "open_docs": open_docs or None,
        "state_url": state_url,
        "state_prefix": state_prefix,
    }
    # The default URL only applies when neither the config nor a TARGET_PERSONALIZE_ variable
    # names a store.
    url_given = click.get_current_context().get_parameter_source("database_url")
    if url_given != click.core.ParameterSource.DEFAULT:
        overrides["database_url"] = database_url
    try:
        overrides["browser"] = BrowserSettings(
            allow_origins=list(allow_origins) or None,
            keys_file=browser_keys_file,
            address_rate=browser_rate,
            key_rate=browser_key_rate,
            demo=demo,
        )
        settings = ServeSettings.from_target(config_file, **overrides)
        app = create_app(settings)
        if workers > 1:
            from target_personalize.serve.workers import run_workers  # noqa: PLC0415

            sys.setswitchinterval(0.001)
            run_workers(settings, workers, port=port, log_level=log_level)
            return
    except (ServeConfigError, EngineError, ValueError, OSError) as error:
        raise click.ClickException(str(error)) from error
    # The store and journal threads share the GIL with the event loop: hand it over every
    # millisecond rather than every 5, so a commit in progress delays a ranking less.
    sys.setswitchinterval(0.001)
    if demo:
        shown = "127.0.0.1" if host in {"0.0.0.0", "::"} else host
        click.echo(f"the storefront: http://{shown}:{port}/demo/", err=True)
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        **settings.uvicorn_options(),
    )


@click.group()
def keys() -> None:
    """API keys of `personalize serve` (stored hashed)."""


@keys.command("add")
@click.option("--role", type=click.Choice(["read", "write"]), required=True)
@click.option(
    "--file",
    "key_file",
    envvar="PERSONALIZE_API_KEYS_FILE",
    required=True,
    type=click.Path(dir_okay=False),
    help="The key file to append the hashed record to (created mode 0600).",
)
def add(*, role: t.Literal["read", "write"], key_file: str) -> None:
    """Create a key: print it once, store only its salted scrypt hash."""
    from target_personalize.serve.auth import add_key  # noqa: PLC0415

    key, record = add_key(key_file, role)
    click.echo(key)
    click.echo(
        f"{role} key {record.key_id} added to {Path(key_file)}; it is shown only now.", err=True
    )


@keys.command("add-browser")
@click.option(
    "--origin",
    required=True,
    help="The origin of the pages that will use the key, e.g. https://shop.example.",
)
@click.option(
    "--file",
    "key_file",
    envvar="PERSONALIZE_BROWSER_KEYS_FILE",
    required=True,
    type=click.Path(dir_okay=False),
    help="The browser key file to append the record to (serve --browser-keys-file).",
)
def add_browser(*, origin: str, key_file: str) -> None:
    """Create a public, write-only browser key bound to one origin, for personalize.js."""
    from target_personalize.serve.browser import add_browser_key  # noqa: PLC0415

    try:
        key, record = add_browser_key(key_file, origin)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--origin") from None
    click.echo(key)
    click.echo(
        f"browser key {record.key_id} for {record.origin} added to {Path(key_file)}", err=True
    )


@keys.command("list")
@click.option(
    "--file",
    "key_file",
    envvar="PERSONALIZE_API_KEYS_FILE",
    required=True,
    type=click.Path(exists=True, dir_okay=False),
)
def list_keys(*, key_file: str) -> None:
    """List key ids and roles."""
    from target_personalize.serve.auth import parse_records  # noqa: PLC0415

    for record in parse_records(Path(key_file).read_text(encoding="utf-8"), key_file):
        click.echo(f"{record.key_id}\t{record.role}")
