"""Which settings configure a source, which are only defaults (issue 18), and each source's
groups of settings: the ones the Hub definition publishes as ``settings_group_validation``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tap_clickstream.config import SOURCES, validate_config
from tap_clickstream.registry import Provider, active_providers
from tap_clickstream.sources.files.streams import FileEventsStream
from tap_clickstream.tap import TapClickstream

ROOT = Path(__file__).resolve().parents[2]

#: A plausible value for every identifying setting.
EXAMPLES: dict[str, Any] = {
    "mixpanel.project_id": "1234567",
    "mixpanel.username": "svc-user",
    "mixpanel.secret": "svc-secret",
    "amplitude.api_key": "amp-key",
    "amplitude.secret_key": "amp-secret",
    "ga4.export_url": "bigquery://my-project/analytics_123456",
    "ga4.property_id": "123456",
    "ga4.credentials_json": '{"type": "service_account"}',
    "ga4.credentials_path": __file__,
    "files.paths": ["exports/*.jsonl"],
    "snowplow.sqlalchemy_url": "postgresql+psycopg://loader@warehouse/snowplow",
    "catalog.path": "catalog/items.csv",
    "catalog.sqlalchemy_url": "postgresql+psycopg://shop@db/shop",
    "catalog.table": "items",
}


def hub_defaults() -> dict[str, Any]:
    """The config Meltano passes for the Hub definition with nothing set: every default."""
    definition = yaml.safe_load((ROOT / "hub/extractors/tap-clickstream.yml").read_text())
    config: dict[str, Any] = {}
    for setting in definition["settings"]:
        if "value" in setting:
            *blocks, name = setting["name"].split(".")
            target = config
            for block in blocks:
                target = target.setdefault(block, {})
            target[name] = setting["value"]
    return config


def test_the_hub_definition_gives_every_source_defaults() -> None:
    # What made every source look configured to a Hub user (issue 18).
    assert {"mixpanel", "amplitude", "ga4", "files", "snowplow"} <= set(hub_defaults())


def test_defaults_configure_no_source_and_the_bundled_sample_runs() -> None:
    config = hub_defaults()
    assert validate_config(config) == []
    assert active_providers(config) == [Provider.FILES]
    tap = TapClickstream(config=config, parse_env_config=False)
    assert list(tap.streams) == ["file_events"]
    stream = tap.streams["file_events"]
    assert isinstance(stream, FileEventsStream) and stream.uses_sample


@pytest.mark.parametrize(
    ("given", "providers", "streams"),
    [
        (
            {"mixpanel": {"project_id": "1234567", "username": "u", "secret": "s"}},
            [Provider.MIXPANEL],
            ["mixpanel_events"],
        ),
        ({"files": {"paths": ["exports/*.jsonl"]}}, [Provider.FILES], ["file_events"]),
        (
            {"amplitude": {"api_key": "k", "secret_key": "s"}},
            [Provider.AMPLITUDE],
            ["amplitude_events"],
        ),
    ],
)
def test_one_source_set_over_the_defaults_is_the_only_one_read(
    given: dict[str, dict[str, Any]], providers: list[Provider], streams: list[str]
) -> None:
    config = hub_defaults()
    for block, settings in given.items():
        config[block] = {**config.get(block, {}), **settings}
    assert validate_config(config) == []
    assert active_providers(config) == providers
    tap = TapClickstream(config=config, parse_env_config=False)
    assert list(tap.streams) == streams
    assert not any(getattr(s, "uses_sample", False) for s in tap.streams.values())


@pytest.mark.parametrize(
    ("block", "setting", "expected"),
    [
        ("mixpanel", {"region": "eu"}, "mixpanel.project_id is required"),
        ("amplitude", {"window_hours": 1}, "amplitude.api_key is required"),
        ("ga4", {"include_intraday": True}, "ga4 needs ga4.export_url"),
        ("snowplow", {"schema": "events"}, "snowplow.sqlalchemy_url is required"),
        ("files", {"format": "csv"}, "files.paths is required"),
        ("catalog", {"mapping": {"item_id": "sku"}}, "catalog.sqlalchemy_url (with catalog.table)"),
    ],
)
def test_a_setting_without_its_source_is_reported_not_ignored(
    block: str, setting: dict[str, Any], expected: str
) -> None:
    config = hub_defaults()
    config[block] = {**config.get(block, {}), **setting}
    errors = validate_config(config)
    assert errors and errors[0].startswith(expected), errors
    # It does not turn the source on either: only its identifying settings do.
    assert active_providers(config) == [Provider.FILES]


def test_empty_values_are_not_given() -> None:
    config = {"mixpanel": {"project_id": "", "secret": None}, "files": {"paths": []}}
    assert validate_config(config) == []
    assert active_providers(config) == [Provider.FILES]


def _groups() -> list[tuple[str, tuple[str, ...]]]:
    return [(source.key, group) for source in SOURCES for group in source.groups]


@pytest.mark.parametrize(
    ("key", "group"), _groups(), ids=lambda v: ".".join(v) if isinstance(v, tuple) else v
)
def test_each_group_is_a_complete_configuration_of_its_source(
    key: str, group: tuple[str, ...]
) -> None:
    source = next(s for s in SOURCES if s.key == key)
    config = {key: {name: EXAMPLES[f"{key}.{name}"] for name in group}}
    assert source.is_configured(config)
    assert source.errors(config) == []
    for missing in group if len(group) > 1 else ():
        partial = {key: {n: v for n, v in config[key].items() if n != missing}}
        errors = source.errors(partial)
        assert any(f"{key}.{missing}" in e for e in errors), (missing, errors)


def test_every_identifying_setting_has_an_example_and_no_default() -> None:
    identifying = {f"{s.key}.{name}" for s in SOURCES for name in s.identifying}
    assert identifying == set(EXAMPLES)
    for source in SOURCES:
        assert not set(source.identifying) & set(source.defaults), source.key


def test_stream_settings_fill_in_the_defaults() -> None:
    config = {"mixpanel": {"project_id": "1", "username": "u", "secret": "s", "window_days": 3}}
    tap = TapClickstream(config=config, parse_env_config=False, validate_config=False)
    settings = tap.streams["mixpanel_events"].settings  # type: ignore[attr-defined]
    assert settings["window_days"] == 3
    assert (settings["lookback_days"], settings["region"], settings["project_timezone"]) == (
        2, "us", "UTC",
    )  # fmt: skip
