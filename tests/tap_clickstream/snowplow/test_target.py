"""tap-clickstream | target-personalize: Snowplow events and the catalog land in the store."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import duckdb

from tests.tap_clickstream.catalog.conftest import MAPPING, write_csv
from tests.tap_clickstream.helpers import TAP_EXECUTABLE, write_json
from tests.tap_clickstream.snowplow.conftest import snowplow_config
from tests.tap_clickstream.snowplow.warehouse import EMITTED

TARGET_EXECUTABLE = Path(sys.executable).with_name("target-personalize")


def test_events_and_items_load_without_rejects(tmp_path: Path, duckdb_url: str) -> None:
    config = snowplow_config(duckdb_url)
    config["catalog"] = {"path": str(write_csv(tmp_path / "catalog.csv")), "mapping": MAPPING}
    store = tmp_path / "store.duckdb"
    tap = subprocess.run(
        [str(TAP_EXECUTABLE), "--config", str(write_json(tmp_path / "tap.json", config))],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    target_config = write_json(tmp_path / "target.json", {"database_url": f"duckdb:///{store}"})
    subprocess.run(
        [str(TARGET_EXECUTABLE), "--config", str(target_config)],
        input=tap.stdout,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    with duckdb.connect(str(store), read_only=True) as db:
        events = db.sql("SELECT event_id FROM events WHERE source = 'snowplow'").fetchall()
        assert {row[0] for row in events} == EMITTED
        view = db.sql(
            "SELECT engagement_ms, scroll_depth_pct FROM events WHERE event_type = 'page_view' "
            "AND engagement_ms IS NOT NULL"
        ).fetchall()
        assert view == [(15000.0, 85.0)]
        items = db.sql("SELECT item_id, margin, available FROM items ORDER BY item_id").fetchall()
        assert items == [("42", 7.99, True), ("43", 9.0, False), ("A", None, True),
                         ("B", 12.0, True)]  # fmt: skip
        assert db.sql("SELECT count(*) FROM rejects").fetchall() == [(0,)]
