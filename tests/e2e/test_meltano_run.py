"""`meltano run` end to end, with real subprocesses: the README's demo, and the SaaS sources
against local servers that speak Mixpanel's and Amplitude's export formats."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from target_personalize.engine import EventStore
from tests.fakes.amplitude import FakeAmplitude
from tests.fakes.ga4 import FakeGA4
from tests.fakes.mixpanel import FakeMixpanel
from tests.tap_clickstream.helpers import FIXTURES, load_jsonl

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
MELTANO = Path(sys.executable).parent / "meltano"


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """A private Meltano system database (fresh state) and store for one test."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TAP_CLICKSTREAM", "TARGET_PERSONALIZE"))
    }
    env.update(
        MELTANO_DATABASE_URI=f"sqlite:///{tmp_path / 'meltano.db'}",
        TARGET_PERSONALIZE_DATABASE_URL=f"duckdb:///{tmp_path / 'store.duckdb'}",
        **extra,
    )
    return env


def _meltano(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(MELTANO), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return done


def test_readme_demo_loads_the_bundled_sample(tmp_path: Path) -> None:
    store = tmp_path / "demo.duckdb"
    env = _env(tmp_path, PERSONALIZE_DATABASE_URL=f"duckdb:///{store}")
    (ROOT / "report.html").unlink(missing_ok=True)  # the demo must write it anew
    done = subprocess.run(
        ["bash", "scripts/demo.sh"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    assert "17,051" in done.stdout  # product views in the summary table
    assert "users 4,504" in done.stdout
    with EventStore(f"duckdb:///{store}") as result:
        summary = result.summary()
    assert (summary.events, summary.sessions, summary.items) == (17_429, 5_066, 6_493)
    assert "malformed" in done.stderr  # the sample's truncated last row is reported
    assert "Discovered funnel" in done.stdout and "add_to_cart" in done.stdout
    assert (ROOT / "report.html").stat().st_size > 5_000
    assert "Top 10 for session 192d6074" in done.stdout


def test_meltano_run_reads_mixpanel_and_amplitude_into_the_store(tmp_path: Path) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    mixpanel_events = [
        {
            "event": ["Product Viewed", "Add to Cart", "Order Completed"][n % 3],
            "properties": {
                "time": int((now - timedelta(hours=30 + n)).timestamp()),
                "distinct_id": f"user-{n % 4}",
                "$insert_id": f"mp-{n}",
                "product_id": f"sku-{n % 5}",
                "price": 10 + n,
            },
        }
        for n in range(40)
    ]
    upload = now - timedelta(hours=5)
    amplitude_events = [
        {
            "uuid": str(uuid.UUID(int=n)),
            "event_type": ["Product Viewed", "Order Completed"][n % 2],
            "event_time": (upload - timedelta(minutes=n)).strftime("%Y-%m-%d %H:%M:%S.%f"),
            "server_upload_time": upload.strftime("%Y-%m-%d %H:%M:%S.%f"),
            "user_id": f"user-{n % 3}",
            "device_id": f"device-{n % 3}",
            "session_id": -1 if n % 5 == 0 else 1_700_000_000_000 + n % 3,
            "event_properties": {"product_id": f"sku-{n % 5}"},
        }
        for n in range(30)
    ]
    start = (now - timedelta(days=4)).strftime("%Y-%m-%dT00:00:00Z")
    with FakeMixpanel(mixpanel_events) as mixpanel, FakeAmplitude(amplitude_events) as amplitude:
        env = _env(
            tmp_path,
            TAP_CLICKSTREAM__MIXPANEL_START_DATE=start,
            TAP_CLICKSTREAM__MIXPANEL_MIXPANEL_API_URL=mixpanel.url,
            TAP_CLICKSTREAM__MIXPANEL_MIXPANEL_PROJECT_ID="1234567",
            TAP_CLICKSTREAM__MIXPANEL_MIXPANEL_USERNAME="svc-user",
            TAP_CLICKSTREAM__MIXPANEL_MIXPANEL_SECRET="svc-secret",
            TAP_CLICKSTREAM__AMPLITUDE_START_DATE=start,
            TAP_CLICKSTREAM__AMPLITUDE_AMPLITUDE_API_URL=amplitude.url,
            TAP_CLICKSTREAM__AMPLITUDE_AMPLITUDE_API_KEY="amp-key",
            TAP_CLICKSTREAM__AMPLITUDE_AMPLITUDE_SECRET_KEY="amp-secret",
        )
        first = _meltano(["run", "tap-clickstream--mixpanel", "target-personalize"], env)
        _meltano(["run", "tap-clickstream--amplitude", "target-personalize"], env)
        # A second scheduled run re-reads the lookback window: still every event once.
        _meltano(["run", "tap-clickstream--mixpanel", "target-personalize"], env)
        assert len(mixpanel.requests) > 1
    assert "svc-secret" not in first.stderr + first.stdout
    with EventStore(env["TARGET_PERSONALIZE_DATABASE_URL"]) as store:
        by_source = dict(store.query("SELECT source, count(*) FROM events GROUP BY source"))
        assert by_source == {"mixpanel": 40, "amplitude": 30}
        purchases = store.query(
            "SELECT count(*) FROM events WHERE source = 'mixpanel' AND event_type = 'purchase'"
        )
        assert purchases == [(13,)]
        no_session = store.query(
            "SELECT count(*) FROM events WHERE source = 'amplitude' AND session_id IS NULL"
        )
        assert no_session == [(6,)]
    state = _meltano(["state", "get", "dev:tap-clickstream--mixpanel-to-target-personalize"], env)
    assert "mixpanel_events" in state.stdout and "svc-secret" not in state.stdout
    # The loader's `serve` command runs the HTTP API over the same store, with its settings.
    assert _served_stats(env)["store_events"] == 70


def test_meltano_run_reads_each_ga4_report_as_a_stream(tmp_path: Path) -> None:
    facts = load_jsonl(FIXTURES / "ga4" / "report_facts.jsonl")
    reports = [
        {"name": "daily", "dimensions": ["date", "eventName", "pagePath"], "metrics": ["eventCount"]},
        {"name": "sales", "dimensions": ["dateHour", "transactionId"],
         "metrics": ["eventCount", "purchaseRevenue"]},
    ]  # fmt: skip
    with FakeGA4(facts) as ga4:
        env = _env(
            tmp_path,
            TAP_CLICKSTREAM__GA4_START_DATE="2024-03-01T00:00:00Z",
            TAP_CLICKSTREAM__GA4_END_DATE="2024-03-03T23:00:00Z",
            TAP_CLICKSTREAM__GA4_GA4_PROPERTY_ID=ga4.property_id,
            TAP_CLICKSTREAM__GA4_GA4_API_ENDPOINT=ga4.url,
            TAP_CLICKSTREAM__GA4_GA4_REPORTS=json.dumps(reports),
        )
        _meltano(["run", "tap-clickstream--ga4", "target-personalize"], env)
    with EventStore(env["TARGET_PERSONALIZE_DATABASE_URL"]) as store:
        by_report = dict(
            store.query(
                "SELECT json_extract_string(properties, '$.report'), count(*) FROM events "
                "WHERE source = 'ga4_report' GROUP BY 1"
            )
        )
    assert set(by_report) == {"daily", "sales"} and all(by_report.values())
    state = _meltano(["state", "get", "dev:tap-clickstream--ga4-to-target-personalize"], env)
    bookmarks = json.loads(state.stdout)["singer_state"]["bookmarks"]
    assert bookmarks["ga4_report_daily"]["last_date"] == "2024-03-03"
    assert bookmarks["ga4_report_sales"]["last_date"] == "2024-03-03"


def _served_stats(env: dict[str, str]) -> dict[str, object]:
    """`meltano invoke target-personalize:serve`'s /v1/stats, read over HTTP."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [str(MELTANO), "invoke", "target-personalize:serve", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and server.poll() is None:
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/v1/stats?fresh=true", timeout=5)
            except httpx.TransportError:
                time.sleep(0.5)
                continue
            stats: dict[str, object] = answer.json()
            return stats
        raise AssertionError(f"the server did not answer: {server.communicate()[1][-3000:]}")
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=60)
