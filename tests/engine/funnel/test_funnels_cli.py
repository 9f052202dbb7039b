"""``personalize funnel`` and ``personalize report`` through click, on a DuckDB file store."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from target_personalize.commands.funnel import funnel, parse_window
from target_personalize.commands.report import report
from target_personalize.engine import EventStore
from tests.engine.conftest import Journeys

from .test_funnels import discovery_set


@pytest.fixture
def database_url(tmp_path: Path, journeys: Journeys) -> str:
    url = f"duckdb:///{tmp_path / 'store.duckdb'}"
    with EventStore(url) as store:
        discovery_set(journeys).load(store)
    return url


def run(command: click.Command, *args: str) -> str:
    result = CliRunner().invoke(command, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_discovered_json(database_url: str) -> None:
    output = run(
        funnel,
        "--database-url",
        database_url,
        "--conversion",
        "purchase",
        "--min-share",
        "0.5",
        "--format",
        "json",
    )
    data = json.loads(output)
    assert data["kind"] == "discovered"
    assert (data["units"], data["converters"], data["base_rate"]) == (8, 4, 0.5)
    assert [s["event_type"] for s in data["steps"]] == [
        "page_view",
        "product_view",
        "add_to_cart",
        "purchase",
    ]
    assert [s["funnel_units"] for s in data["steps"]] == [5, 3, 2, 2]
    assert data["converting_paths"][0] == {
        "path": ["page_view", "product_view", "add_to_cart"],
        "converting": True,
        "units": 2,
        "support": 0.5,
        "conversion_rate": 1.0,
    }
    assert data["event_weights"]["purchase"] == 1.0
    assert set(data) >= {"contributions", "signals", "time_to_convert", "conversion_probability"}


def test_explicit_json_appends_the_conversion(database_url: str) -> None:
    output = run(
        funnel,
        "--database-url",
        database_url,
        "--conversion",
        "purchase",
        "--steps",
        "page_view,add_to_cart",
        "--window",
        "2m",
        "--format",
        "json",
    )
    data = json.loads(output)
    assert data["kind"] == "explicit"
    assert [s["name"] for s in data["steps"]] == ["page_view", "add_to_cart", "purchase"]
    # carts within 2 minutes of the first page view: j1 (120 s), j7 (60 s); purchases j7 only
    assert [s["units"] for s in data["steps"]] == [5, 2, 1]
    assert data["window_seconds"] == 120.0
    assert (data["entered"], data["completed"]) == (5, 1)


def test_tables(database_url: str) -> None:
    output = run(funnel, "--database-url", database_url, "--conversion", "purchase")
    assert "Discovered funnel" in output
    assert "4 of 8 converted (50.00%)" in output
    assert "Top converting paths" in output
    assert "event weights:" in output
    output = run(
        funnel,
        "--database-url",
        database_url,
        "--conversion",
        "purchase",
        "--steps",
        "add_to_cart",
        "--unit",
        "user",
        "--order",
        "strict",
    )
    assert "Funnel per user (strict order, window 7.0 d" in output
    # the purchase right after the cart: j1, j2, j7 (j6 never buys)
    assert "completed 3 of 4 (75.0%)" in output


def test_report_command(database_url: str, tmp_path: Path) -> None:
    out = tmp_path / "out" / "report.html"
    output = run(
        report,
        "--database-url",
        database_url,
        "--conversion",
        "purchase",
        "--steps",
        "page_view,add_to_cart",
        "--out",
        str(out),
    )
    assert "4 of 8 sessions converted" in output
    page = out.read_text(encoding="utf-8")
    assert "Your funnel" in page
    assert "Funnel toward purchase" in page


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("7d", timedelta(days=7)),
        ("12h", timedelta(hours=12)),
        ("30m", timedelta(minutes=30)),
        ("90s", timedelta(seconds=90)),
        ("1.5w", timedelta(weeks=1.5)),
        ("none", None),
        (None, "default"),
    ],
)
def test_parse_window(text, expected) -> None:
    assert parse_window(text) == expected


def test_errors_are_clean(database_url: str) -> None:
    result = CliRunner().invoke(
        funnel, ["--database-url", database_url, "--conversion", "purchase", "--window", "7 days"]
    )
    assert result.exit_code == 2
    assert "is not a window" in result.output
    result = CliRunner().invoke(
        funnel,
        [
            "--database-url",
            database_url,
            "--conversion",
            "purchase",
            "--since",
            "2024-02-01",
            "--until",
            "2024-01-01",
        ],
    )
    assert result.exit_code == 1
    assert "must be before" in result.output
    result = CliRunner().invoke(
        funnel, ["--database-url", database_url, "--conversion", "purchase", "--steps", "a,,b"]
    )
    assert result.exit_code == 2
