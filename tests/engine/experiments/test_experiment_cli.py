"""``personalize experiment create | list | stop | report`` on a small store (issue 12)."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from target_personalize.cli import main
from target_personalize.commands.experiment import parse_duration
from target_personalize.engine import EventStore

from .test_store_readout import _shop


def _run(*args: str) -> str:
    result = CliRunner().invoke(main, ["experiment", *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_create_list_stop(tmp_path: Path) -> None:
    url = f"duckdb:///{tmp_path / 's.duckdb'}"
    out = _run(
        "create", "checkout", "--variant", "control=popularity",
        "--variant", "engine=objectives:conversion=1,margin=0.5", "--traffic", "10,10",
        "--conversion", "booking", "--database-url", url,
    )  # fmt: skip
    assert "control=popularity 10%" in out and "conversion booking" in out
    listed = json.loads(_run("list", "--format", "json", "--database-url", url))
    assert listed[0]["experiment_id"] == "checkout"
    assert (listed[0]["status"], listed[0]["coverage"]) == ("running", pytest.approx(0.2))
    table = _run("list", "--database-url", url)
    assert "checkout" in table and max(map(len, table.splitlines())) <= 80
    assert "Stopped experiment checkout" in _run("stop", "checkout", "--database-url", url)
    assert json.loads(_run("list", "--format", "json", "--database-url", url))[0]["status"] == (
        "stopped"
    )
    again = CliRunner().invoke(
        main,
        ["experiment", "create", "checkout", "--variant", "a=none", "--variant", "b=engine",
         "--database-url", url],
    )  # fmt: skip
    assert again.exit_code != 0 and "exists already" in again.output
    bad = CliRunner().invoke(
        main, ["experiment", "create", "x", "--variant", "a=nope", "--variant", "b=engine",
               "--database-url", url],
    )  # fmt: skip
    assert bad.exit_code != 0 and "unknown ranker 'nope'" in bad.output


def test_report_in_three_formats(tmp_path: Path) -> None:
    url = f"duckdb:///{tmp_path / 's.duckdb'}"
    with EventStore(url) as store:
        _shop(store)
    result = json.loads(
        _run("report", "--experiment", "exp", "--format", "json", "--database-url", url)
    )
    assert {"experiment_id", "conversion", "control", "variants", "lift", "srm", "excluded"} <= set(
        result
    )
    assert [v["visitors"] for v in result["variants"]] == [2, 3]
    wider = json.loads(
        _run("report", "--experiment", "exp", "--format", "json", "--attribution-window", "2d",
             "--database-url", url)
    )  # fmt: skip
    assert wider["variants"][1]["attributed_view_through"] == 2
    table = _run("report", "--experiment", "exp", "--sequential", "--database-url", url)
    assert "always-valid" in table and "conversion_rate" in table
    assert max(map(len, table.splitlines())) <= 80
    page = tmp_path / "out" / "r.html"
    page.parent.mkdir()
    _run("report", "--experiment", "exp", "--format", "html", "--output", str(page),
         "--database-url", url)  # fmt: skip
    assert "<h1>Experiment exp</h1>" in page.read_text()
    missing = CliRunner().invoke(
        main, ["experiment", "report", "--experiment", "nope", "--database-url", url]
    )
    assert missing.exit_code != 0 and "no exposure names it" in missing.output


def test_durations() -> None:
    assert parse_duration("24h").total_seconds() == 86400
    assert parse_duration("90s").total_seconds() == 90
    assert parse_duration("1.5d").total_seconds() == 129600
    with pytest.raises(click.BadParameter, match="not a duration"):
        parse_duration("soon")
