"""The `personalize` command reads its store from --database-url or PERSONALIZE_DATABASE_URL."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from target_personalize.cli import main
from target_personalize.engine import EventStore
from tests.support.events import event


def test_summary_reads_the_store_named_by_the_environment(tmp_path: Path) -> None:
    url = f"duckdb:///{tmp_path / 'env.duckdb'}"
    with EventStore(url) as store:
        store.load_events([event(n) for n in range(12)])
    result = CliRunner().invoke(
        main, ["summary", "--format", "json"], env={"PERSONALIZE_DATABASE_URL": url}
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["events"] == 12


def test_summary_table_names_sources_types_and_counts(tmp_path: Path) -> None:
    url = f"duckdb:///{tmp_path / 'flag.duckdb'}"
    with EventStore(url) as store:
        store.load_events(
            [event(n) for n in range(3)] + [event(9, event_type="purchase", source="mixpanel")]
        )
    result = CliRunner().invoke(main, ["summary", "--database-url", url])
    assert result.exit_code == 0, result.output
    assert "product_view" in result.output and "purchase" in result.output
    assert "users 4" in result.output


def test_a_store_that_cannot_be_opened_is_a_clear_error() -> None:
    result = CliRunner().invoke(main, ["summary", "--database-url", "mysql://root@127.0.0.1/x"])
    assert result.exit_code != 0
    assert "duckdb:///FILE" in result.output
