"""tap-clickstream: the Singer tap."""

from __future__ import annotations

import typing as t

from singer_sdk import Tap
from singer_sdk.contrib.msgspec import MsgSpecWriter
from typing_extensions import override

from tap_clickstream.config import CONFIG_SCHEMA, validate_config
from tap_clickstream.exceptions import ClickstreamConfigError
from tap_clickstream.registry import active_providers

if t.TYPE_CHECKING:
    from tap_clickstream.streams import EventStream


class TapClickstream(Tap):
    """Event-level clickstream from Mixpanel, Amplitude and event files, as canonical events."""

    name = "tap-clickstream"
    package_name = "clickstream-personalize"
    config_jsonschema = CONFIG_SCHEMA
    message_writer_class = MsgSpecWriter

    @override
    def _validate_config(self, *, raise_errors: bool = True) -> list[str]:
        # One report naming every wrong setting: schema errors first, then the rules
        # JSON schema cannot express (which assume a config of the right shape).
        errors = super()._validate_config(raise_errors=False)
        if not errors:
            errors = validate_config(dict(self.config))
        if errors and raise_errors:
            raise ClickstreamConfigError("tap-clickstream settings are wrong", errors=errors)
        return errors

    @override
    def discover_streams(self) -> list[EventStream]:
        return [
            stream_class(tap=self)
            for provider in active_providers(self.config)
            for stream_class in provider.streams
        ]
