"""Tests for the fake Mixpanel and Amplitude servers, over real HTTP."""

from __future__ import annotations

import gzip
import io
import json
import threading
import zipfile
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

import pytest
import requests

from .amplitude import FakeAmplitude
from .mixpanel import FakeMixpanel

MP_AUTH = ("svc-user", "svc-secret")
AMP_AUTH = ("amp-key", "amp-secret")
TODAY = date(2024, 3, 10)


def _ts(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> int:
    return int(datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp())


def _mp_event(i: int, time: int, name: str = "page_view") -> dict[str, Any]:
    return {
        "event": name,
        "properties": {
            "time": time,
            "distinct_id": f"u{i}",
            "$insert_id": f"i{i}",
            "pad": "x" * 40,
        },
    }


MP_EVENTS = [
    _mp_event(0, _ts(2024, 3, 1, 0, 0)),
    _mp_event(1, _ts(2024, 3, 1, 23, 59) * 1000 + 123, "signup"),  # milliseconds
    _mp_event(2, _ts(2024, 3, 2, 12, 0)),
    _mp_event(3, _ts(2024, 3, 3, 0, 0, 1), "purchase"),
]


@pytest.fixture
def mp() -> Iterator[FakeMixpanel]:
    with FakeMixpanel(MP_EVENTS, today=TODAY) as fake:
        yield fake


def _mp_get(
    fake: FakeMixpanel, headers: dict[str, str] | None = None, stream: bool = False, **params: str
) -> requests.Response:
    query = {"project_id": "1234567", "from_date": "2024-03-01", "to_date": "2024-03-02", **params}
    url = f"{fake.url}/api/2.0/export"
    return requests.get(url, params=query, auth=MP_AUTH, headers=headers, stream=stream, timeout=5)


def _lines(resp: requests.Response) -> list[dict[str, Any]]:
    return [json.loads(line) for line in resp.text.splitlines()]


def test_mixpanel_date_filter_seconds_and_ms(mp: FakeMixpanel) -> None:
    resp = _mp_get(mp)
    assert resp.status_code == 200
    assert resp.headers["Content-Type"] == "text/plain"
    assert resp.headers["Transfer-Encoding"] == "chunked"
    assert resp.text.endswith("\n")
    assert [e["properties"]["distinct_id"] for e in _lines(resp)] == ["u0", "u1", "u2"]
    one_day = _lines(_mp_get(mp, from_date="2024-03-03", to_date="2024-03-03"))
    assert [e["event"] for e in one_day] == ["purchase"]
    empty = _mp_get(mp, from_date="2024-02-01", to_date="2024-02-28")
    assert empty.status_code == 200 and empty.content == b""


def test_mixpanel_trailing_slash_filters_and_time_in_ms(mp: FakeMixpanel) -> None:
    resp = requests.get(
        f"{mp.url}/api/2.0/export/",
        params={
            "project_id": "1234567",
            "from_date": "2024-03-01",
            "to_date": "2024-03-03",
            "event": json.dumps(["page_view", "signup"]),
            "time_in_ms": "true",
            "limit": "2",
        },
        auth=MP_AUTH,
        timeout=5,
    )
    events = _lines(resp)
    assert [e["event"] for e in events] == ["page_view", "signup"]
    assert events[0]["properties"]["time"] == _ts(2024, 3, 1) * 1000
    assert events[1]["properties"]["time"] == MP_EVENTS[1]["properties"]["time"]


def test_mixpanel_gzip_only_when_large_and_accepted(mp: FakeMixpanel) -> None:
    small = _mp_get(mp, from_date="2024-03-03", to_date="2024-03-03")
    assert "Content-Encoding" not in small.headers
    many = [_mp_event(i, _ts(2024, 3, 1) + i) for i in range(200)]
    with FakeMixpanel(many, today=TODAY) as fake:
        resp = _mp_get(fake)
        assert resp.headers["Content-Encoding"] == "gzip"
        assert len(_lines(resp)) == 200
        raw = _mp_get(fake, headers={"Accept-Encoding": "identity"})
        assert "Content-Encoding" not in raw.headers
        assert raw.text == resp.text
        assert fake.requests[0]["headers"]["Accept-Encoding"].startswith("gzip")


def test_mixpanel_streams_chunks_before_body_is_complete() -> None:
    release = threading.Event()

    def source(start: date, end: date) -> Iterator[bytes]:
        for i in range(3000):  # > one 64 KiB block before blocking
            pad = b"y" * 40
            yield b'{"event":"e","properties":{"time":1709251200,"i":%d,"pad":"%s"}}' % (i, pad)
        assert release.wait(5)
        yield b'{"event":"last","properties":{"time":1709251200}}'

    with FakeMixpanel(source, today=TODAY) as fake:
        with requests.get(
            f"{fake.url}/api/2.0/export",
            params={"project_id": "1234567", "from_date": "2024-03-01", "to_date": "2024-03-01"},
            auth=MP_AUTH,
            headers={"Accept-Encoding": "identity"},
            stream=True,
            timeout=5,
        ) as resp:
            lines = resp.iter_lines()
            assert json.loads(next(lines))["properties"]["i"] == 0  # arrives while server waits
            release.set()
            rest = [json.loads(line) for line in lines if line]
        assert len(rest) == 3000 and rest[-1]["event"] == "last"


def test_mixpanel_gzip_streaming_callable() -> None:
    def source(start: date, end: date) -> Iterator[bytes]:
        line = b'{"event":"e","properties":{"time":1709251200,"distinct_id":"d"}}'
        return iter([line] * 20_000)

    with FakeMixpanel(source, today=TODAY) as fake, _mp_get(fake, stream=True) as resp:
        assert resp.headers["Content-Encoding"] == "gzip"
        assert sum(1 for line in resp.iter_lines() if line) == 20_000


@pytest.mark.parametrize(
    ("params", "auth", "status", "error"),
    [
        ({}, ("svc-user", "wrong"), 401, "Unable to authenticate request"),
        ({"project_id": "999"}, MP_AUTH, 400, "invalid project_id: 999"),
        ({"to_date": "2024-03-11"}, MP_AUTH, 400, "to_date cannot be later than today"),
        ({"from_date": "2024-03-03"}, MP_AUTH, 400, "from_date cannot be later than to_date"),
        ({"from_date": "20240301"}, MP_AUTH, 400, "from_date: invalid date '20240301'"),
        ({"event": "page_view"}, MP_AUTH, 400, "event must be a JSON array of event names"),
    ],
)
def test_mixpanel_errors(
    mp: FakeMixpanel, params: dict[str, str], auth: Any, status: int, error: str
) -> None:
    query = {"project_id": "1234567", "from_date": "2024-03-01", "to_date": "2024-03-02", **params}
    resp = requests.get(f"{mp.url}/api/2.0/export", params=query, auth=auth, timeout=5)
    assert resp.status_code == status
    body = resp.json()
    assert body["error"].startswith(error) and body["request"].startswith("/api/2.0/export?")


def test_mixpanel_missing_project_id(mp: FakeMixpanel) -> None:
    query = {"from_date": "2024-03-01", "to_date": "2024-03-01"}
    resp = requests.get(f"{mp.url}/api/2.0/export", params=query, auth=MP_AUTH, timeout=5)
    assert resp.status_code == 400 and "project_id" in resp.json()["error"]


def test_failure_queue_and_request_log(mp: FakeMixpanel) -> None:
    mp.fail_next(429, {"Retry-After": "2"}, b'{"error": "rate limited"}')
    mp.fail_next(503)
    first, second, third = (_mp_get(mp) for _ in range(3))
    assert first.status_code == 429 and first.headers["Retry-After"] == "2"
    assert first.json() == {"error": "rate limited"}
    assert second.status_code == 503
    assert third.status_code == 200 and len(_lines(third)) == 3
    log = mp.requests
    assert [r["status"] for r in log] == [429, 503, 200]
    assert log[0]["method"] == "GET" and log[0]["path"] == "/api/2.0/export"
    assert log[0]["query"]["from_date"] == "2024-03-01"
    assert all("authorization" not in {k.lower() for k in r["headers"]} for r in log)
    mp.clear_requests()
    assert mp.requests == []


def test_mixpanel_bad_lines_and_terminated_early(mp: FakeMixpanel) -> None:
    mp.bad_lines = {0: b"not json", 2: b'{"event": "x", "prop'}
    mp.terminated_early = True
    lines = _mp_get(mp).text.split("\n")
    assert lines[0] == "not json"
    assert lines[3] == '{"event": "x", "prop'
    assert lines[-2:] == ["terminated early", ""]
    assert len(lines) == 3 + 2 + 1 + 1


@pytest.mark.parametrize("accept", ["identity", "gzip"])
def test_mixpanel_drop_after(accept: str) -> None:
    events = [_mp_event(i, _ts(2024, 3, 1) + i) for i in range(100)]
    with FakeMixpanel(events, today=TODAY) as fake:
        fake.drop_after = 10
        fake.drop_times = 1
        got: list[dict[str, Any]] = []
        resp = _mp_get(fake, stream=True, headers={"Accept-Encoding": accept})
        with pytest.raises(requests.exceptions.ChunkedEncodingError), resp:
            for line in resp.iter_lines():
                got.append(json.loads(line))
        assert len(got) == 10
        assert len(_lines(_mp_get(fake))) == 100  # drop_times exhausted


# -- Amplitude -------------------------------------------------------------


def _amp_event(i: int, uploaded: str) -> dict[str, Any]:
    return {
        "uuid": f"uuid-{i}",
        "event_type": "view",
        "event_time": uploaded,
        "server_upload_time": uploaded,
        "session_id": -1,
    }


AMP_EVENTS = [
    _amp_event(0, "2024-03-01 05:00:00.000001"),
    _amp_event(1, "2024-03-01 05:10:00.000000"),
    _amp_event(2, "2024-03-01 05:59:59.999999"),
    _amp_event(3, "2024-03-01 06:30:00"),
    _amp_event(4, "2024-03-01 07:00:00.5"),
]


@pytest.fixture
def amp() -> Iterator[FakeAmplitude]:
    with FakeAmplitude(AMP_EVENTS) as fake:
        yield fake


def _amp_get(fake: FakeAmplitude, start: str, end: str, auth: Any = AMP_AUTH) -> requests.Response:
    params = {"start": start, "end": end}
    return requests.get(f"{fake.url}/api/2/export", params=params, auth=auth, timeout=5)


def _unzip(resp: requests.Response) -> dict[str, list[bytes]]:
    with zipfile.ZipFile(io.BytesIO(resp.content)) as zf:
        return {n: gzip.decompress(zf.read(n)).split(b"\n") for n in zf.namelist()}


def test_amplitude_zip_layout_and_inclusive_end(amp: FakeAmplitude) -> None:
    resp = _amp_get(amp, "20240301T05", "20240301T06")
    assert resp.status_code == 200 and resp.headers["Content-Type"] == "application/zip"
    files = _unzip(resp)
    assert sorted(files) == [
        "187520/187520_2024-03-01_5#1.json.gz",
        "187520/187520_2024-03-01_5#2.json.gz",
        "187520/187520_2024-03-01_6#1.json.gz",
    ]
    assert all(lines[-1] == b"" for lines in files.values())
    uuids = {json.loads(line)["uuid"] for lines in files.values() for line in lines if line}
    assert uuids == {"uuid-0", "uuid-1", "uuid-2", "uuid-3"}
    first = [json.loads(x)["uuid"] for x in files["187520/187520_2024-03-01_5#1.json.gz"] if x]
    assert first == ["uuid-0", "uuid-2"]


def test_amplitude_status_codes(amp: FakeAmplitude) -> None:
    assert _amp_get(amp, "20240302T00", "20240302T23").status_code == 404
    assert _amp_get(amp, "20240301T00", "20240301T23", auth=("amp-key", "bad")).status_code == 403
    assert _amp_get(amp, "2024-03-01T00", "20240301T23").status_code == 400
    assert _amp_get(amp, "20240301T05", "20240301T04").status_code == 400
    assert _amp_get(amp, "20230101T00", "20240301T23").status_code == 400  # > 365 days
    assert _amp_get(amp, "20240301T25", "20240301T23").status_code == 400
    assert _amp_get(amp, "20240301T07", "20240301T07").status_code == 200


def test_amplitude_too_large_and_timeout() -> None:
    with FakeAmplitude(AMP_EVENTS, max_hours=2, timeout_hours=1) as fake:
        too_large = _amp_get(fake, "20240301T05", "20240301T07")
        assert too_large.status_code == 400 and b"too large" in too_large.content
        assert _amp_get(fake, "20240301T05", "20240301T06").status_code == 504
        assert _amp_get(fake, "20240301T05", "20240301T05").status_code == 200
    with FakeAmplitude(AMP_EVENTS, app_id=42, files_per_hour=1) as fake:
        names = list(_unzip(_amp_get(fake, "20240301T05", "20240301T05")))
        assert names == ["42/42_2024-03-01_5#1.json.gz"]


def test_amplitude_bad_lines_and_failure_queue(amp: FakeAmplitude) -> None:
    amp.bad_lines = {"uuid-2": b"{broken"}
    amp.fail_next(429, {"Retry-After": "1"})
    limited = _amp_get(amp, "20240301T05", "20240301T05")
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "1"
    files = _unzip(_amp_get(amp, "20240301T05", "20240301T05"))
    assert files["187520/187520_2024-03-01_5#1.json.gz"][1] == b"{broken"
    assert [r["status"] for r in amp.requests] == [429, 200]
