"""What every source's settings block declares, and the checks several sources share.

Each source's ``sources/<name>/settings.py`` describes its block as a :class:`SourceSettings`:
the settings with their defaults (the only place a default is written), the groups of settings
that make a complete configuration, and a check of the rules JSON schema cannot express.

A source is *configured* (its streams run) when one of its identifying settings is given: a
setting named in one of its groups (credentials, a URL, paths). Defaults never configure a
source: Meltano passes a block of defaults (``mixpanel: {region: us, ...}``) for every source
of the Hub definition. A block is *checked* when it holds anything besides its defaults, so a
setting given without the settings that identify its source is reported, not ignored.
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass
from functools import cached_property

if t.TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from singer_sdk import typing as th

__all__ = [
    "API_URL_DESCRIPTION",
    "DEFAULT_HISTORY_DAYS",
    "SourceSettings",
    "given",
    "sqlalchemy_url_description",
    "sqlalchemy_url_errors",
    "whole_number_errors",
]

#: Days read on a source's first sync when ``start_date`` is not set.
DEFAULT_HISTORY_DAYS = 30
#: The description of an export API's base-URL setting.
API_URL_DESCRIPTION = (
    "Base URL of the export API. Leave empty for the region's official host; "
    "set it for a proxy or a test server."
)


def given(value: object) -> bool:
    """Whether a setting's value says something (``None``, ``""``, ``[]`` and ``{}`` do not)."""
    return value is not None and value not in ("", [], {})


@dataclass(frozen=True)
class SourceSettings:
    """One source's settings block: its schema, what identifies it, and its rules."""

    #: The block's name in the config (``mixpanel``, ``ga4``...).
    key: str
    title: str
    description: str
    #: The block's settings, each with its title, description and default.
    schema: th.ObjectType
    #: Minimal complete configurations; any setting named here identifies the source.
    groups: tuple[tuple[str, ...], ...]
    #: The rules JSON schema cannot express, on the block with its defaults filled in.
    check: Callable[[dict[str, t.Any]], list[str]]

    @cached_property
    def properties(self) -> dict[str, dict[str, t.Any]]:
        """The JSON schema of each setting of the block."""
        found: dict[str, dict[str, t.Any]] = self.schema.to_dict()["properties"]
        return found

    @cached_property
    def defaults(self) -> dict[str, t.Any]:
        """Each setting's default, for the settings that have one."""
        return {k: v["default"] for k, v in self.properties.items() if "default" in v}

    @cached_property
    def identifying(self) -> tuple[str, ...]:
        """The settings that identify the source, in group order."""
        return tuple(dict.fromkeys(name for group in self.groups for name in group))

    @cached_property
    def secrets(self) -> frozenset[str]:
        """Dotted names of the block's secret settings."""
        return frozenset(f"{self.key}.{k}" for k, v in self.properties.items() if v.get("secret"))

    def block(self, config: Mapping[str, t.Any]) -> dict[str, t.Any]:
        """The block as given in ``config`` (empty when absent or of the wrong shape)."""
        value = config.get(self.key)
        return dict(value) if isinstance(value, dict) else {}

    def with_defaults(self, config: Mapping[str, t.Any]) -> dict[str, t.Any]:
        """The block with each setting it lacks (or leaves empty) at its default."""
        return {**self.defaults, **{k: v for k, v in self.block(config).items() if given(v)}}

    def is_configured(self, config: Mapping[str, t.Any]) -> bool:
        """Whether an identifying setting of the source is given."""
        block = self.block(config)
        return any(given(block.get(name)) for name in self.identifying)

    def is_set(self, config: Mapping[str, t.Any]) -> bool:
        """Whether the block holds any setting besides its defaults."""
        defaults = self.defaults
        return any(
            given(value) and (name not in defaults or value != defaults[name])
            for name, value in self.block(config).items()
        )

    def errors(self, config: Mapping[str, t.Any]) -> list[str]:
        """One message per wrong setting of the block; none for a block of defaults."""
        return self.check(self.with_defaults(config)) if self.is_set(config) else []


def whole_number_errors(
    block: Mapping[str, t.Any], prefix: str, name: str, minimum: int
) -> list[str]:
    """A message if ``block[name]`` is given and not a whole number of at least ``minimum``."""
    value = block.get(name)
    if value is None:
        return []
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        return [f"{prefix}.{name} must be a whole number of at least {minimum}, not {value!r}"]
    return []


def sqlalchemy_url_errors(block: Mapping[str, t.Any], prefix: str) -> list[str]:
    """A message if ``block["sqlalchemy_url"]`` is not a URL (its value is never shown)."""
    value = block.get("sqlalchemy_url")
    if not isinstance(value, str) or "://" not in value:
        return [f"{prefix}.sqlalchemy_url must be a SQLAlchemy URL such as postgresql://host/db"]
    return []


def sqlalchemy_url_description(what: str, example: str) -> str:
    """The description of a setting holding a SQLAlchemy URL, which may hold a password."""
    return f"SQLAlchemy URL of the {what}, e.g. {example}. Secret: it may hold a password."
