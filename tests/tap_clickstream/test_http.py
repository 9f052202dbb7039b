"""How each export stream treats HTTP statuses, and how long it waits before a retry."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
import requests
from singer_sdk.exceptions import FatalAPIError, RetriableAPIError

from tap_clickstream.exceptions import WindowTooLargeError
from tap_clickstream.streams import ExportAPIStream
from tap_clickstream.tap import TapClickstream

SECRET = "hunter2-never-shown"
CONFIG = {
    "mixpanel": {"project_id": "1234567", "username": "svc", "secret": SECRET},
    "amplitude": {"api_key": "key", "secret_key": SECRET},
}
TAP = TapClickstream(config=CONFIG, parse_env_config=False)


def stream(name: str) -> ExportAPIStream:
    found = TAP.streams[name]
    assert isinstance(found, ExportAPIStream)
    return found


def response(
    status: int, body: Any = b"", headers: dict[str, str] | None = None
) -> requests.Response:
    made = requests.Response()
    made.status_code = status
    made.reason = requests.status_codes._codes[status][0].replace("_", " ").title()  # type: ignore[attr-defined]
    made._content = json.dumps(body).encode() if isinstance(body, dict) else body
    made.headers.update(headers or {})
    made.url = "https://data.mixpanel.com/api/2.0/export?project_id=1234567"
    # The request as sent, credentials included: none of it may reach an error message.
    credentials = base64.b64encode(f"svc:{SECRET}".encode()).decode()
    made.request = requests.Request(
        "GET", made.url, headers={"Authorization": f"Basic {credentials}"}
    ).prepare()
    return made


@pytest.mark.parametrize(
    ("name", "status", "outcome"),
    [
        ("mixpanel_events", 200, None),
        ("mixpanel_events", 429, RetriableAPIError),
        ("mixpanel_events", 500, RetriableAPIError),
        ("mixpanel_events", 502, RetriableAPIError),
        ("mixpanel_events", 503, RetriableAPIError),
        ("mixpanel_events", 400, FatalAPIError),
        ("mixpanel_events", 401, FatalAPIError),
        ("mixpanel_events", 402, FatalAPIError),
        ("mixpanel_events", 403, FatalAPIError),
        ("mixpanel_events", 404, FatalAPIError),
        ("amplitude_events", 200, None),
        ("amplitude_events", 404, None),  # no data in the window
        ("amplitude_events", 400, WindowTooLargeError),  # over 4 GB: split
        ("amplitude_events", 504, WindowTooLargeError),  # timed out: split
        ("amplitude_events", 429, RetriableAPIError),
        ("amplitude_events", 500, RetriableAPIError),
        ("amplitude_events", 503, RetriableAPIError),
        ("amplitude_events", 401, FatalAPIError),
        ("amplitude_events", 403, FatalAPIError),
    ],
)
def test_status_mapping(name: str, status: int, outcome: type[Exception] | None) -> None:
    answer = response(status, {"error": "something"})
    if outcome is None:
        stream(name).validate_response(answer)
        return
    with pytest.raises(outcome) as caught:
        stream(name).validate_response(answer)
    assert type(caught.value) is outcome  # not a subclass standing in for another
    shown = str(caught.value)
    assert SECRET not in shown
    assert base64.b64encode(f"svc:{SECRET}".encode()).decode() not in shown


@pytest.mark.parametrize(
    ("name", "status", "body", "settings"),
    [
        (
            "mixpanel_events",
            401,
            {"error": "Unable to authenticate request"},
            "mixpanel.username, mixpanel.secret",
        ),
        ("mixpanel_events", 403, {"error": "Forbidden"}, "mixpanel.project_id"),
        ("mixpanel_events", 400, {"error": "invalid project_id: 99"}, "Check mixpanel.project_id."),
        (
            "mixpanel_events",
            400,
            {"error": "to_date cannot be later than today"},
            "Check start_date, end_date and mixpanel.project_timezone.",
        ),
        ("mixpanel_events", 402, {"error": "plan"}, "export API"),
        ("mixpanel_events", 404, b"Not found", "mixpanel.region and mixpanel.api_url"),
        (
            "amplitude_events",
            403,
            {"error": "Invalid API key"},
            "amplitude.api_key, amplitude.secret_key",
        ),
        ("amplitude_events", 401, b"", "amplitude.region"),
    ],
)
def test_errors_name_the_setting_to_fix(name: str, status: int, body: Any, settings: str) -> None:
    with pytest.raises(FatalAPIError) as caught:
        stream(name).validate_response(response(status, body))
    message = str(caught.value)
    assert settings in message
    assert str(status) in message
    if isinstance(body, dict):
        assert body["error"] in message  # what the API said, not its whole JSON
    assert "project_id=1234567" not in message  # no query strings


def _waits(generator_owner: ExportAPIStream, exceptions: list[Exception]) -> list[float]:
    waits = generator_owner.backoff_wait_generator()
    next(waits)  # primed, as backoff does
    return [waits.send(exc) for exc in exceptions]


def test_retry_after_is_honoured_and_capped() -> None:
    mp = stream("mixpanel_events")
    throttled = [
        RetriableAPIError("429", response(429, headers={"Retry-After": "7"})),
        RetriableAPIError("503", response(503, headers={"Retry-After": "0"})),
        RetriableAPIError("429", response(429, headers={"Retry-After": "999999"})),
        RetriableAPIError("429", response(429, headers={"Retry-After": "soon"})),
    ]
    assert _waits(mp, throttled) == [7.0, 0.0, mp.max_retry_after, 8.0]


def test_without_retry_after_waits_grow_exponentially() -> None:
    errors: list[Exception] = [RetriableAPIError("503", response(503)) for _ in range(8)]
    errors[0] = requests.exceptions.ConnectionError("refused")  # no response at all
    assert _waits(stream("amplitude_events"), errors) == [1, 2, 4, 8, 16, 32, 60, 60]


def test_jitter_only_adds_a_little() -> None:
    mp = stream("mixpanel_events")
    for value in (0.0, 1.0, 2.0, 60.0):
        jittered = mp.backoff_jitter(value)
        assert value <= jittered <= value + min(1.0, value / 4)


@pytest.mark.parametrize(
    ("block", "settings", "expected"),
    [
        ("mixpanel", {}, "https://data.mixpanel.com"),
        ("mixpanel", {"region": "eu"}, "https://data-eu.mixpanel.com"),
        ("amplitude", {"region": "eu"}, "https://analytics.eu.amplitude.com"),
        ("amplitude", {"api_url": "http://127.0.0.1:9/", "region": "eu"}, "http://127.0.0.1:9"),
    ],
)
def test_export_host_by_region_unless_api_url_is_set(
    block: str, settings: dict[str, str], expected: str
) -> None:
    credentials = {
        "mixpanel": {"project_id": "1", "username": "u", "secret": "s"},
        "amplitude": {"api_key": "k", "secret_key": "s"},
    }[block]
    tap = TapClickstream(config={block: {**credentials, **settings}}, parse_env_config=False)
    (stream,) = tap.streams.values()
    assert stream.url_base == expected
