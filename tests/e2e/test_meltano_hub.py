"""The Meltano user's path (issue 18): every `meltano` command of the README and the docs, run in
order in a fresh `meltano init` project that adds both plugins from their Hub definitions
(installed from this checkout), with Mixpanel served by a local fake that speaks its export API.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from target_personalize.engine import EventStore
from tests.e2e.meltano_project import (
    ROOT,
    code_block_commands,
    hub_definition,
    inline_commands,
    meltano,
    meltano_env,
    served_stats,
)
from tests.fakes.mixpanel import FakeMixpanel

pytestmark = pytest.mark.e2e

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
#: The README's Mixpanel settings, which the fake expects.
MIXPANEL = {"project_id": "1234567", "username": "my-service-account", "secret": "..."}
#: The item catalog the README's `catalog.path` names.
ITEMS_CSV = (
    "item_id,title,category,price,margin\nsku-0,Red shoe,shoes,10.5,3\nsku-1,Blue shoe,shoes,12,4\n"
)


@dataclass
class Step:
    """One command of the docs, as run."""

    args: list[str]
    output: str
    #: The Mixpanel export windows requested while it ran.
    windows: list[tuple[date, date]]


def _mixpanel_events(now: datetime) -> list[dict[str, Any]]:
    return [
        {
            "event": ["Product Viewed", "Add to Cart", "Order Completed"][n % 3],
            "properties": {
                "time": int((now - timedelta(hours=2 + 3 * n)).timestamp()),
                "distinct_id": f"user-{n % 4}",
                "$insert_id": f"mp-{n}",
                "product_id": f"sku-{n % 5}",
                "price": 10 + n,
            },
        }
        for n in range(40)
    ]


def _docs_commands() -> list[list[str]]:
    return [command[1:] for doc in DOCS for command in code_block_commands(doc.read_text())]


def test_the_docs_walk_the_whole_meltano_path() -> None:
    commands = _docs_commands()
    for start in (
        ["init"], ["add"], ["run"], ["config", "set"], ["config", "list"], ["select"],
        ["invoke"], ["job", "add"], ["schedule", "add"], ["schedule", "run"],
    ):  # fmt: skip
        assert any(args[: len(start)] == start for args in commands), start
    # Meltano 3's `meltano config PLUGIN set` and `meltano add TYPE NAME` are gone.
    for args in commands + [c[1:] for d in DOCS for c in inline_commands(d.read_text())]:
        assert args[:2] != ["add", "extractor"] and args[:2] != ["add", "loader"], args
        assert args[0] != "config" or args[1] in {"set", "list", "unset", "reset", "print"}, args


def test_every_meltano_command_of_the_docs_runs_in_a_fresh_project(tmp_path: Path) -> None:
    definitions = tmp_path / "definitions"
    definitions.mkdir()
    refs = {
        f"hub/{kind}/{name}.yml": hub_definition(kind, name, str(ROOT), definitions)
        for kind, name in (("extractors", "tap-clickstream"), ("loaders", "target-personalize"))
    }
    now = datetime.now(UTC)
    today = now.date()
    steps: list[Step] = []
    with FakeMixpanel(_mixpanel_events(now), **MIXPANEL, today=today) as mixpanel:
        env = meltano_env()
        cwd = tmp_path
        for command in _docs_commands():
            args = [next((str(p) for r, p in refs.items() if a.endswith(r)), a) for a in command]
            if args[:3] == ["config", "set", "tap-clickstream"] and args[3].startswith("mixpanel"):
                # Mixpanel is configured from here on: its export API is the fake.
                env["TAP_CLICKSTREAM_MIXPANEL_API_URL"] = mixpanel.url
            asked = len(mixpanel.requests)
            if args[0] == "invoke" and args[1].endswith(":serve"):
                output = str(served_stats(cwd, env, args))
            else:
                done = meltano(args, cwd, env)
                output = done.stdout + done.stderr
            windows = [
                (
                    date.fromisoformat(r["query"]["from_date"]),
                    date.fromisoformat(r["query"]["to_date"]),
                )
                for r in mixpanel.requests[asked:]
            ]
            steps.append(Step(args, output, windows))
            if args[0] == "init":
                cwd = tmp_path / args[1]
                (cwd / "items.csv").write_text(ITEMS_CSV)
        for span in [c[1:] for doc in DOCS for c in inline_commands(doc.read_text())]:
            meltano([*span, "--help"], cwd, env)  # prose: the command exists in Meltano 4

    def step(*start: str, after: int = -1) -> Step:
        return next(
            s for i, s in enumerate(steps) if i > after and s.args[: len(start)] == list(start)
        )

    # Both plugins were added as what they are (no stray `utility` plugin), from the Hub.
    project = yaml.safe_load((cwd / "meltano.yml").read_text())
    assert set(project["plugins"]) == {"extractors", "loaders"}
    assert project["plugins"]["extractors"][0]["name"] == "tap-clickstream"
    # Nothing configured: the bundled sample, and no Mixpanel request.
    sample = step("run", "tap-clickstream", "target-personalize")
    assert "Loaded 17429 records" in sample.output and sample.windows == []
    assert "17,051" in step("invoke", "target-personalize:summary").output  # product views
    # Configured in meltano.yml and .env, the secret redacted when listed.
    assert "TAP_CLICKSTREAM_MIXPANEL_SECRET='...'" in (cwd / ".env").read_text()
    listed = step("config", "list", "tap-clickstream").output
    assert "Group 2: mixpanel.project_id, mixpanel.secret, mixpanel.username" in listed
    assert "(redacted)" in listed
    # The first Mixpanel run reads from 30 days ago; --full-refresh again; each stores 40.
    first = step("run", "tap-clickstream", "target-personalize", after=steps.index(sample))
    assert first.windows[0][0] == today - timedelta(days=30) and first.windows[-1][1] == today
    assert "Loaded 40 records" in first.output
    backfill = step("run", "tap-clickstream", "target-personalize", "--full-refresh")
    assert backfill.windows == first.windows
    # The catalog extractor reads its one selected stream, not Mixpanel.
    catalog = step("run", "tap-clickstream--catalog", "target-personalize")
    assert catalog.windows == [] and "Stream items emitted 2 items" in catalog.output
    assert "Skipping deselected stream 'mixpanel_events'" in catalog.output
    # The scheduled job: incremental, from the bookmark less mixpanel.lookback_days (2).
    assert "personalize-hourly" in step("schedule", "list").output
    scheduled = step("schedule", "run", "personalize-hourly")
    assert scheduled.windows == [(today - timedelta(days=2), today)]
    assert "Stream items emitted" in scheduled.output  # both tasks of the job ran
    assert "Top 5 for session 192d6074" in step("invoke", "target-personalize:recommend").output
    # Every event once, however often it was read; the server serves the same store.
    with EventStore(f"duckdb:///{cwd / 'personalize.duckdb'}") as store:
        by_source = dict(store.query("SELECT source, count(*) FROM events GROUP BY source"))
        items = store.query("SELECT count(*) FROM items WHERE price IS NOT NULL")
    assert by_source == {"file": 17_429, "mixpanel": 40}
    assert items == [(2,)]
    assert "'store_events': 17469" in step("invoke", "target-personalize:serve").output
