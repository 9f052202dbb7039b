"""`meltano run` end to end, with real subprocesses: the README's demo, and the inherited
extractors of this repository's meltano.yml, in a fresh copy of the project, against local
servers that speak Mixpanel's, Amplitude's and GA4's APIs."""

from __future__ import annotations

import json
import re
import subprocess
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from target_personalize.engine import EventStore
from tests.e2e.meltano_project import ROOT, meltano, meltano_env, served_stats
from tests.fakes.amplitude import FakeAmplitude
from tests.fakes.ga4 import FakeGA4
from tests.fakes.mixpanel import FakeMixpanel
from tests.tap_clickstream.helpers import FIXTURES, load_jsonl

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh copy of this repository's Meltano project, its plugins installed from the
    checkout."""
    home = tmp_path_factory.mktemp("project")
    text = (ROOT / "meltano.yml").read_text()
    assert text.count("pip_url: -e .\n") == 2
    (home / "meltano.yml").write_text(text.replace("pip_url: -e .\n", f"pip_url: {ROOT}\n"))
    meltano(["install"], home, meltano_env())
    return home


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """A private Meltano system database (fresh state) and store for one test."""
    return meltano_env(
        MELTANO_DATABASE_URI=f"sqlite:///{tmp_path / 'meltano.db'}",
        TARGET_PERSONALIZE_DATABASE_URL=f"duckdb:///{tmp_path / 'store.duckdb'}",
        **extra,
    )


def _windows(requests: list[dict[str, object]]) -> list[tuple[date, date]]:
    """The Mixpanel export windows of recorded requests."""
    return [
        (date.fromisoformat(q["from_date"]), date.fromisoformat(q["to_date"]))
        for q in (r["query"] for r in requests)
        if isinstance(q, dict)
    ]


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
    # The A/B test: the sample's visitors served in two variants, then read out.
    served = re.search(r"Served 300 visitors in demo-\S+: control (\d+), engine (\d+)", done.stdout)
    assert served is not None and int(served[1]) + int(served[2]) == 300
    assert "Sample ratio: p = " in done.stdout and "(ok)" in done.stdout


def test_meltano_run_reads_mixpanel_and_amplitude_into_the_store(
    project: Path, tmp_path: Path
) -> None:
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
        first = meltano(["run", "tap-clickstream--mixpanel", "target-personalize"], project, env)
        assert _windows(mixpanel.requests)[0][0] == (now - timedelta(days=4)).date()
        meltano(["run", "tap-clickstream--amplitude", "target-personalize"], project, env)
        # A second, scheduled run re-reads only the lookback window: still every event once.
        job = ["tap-clickstream--mixpanel target-personalize"]
        meltano(["job", "add", "mixpanel", "--tasks", json.dumps(job)], project, env)
        meltano(
            ["schedule", "add", "mixpanel-daily", "--job", "mixpanel", "--interval", "@daily"],
            project,
            env,
        )
        mixpanel.clear_requests()
        meltano(["schedule", "run", "mixpanel-daily"], project, env)
        today = now.date()
        assert _windows(mixpanel.requests) == [(today - timedelta(days=2), today)]
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
    state_id = "dev:tap-clickstream--mixpanel-to-target-personalize"
    state = meltano(["state", "get", state_id], project, env)
    assert "mixpanel_events" in state.stdout and "svc-secret" not in state.stdout
    # The loader's `serve` command runs the HTTP API over the same store, with its settings.
    stats = served_stats(project, env, ["invoke", "target-personalize:serve"])
    assert stats["store_events"] == 70


def test_meltano_run_reads_each_ga4_report_as_a_stream(project: Path, tmp_path: Path) -> None:
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
        # One report selected: only its stream is read, and only it keeps state.
        meltano(["select", "tap-clickstream--ga4", "ga4_report_daily"], project, env)
        meltano(["run", "tap-clickstream--ga4", "target-personalize"], project, env)
        assert _reports(env).keys() == {"daily"}
        assert set(_ga4_bookmarks(project, env)) == {"ga4_report_daily"}
        # Every report again (none selected means all).
        meltano(["select", "tap-clickstream--ga4", "--clear"], project, env)
        meltano(["run", "tap-clickstream--ga4", "target-personalize"], project, env)
    by_report = _reports(env)
    assert set(by_report) == {"daily", "sales"} and all(by_report.values())
    bookmarks = _ga4_bookmarks(project, env)
    assert bookmarks["ga4_report_daily"]["last_date"] == "2024-03-03"
    assert bookmarks["ga4_report_sales"]["last_date"] == "2024-03-03"


def _reports(env: dict[str, str]) -> dict[str, int]:
    with EventStore(env["TARGET_PERSONALIZE_DATABASE_URL"]) as store:
        return dict(
            store.query(
                "SELECT json_extract_string(properties, '$.report'), count(*) FROM events "
                "WHERE source = 'ga4_report' GROUP BY 1"
            )
        )


def _ga4_bookmarks(project: Path, env: dict[str, str]) -> dict[str, dict[str, str]]:
    state = meltano(
        ["state", "get", "dev:tap-clickstream--ga4-to-target-personalize"], project, env
    )
    bookmarks: dict[str, dict[str, str]] = json.loads(state.stdout)["singer_state"]["bookmarks"]
    return bookmarks
