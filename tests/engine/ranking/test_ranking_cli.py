"""``personalize fit | recommend | rank | evaluate`` on a small store file."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from target_personalize.commands.ranking import evaluate_command, fit, rank, recommend
from target_personalize.engine import EventStore, RerankedSessionRanker, load_ranker

from .contract import follows_sessions, session_events

GROUP = click.Group(
    commands={"fit": fit, "recommend": recommend, "rank": rank, "evaluate": evaluate_command}
)


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    url = f"duckdb:///{tmp_path / 'shop.duckdb'}"
    sessions = follows_sessions() * 3
    catalog = {"B": {"price": 12.0}, "D": {"price": 3.0}}
    with EventStore(url) as store:
        store.load_events(session_events(sessions, catalog=catalog))
    return url


def test_fit_saves_next_to_the_store_and_recommend_uses_it(store_url: str, tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(GROUP, ["fit", "--database-url", store_url, "--format", "json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["saved_to"] == str(tmp_path / "shop.ranker.npz")
    assert summary["events"] == 108
    result = runner.invoke(
        GROUP,
        [
            "recommend",
            "--database-url",
            store_url,
            "--session",
            "s1",
            "-k",
            "2",
            "--format",
            "json",
        ],
    )
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert [row["item_id"] for row in answer] in (["C", "D"], ["D", "C"])
    table = runner.invoke(GROUP, ["recommend", "--database-url", store_url, "--session", "s1"])
    assert table.exit_code == 0 and "Top 20 for session s1" in table.output


def test_rank_reorders_candidates(store_url: str) -> None:
    result = CliRunner().invoke(
        GROUP,
        [
            "rank",
            "--database-url",
            store_url,
            "--session",
            "s0",
            "--items",
            "D,zzz,B",
            "--format",
            "json",
        ],
    )
    assert result.exit_code == 0, result.output
    assert [row["item_id"] for row in json.loads(result.stdout)] == ["B", "D", "zzz"]


def test_usage_errors(store_url: str) -> None:
    runner = CliRunner()
    both = runner.invoke(
        GROUP, ["recommend", "--database-url", store_url, "--user", "u", "--session", "s"]
    )
    assert both.exit_code == 2 and "exactly one" in both.output
    bad = runner.invoke(
        GROUP,
        ["recommend", "--database-url", store_url, "--session", "s0", "--objective", "clicks=1"],
    )
    assert bad.exit_code == 2 and "unknown objective" in bad.output
    half = runner.invoke(GROUP, ["evaluate", "--database-url", store_url, "--train", __file__])
    assert half.exit_code == 2


def test_evaluate_on_the_store_and_on_fixed_files(store_url: str, tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(
        GROUP, ["evaluate", "--database-url", store_url, "-k", "5", "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert [r["name"] for r in report["results"]][:4] == [
        "most popular",
        "views-only item-kNN",
        "V-SKNN",
        "session ranker",
    ]
    assert "hr@5" in report["results"][0]
    train = tmp_path / "train.txt"
    test = tmp_path / "test.txt"
    train.write_text(
        "SessionId\tItemId\tTime\n"
        + "".join(
            f"{s}\t{i}\t{s * 10 + n}\n"
            for s in range(20)
            for n, i in enumerate((1, 2) if s % 2 else (3, 4))
        )
    )
    test.write_text(
        "SessionId\tItemId\tTime\n100\t1\t1000\n100\t2\t1001\n101\t3\t1002\n101\t4\t1003\n"
    )
    table = runner.invoke(
        GROUP,
        ["evaluate", "--train", str(train), "--test", str(test), "--objective", "conversion=0"],
    )
    assert table.exit_code == 0, table.output
    assert "V-SKNN" in table.output and "2 predictions" in table.output


# What a new user met (issue 13)


def test_a_missing_or_empty_store_is_refused(tmp_path: Path) -> None:
    runner = CliRunner()
    missing = tmp_path / "nowhere.duckdb"
    for command in (["fit"], ["recommend", "--session", "s"], ["evaluate"]):
        result = runner.invoke(GROUP, [*command, "--database-url", f"duckdb:///{missing}"])
        assert result.exit_code == 1
        assert f"no store at {missing}" in result.output
    assert not missing.exists()
    empty = tmp_path / "empty.duckdb"
    EventStore(f"duckdb:///{empty}").close()
    result = runner.invoke(GROUP, ["evaluate", "--database-url", f"duckdb:///{empty}"])
    assert result.exit_code == 1 and "holds no events" in result.output


def test_an_unknown_conversion_warns_with_the_store_types(store_url: str) -> None:
    result = CliRunner().invoke(
        GROUP, ["fit", "--database-url", store_url, "--conversion", "booking", "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    assert "no 'booking' events in the store" in result.stderr
    assert "product_view (108)" in result.stderr


def test_an_unknown_session_is_said_to_be_cold_start(store_url: str) -> None:
    result = CliRunner().invoke(
        GROUP, ["recommend", "--database-url", store_url, "--session", "never-seen"]
    )
    assert result.exit_code == 0, result.output
    assert "Cold start:" in result.stderr and "cold start" in result.stdout
    known = CliRunner().invoke(GROUP, ["recommend", "--database-url", store_url, "--session", "s1"])
    assert "Cold start" not in known.output


def test_recommend_for_a_sessions_file_writes_json_lines(store_url: str, tmp_path: Path) -> None:
    requests = tmp_path / "sessions.txt"
    requests.write_text('s0\n\n{"session_id": "s1"}\nnever-seen\n')
    result = CliRunner().invoke(
        GROUP,
        ["recommend", "--database-url", store_url, "--sessions-file", str(requests), "-k", "2"],
    )
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(line["session_id"], line["cold_start"]) for line in lines] == [
        ("s0", False),
        ("s1", False),
        ("never-seen", True),
    ]
    assert lines[0]["items"][0]["item_id"] == "B"  # B follows A
    assert set(lines[0]["items"][0]) >= {"item_id", "score", "conversion", "value"}


def test_evaluate_reads_yoochoose_csv_and_names_the_formats(tmp_path: Path) -> None:
    train, test = tmp_path / "train.csv", tmp_path / "test.csv"
    train.write_text(
        "SessionId,ItemId,Time\n"
        + "".join(
            f"{s},{i},{s * 10 + n}\n"
            for s in range(20)
            for n, i in enumerate((1, 2) if s % 2 else (3, 4))
        )
    )
    test.write_text("SessionId,ItemId,Time\n100,1,1000\n100,2,1001\n")
    runner = CliRunner()
    result = runner.invoke(GROUP, ["evaluate", "--train", str(train), "--test", str(test)])
    assert result.exit_code == 0, result.output
    assert "1 predictions" in result.output
    # Two tables, each within 80 columns.
    assert max(len(line) for line in result.output.splitlines()) <= 80
    assert "Fit and prediction time" in result.output
    other = tmp_path / "other.csv"
    other.write_text("session,item\n1,2\n")
    bad = runner.invoke(GROUP, ["evaluate", "--train", str(other), "--test", str(test)])
    assert bad.exit_code == 1 and "unknown format" in bad.output and "JSON lines" in bad.output


def test_fit_with_a_second_stage_saves_it_and_recommend_loads_it(store_url: str) -> None:
    runner = CliRunner()
    result = runner.invoke(
        GROUP, ["fit", "--database-url", store_url, "--rerank", "lambdarank", "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["ranker"] == "session ranker + lambdarank"
    with EventStore(store_url) as store:
        loaded = load_ranker(store)
    assert isinstance(loaded, RerankedSessionRanker)
    answer = runner.invoke(
        GROUP,
        [
            "recommend",
            "--database-url",
            store_url,
            "--session",
            "s1",
            "-k",
            "2",
            "--format",
            "json",
        ],
    )
    assert answer.exit_code == 0, answer.output
    assert len(json.loads(answer.stdout)) == 2
