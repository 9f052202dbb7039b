"""Snowplow settings: rules, defaults and secrecy."""

from __future__ import annotations

from typing import Any

import pytest

from tap_clickstream.config import CONFIG_SCHEMA, SECRET_SETTINGS, validate_config
from tap_clickstream.exceptions import ClickstreamConfigError
from tap_clickstream.tap import TapClickstream

SECRET = "pa55-word-never-shown"
URL = f"postgresql+psycopg://loader:{SECRET}@warehouse/snowplow"


def test_defaults_are_filled_in() -> None:
    tap = TapClickstream(config={"snowplow": {"sqlalchemy_url": URL}}, parse_env_config=False)
    block = tap.config["snowplow"]
    assert (block["schema"], block["layout"], block["lookback_hours"], block["window_hours"]) == (
        "atomic", "auto", 6, 6,
    )  # fmt: skip
    assert list(tap.streams) == ["snowplow_events"]


def test_url_is_a_secret() -> None:
    spec = CONFIG_SCHEMA["properties"]["snowplow"]["properties"]["sqlalchemy_url"]
    assert spec.get("secret") is True and spec.get("writeOnly") is True
    assert "snowplow.sqlalchemy_url" in SECRET_SETTINGS


@pytest.mark.parametrize(
    ("block", "expected"),
    [
        ({}, []),  # an empty block is not a configured source
        ({"schema": "atomic", "layout": "auto"}, []),  # nor are its defaults (issue 18)
        ({"schema": "events"}, ["snowplow.sqlalchemy_url is required"]),
        ({"sqlalchemy_url": SECRET}, ["snowplow.sqlalchemy_url must be a SQLAlchemy URL"]),
        (
            {"sqlalchemy_url": URL, "lookback_hours": -1, "window_hours": 0, "schema": " "},
            [
                "snowplow.schema must name a schema",
                "snowplow.lookback_hours must be a whole number of at least 0, not -1",
                "snowplow.window_hours must be a whole number of at least 1, not 0",
            ],
        ),
    ],
)
def test_snowplow_rules(block: dict[str, Any], expected: list[str]) -> None:
    errors = validate_config({"snowplow": block})
    assert len(errors) == len(expected), errors
    for error, start in zip(errors, expected, strict=True):
        assert error.startswith(start), (error, start)
    assert not any(SECRET in error for error in errors)


def test_wrong_layout_is_reported_without_the_url() -> None:
    config = {"snowplow": {"sqlalchemy_url": URL, "layout": "flat"}}
    with pytest.raises(ClickstreamConfigError) as caught:
        TapClickstream(config=config, parse_env_config=False)
    text = "\n".join(caught.value.errors)
    assert "snowplow.layout: 'flat' is not one of ['auto', 'wide', 'shredded']" in text
    assert SECRET not in text
