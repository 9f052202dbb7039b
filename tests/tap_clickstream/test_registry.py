"""The provider registry: which settings block turns on which streams."""

from __future__ import annotations

from typing import Any

import pytest

from tap_clickstream.config import SOURCES
from tap_clickstream.registry import Provider, active_providers
from tap_clickstream.tap import TapClickstream

MIXPANEL = {"project_id": "1", "username": "u", "secret": "s"}
AMPLITUDE = {"api_key": "k", "secret_key": "s"}


@pytest.mark.parametrize(
    ("config", "providers", "streams"),
    [
        ({}, [Provider.FILES], ["file_events"]),
        ({"files": {}}, [Provider.FILES], ["file_events"]),
        ({"mixpanel": MIXPANEL}, [Provider.MIXPANEL], ["mixpanel_events"]),
        ({"amplitude": AMPLITUDE}, [Provider.AMPLITUDE], ["amplitude_events"]),
        (
            {"mixpanel": MIXPANEL, "amplitude": AMPLITUDE, "files": {"paths": ["x/*.csv"]}},
            [Provider.MIXPANEL, Provider.AMPLITUDE, Provider.FILES],
            ["mixpanel_events", "amplitude_events", "file_events"],
        ),
    ],
)
def test_active_providers_and_discovered_streams(
    config: dict[str, Any], providers: list[Provider], streams: list[str]
) -> None:
    assert active_providers(config) == providers
    tap = TapClickstream(config=config, parse_env_config=False)
    assert sorted(tap.streams) == sorted(streams)
    for stream in tap.streams.values():
        assert stream.primary_keys == ["source", "event_id"]
        assert stream.replication_key in {"event_ts", "ingested_at"}


def test_every_provider_names_its_settings_block() -> None:
    assert {p.key for p in Provider} == {
        "mixpanel", "amplitude", "ga4", "snowplow", "files", "catalog",
    }  # fmt: skip
    assert {p.settings for p in Provider} == set(SOURCES)  # one checked block per provider
    ga4 = {"export_url": "duckdb:///x.duckdb", "property_id": "1", "api_endpoint": "http://x"}
    tap = TapClickstream(config={"ga4": ga4}, parse_env_config=False)
    for provider in Provider:
        streams = provider.build_streams(tap)
        assert streams, provider
        for stream in streams:
            assert stream.settings_key == provider.key
