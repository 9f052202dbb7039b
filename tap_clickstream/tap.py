"""tap-clickstream: the Singer tap."""

from __future__ import annotations

import typing as t

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
    def discover_streams(self) -> list[EventStream]:
        return [
            stream
            for provider in active_providers(self.config)
            for stream in provider.build_streams(self)
        ]
