"""Settings: validate_config's rules, and the tap's one report naming every wrong setting."""

from __future__ import annotations

from typing import Any

import pytest

from tap_clickstream.config import validate_config
from tap_clickstream.exceptions import ClickstreamConfigError
from tap_clickstream.tap import TapClickstream
from tests.tap_clickstream.helpers import run_cli

SECRET = "do-not-print-this-42"
MIXPANEL = {"project_id": "1234567", "username": "svc", "secret": SECRET}
AMPLITUDE = {"api_key": "key", "secret_key": SECRET}
PATHS = ["data/*.csv"]


@pytest.mark.parametrize(
    "config",
    [
        pytest.param({}, id="nothing: the bundled sample"),
        pytest.param({"start_date": "2024-03-01", "end_date": "2024-03-02T00:00:00Z"}, id="dates"),
        pytest.param({"mixpanel": MIXPANEL}, id="mixpanel"),
        pytest.param(
            {"mixpanel": {**MIXPANEL, "project_timezone": "America/New_York"}}, id="timezone"
        ),
        pytest.param({"amplitude": {**AMPLITUDE, "lookback_hours": 0}}, id="amplitude"),
        pytest.param(
            {"files": {"paths": ["data/*.csv"], "mapping": {"event_ts": "t", "event_name": "e"}}},
            id="files mapped",
        ),
        pytest.param(
            {"files": {"paths": PATHS, "mapping": {"event_ts": "t", "event_type": "k"}}}, id="type"
        ),
        pytest.param({"event_map": {"Checkout Done": "purchase"}}, id="event_map"),
    ],
)
def test_valid_settings(config: dict[str, Any]) -> None:
    assert validate_config(config) == []


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"start_date": "yesterday"}, ["start_date must be an ISO-8601 date or time"]),
        ({"end_date": "soon"}, ["end_date must be an ISO-8601 date or time"]),
        (
            {"start_date": "2024-03-02", "end_date": "2024-03-01"},
            ["start_date is later than end_date"],
        ),
        ({"event_map": {"Buy": ""}}, ["event_map['Buy'] must name a canonical event type"]),
        ({"event_map": {"Buy": 3}}, ["event_map['Buy'] must name a canonical event type"]),
        (
            {"mixpanel": {"project_id": "1234567"}},
            [
                "mixpanel.username is required",
                "mixpanel.secret is required",
            ],
        ),
        (
            {"mixpanel": {**MIXPANEL, "project_id": "my-project"}},
            ["mixpanel.project_id must be the numeric project id, not 'my-project'"],
        ),
        (
            {"mixpanel": {**MIXPANEL, "project_timezone": "Mars/Olympus"}},
            ["mixpanel.project_timezone is not an IANA timezone: 'Mars/Olympus'"],
        ),
        (
            {"mixpanel": {**MIXPANEL, "window_days": 0, "lookback_days": -1}},
            [
                "mixpanel.window_days must be a whole number of at least 1, not 0",
                "mixpanel.lookback_days must be a whole number of at least 0, not -1",
            ],
        ),
        (
            {"amplitude": {"api_key": "key"}},
            ["amplitude.secret_key is required to read the Amplitude export"],
        ),
        (
            {"amplitude": {**AMPLITUDE, "window_hours": 0}},
            ["amplitude.window_hours must be a whole number of at least 1, not 0"],
        ),
        ({"files": {"paths": "data/*.csv"}}, ["files.paths must be a list of glob patterns"]),
        (
            {"files": {"paths": PATHS, "mapping": {"user_id": "uid"}}},
            [
                "files.mapping must map event_ts to the column holding the event time",
                "files.mapping must map event_name (or event_type) to a column",
            ],
        ),
        (
            {
                "files": {
                    "paths": PATHS,
                    "mapping": {"event_ts": "t", "event_name": "e", "when": "w"},
                }
            },
            ["files.mapping has keys that are not canonical fields: when"],
        ),
        (
            {"files": {"paths": PATHS, "mapping": {"event_ts": "t", "event_name": 5}}},
            ["files.mapping must give a column name for: event_name"],
        ),
        (
            {"files": {"paths": PATHS, "csv_delimiter": ";;"}},
            ["files.csv_delimiter must be one character"],
        ),
        (
            {"files": {"mapping": {"event_ts": "t", "event_name": "e"}}},
            ["files.paths is required to read event files"],
        ),
    ],
)
def test_wrong_settings(config: dict[str, Any], expected: list[str]) -> None:
    errors = validate_config(config)
    assert len(errors) == len(expected), errors
    for error, start in zip(errors, expected, strict=True):
        assert error.startswith(start), (error, start)
    assert not any(SECRET in error for error in errors)


def test_validate_config_tolerates_a_config_of_the_wrong_shape() -> None:
    # The schema reports these; the rules must not crash on them.
    assert validate_config({"mixpanel": "yes", "event_map": ["a"], "files": 3}) == []


def test_the_tap_reports_every_wrong_setting_at_once() -> None:
    config = {
        "start_date": "2024-03-02",
        "end_date": "2024-03-01",
        "mixpanel": {**MIXPANEL, "region": "mars", "unknown": 1, "window_days": 0},
        "amplitude": {"api_key": "key", "secret_key": 12345},
    }
    with pytest.raises(ClickstreamConfigError) as caught:
        TapClickstream(config=config, parse_env_config=False)
    errors = caught.value.errors
    assert len(errors) == 5, errors
    text = "\n".join(errors)
    # Schema errors, by setting name ...
    assert "mixpanel.region: 'mars' is not one of ['us', 'eu', 'in']" in text
    assert "mixpanel: Additional properties are not allowed ('unknown' was unexpected)" in text
    # ... a secret of the wrong type, without its value ...
    assert "amplitude.secret_key: the value is not valid (type check failed)" in text
    assert "12345" not in text
    # ... and the rules JSON schema cannot express, in the same report.
    assert "start_date is later than end_date" in text
    assert "mixpanel.window_days must be a whole number of at least 1, not 0" in text
    assert "amplitude.secret_key is required" not in text  # present, just the wrong type
    assert SECRET not in text


def test_schema_defaults_are_filled_in() -> None:
    tap = TapClickstream(config={"mixpanel": MIXPANEL}, parse_env_config=False)
    assert tap.config["mixpanel"]["region"] == "us"
    assert tap.config["mixpanel"]["window_days"] == 7


def test_the_cli_prints_each_wrong_setting_and_exits_non_zero(tmp_path: Any) -> None:
    config = {"start_date": "soon", "mixpanel": {"project_id": "abc", "secret": SECRET}}
    proc = run_cli(config, tmp_path)
    assert proc.returncode == 1
    for setting in ("start_date", "mixpanel.username", "mixpanel.project_id"):
        assert setting in proc.stderr
    assert SECRET not in proc.stderr + proc.stdout
    assert proc.stdout == ""  # no sync started
