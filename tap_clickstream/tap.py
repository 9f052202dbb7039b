"""tap-clickstream: the Singer tap."""

from __future__ import annotations

import typing as t

import click
from singer_sdk import Tap
from singer_sdk.plugin_base import JSONSchemaValidator
from typing_extensions import override

from tap_clickstream.config import CONFIG_SCHEMA, format_schema_errors, validate_config
from tap_clickstream.exceptions import ClickstreamConfigError
from tap_clickstream.registry import active_providers
from tap_clickstream.writer import EventMessageWriter

if t.TYPE_CHECKING:
    from tap_clickstream.streams import EventStream


class TapClickstream(Tap):
    """Event-level clickstream from GA4, Mixpanel, Amplitude, Snowplow and files, as canonical events."""

    name = "tap-clickstream"
    package_name = "clickstream-personalize"
    config_jsonschema = CONFIG_SCHEMA
    message_writer_class = EventMessageWriter

    @override
    def _validate_config(self, *, raise_errors: bool = True) -> list[str]:
        # One report naming every wrong setting: the schema's errors (worded by setting
        # name, secret values withheld), then the rules JSON schema cannot express.
        schema = self.config_jsonschema
        self.append_builtin_config(schema)
        # The SDK's validator, which also fills in the schema's defaults.
        validator = JSONSchemaValidator(schema)
        errors = format_schema_errors(validator.iter_errors(self._config))
        errors += validate_config(self._config)
        if errors and raise_errors:
            raise ClickstreamConfigError("tap-clickstream settings are wrong", errors=errors)
        return errors

    @override
    @classmethod
    def get_singer_command(cls) -> click.Command:
        command = super().get_singer_command()
        # --dialect, --events and --view are read by --emit-view, whatever their order.
        remember = _remember_option
        command.params.extend(
            [
                click.Option(
                    ["--dialect"],
                    type=click.Choice(DIALECT_NAMES),
                    help="With --emit-view: the warehouse's SQL dialect.",
                    is_eager=True,
                    expose_value=False,
                    callback=remember,
                ),
                click.Option(
                    ["--events"],
                    metavar="SCHEMA.TABLE",
                    help="With --emit-view: the events table (default atomic.events).",
                    is_eager=True,
                    expose_value=False,
                    callback=remember,
                ),
                click.Option(
                    ["--view"],
                    metavar="SCHEMA.VIEW",
                    help="With --emit-view: the view's name "
                    "(default <source>_canonical_events beside the events).",
                    is_eager=True,
                    expose_value=False,
                    callback=remember,
                ),
                click.Option(
                    ["--layout"],
                    type=click.Choice(["wide", "shredded"]),
                    help="With --emit-view snowplow: the loader's layout "
                    "(default: shredded on postgres and redshift, wide elsewhere).",
                    is_eager=True,
                    expose_value=False,
                    callback=remember,
                ),
                click.Option(
                    ["--emit-view"],
                    type=click.Choice(VIEW_SOURCE_NAMES),
                    help="Print the CREATE VIEW statement of a canonical view over the "
                    "source's events in the warehouse (analytics in place: "
                    "docs/warehouse-views.md), then exit.",
                    expose_value=False,
                    callback=_print_view,
                ),
            ]
        )
        return command

    @override
    def discover_streams(self) -> list[EventStream]:
        return [
            stream
            for provider in active_providers(self.config)
            for stream in provider.build_streams(self)
        ]


#: ``--emit-view`` choices (kept here so ``--help`` does not import sqlglot).
VIEW_SOURCE_NAMES = ("snowplow", "ga4")
DIALECT_NAMES = ("snowflake", "bigquery", "redshift", "postgres", "duckdb")


def _remember_option(ctx: click.Context, param: click.Parameter, value: object) -> None:
    ctx.meta[f"view.{param.name}"] = value


def _print_view(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value is None:
        return
    from tap_clickstream.views import emit_view  # noqa: PLC0415 - sqlglot only when asked

    dialect = ctx.meta.get("view.dialect")
    if dialect is None:
        raise click.UsageError("--emit-view needs --dialect (the warehouse's SQL dialect)")
    # --config is eager: its files are read by now (meltano invoke passes the project's).
    config = getattr(ctx.params.get("config"), "config", None) or {}
    event_map = config.get("event_map")
    try:
        ddl = emit_view(
            value,
            dialect,
            events=ctx.meta.get("view.events"),
            view=ctx.meta.get("view.view"),
            layout=ctx.meta.get("view.layout"),
            event_map=event_map if isinstance(event_map, dict) else None,
        )
    except ValueError as error:  # a combination no view exists for: say which, no traceback
        raise click.UsageError(str(error)) from None
    click.echo(ddl, nl=False)
    ctx.exit()
