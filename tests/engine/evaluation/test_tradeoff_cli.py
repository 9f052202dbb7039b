"""``personalize tradeoff`` on a small store file."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from target_personalize.commands.tradeoff import tradeoff_command
from target_personalize.engine import EventStore, SessionRanker, save_ranker
from tests.engine.ranking.contract import session_events


def _store(tmp_path: Path) -> str:
    url = f"duckdb:///{tmp_path / 'shop.duckdb'}"
    sessions = [
        ["A", "B", ("B", "add_to_cart"), ("B", "purchase")],
        ["C", "D"],
        ["A", "B"],
        ["C", "D", "A"],
    ] * 8
    catalog = {"B": {"price": 20.0}, "D": {"price": 5.0}, "A": {"price": 1.0}, "C": {"price": 2.0}}
    with EventStore(url) as store:
        store.load_events(session_events(sessions, catalog=catalog))
        save_ranker(SessionRanker().fit(store, objectives={"margin": 1.0}), store)
    return url


def test_tradeoff_sweeps_the_grid_marks_the_current_setting_and_warns(tmp_path: Path) -> None:
    url = _store(tmp_path)
    page = tmp_path / "frontier.html"
    args = ["--database-url", url, "--objective", "margin=0..1", "--steps", "2", "-k", "2"]
    result = CliRunner().invoke(tradeoff_command, [*args, "--format", "json", "--html", str(page)])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert [p["label"] for p in report["points"]] == ["relevance", "margin 1"]
    assert report["current"] == {
        "conversion": 0.0,
        "margin": 1.0,
        "revenue": 0.0,
        "engagement": 0.0,
    }
    assert report["too_small"] and "under 200" in result.stderr
    assert report["value_kind"] == "price"
    for point in report["points"]:
        hit = point["hit_rate"]
        assert hit["low"] <= hit["value"] <= hit["high"]
    html = page.read_text()
    assert "<svg" in html and "margin 1" in html and "value = price" in html
    table = CliRunner().invoke(tradeoff_command, args)
    assert table.exit_code == 0, table.output
    assert max(len(line) for line in table.stdout.splitlines()) <= 80
    assert "value = price" in " ".join(table.stdout.split()) and "<" in table.stdout


def test_tradeoff_refuses_a_bad_range(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        tradeoff_command, ["--database-url", _store(tmp_path), "--objective", "margin=2..1"]
    )
    assert result.exit_code == 2 and "goes down" in result.output
