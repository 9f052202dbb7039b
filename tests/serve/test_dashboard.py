"""The dashboard in a real browser: Playwright driving Debian's Chromium."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from target_personalize.serve import KeyRing, ServeSettings
from tests.serve.conftest import Server, running, seed_store
from tests.serve.web import attributes


@pytest.fixture
def browser_page(browser: Any) -> Iterator[Any]:
    page = browser.new_page()
    try:
        yield page
    finally:
        page.close()


@pytest.fixture
def dashboard_server(tmp_path: Path) -> Iterator[Server]:
    url = seed_store(tmp_path / "store.duckdb")
    with running(ServeSettings(database_url=url), keys=KeyRing([])) as server:
        # A visitor who viewed "a": relevance ranks "cheap" first, the margin objective "pricey".
        server.client.post(
            "/v1/events",
            json={
                "event_id": "dash-1",
                "event_name": "Product Viewed",
                "event_ts": "2024-05-02T10:00:00Z",
                "session_id": "dash-visitor",
                "items": [{"item_id": "a"}],
            },
        ).raise_for_status()
        yield server


def test_slider_changes_the_ranking_shown(browser_page: Any, dashboard_server: Server) -> None:
    page = browser_page
    page.goto(dashboard_server.url + "/")
    first_row = page.locator("#ranking tr").first
    first_row.wait_for(timeout=15_000)
    # The sample visitor is the latest live session: the one above.
    assert page.locator("#visitor").input_value() == "dash-visitor"
    before = attributes(page, "#ranking tr", "data-item")
    assert before[:2] == ["a", "cheap"]

    page.locator("#w-margin").fill("3")
    page.wait_for_function(
        "document.getElementById('ranking').dataset.objectives === '0,3'", timeout=15_000
    )
    after = attributes(page, "#ranking tr", "data-item")
    assert after != before
    assert after.index("pricey") < after.index("cheap")

    # The funnel chart, the weights and the counter are drawn too.
    page.wait_for_function(
        "document.querySelectorAll('#funnel-chart rect').length >= 2", timeout=15_000
    )
    assert page.locator("#weights tbody tr").count() > 3
    page.wait_for_function(
        "document.getElementById('counter').textContent.trim() !== '-'", timeout=15_000
    )
    assert int(page.locator("#counter").text_content().replace(",", "")) == 101
    assert (
        "model not refitted since the server started"
        in page.locator("#counter-detail").text_content()
    )
    assert page.locator("#error").text_content() == ""


def test_experiment_panel_shows_variants_and_lift_bars(
    browser_page: Any, dashboard_server: Server
) -> None:
    client = dashboard_server.client
    body = {"experiment_id": "panel", "variants": ["control=popularity", "engine=engine"]}
    assert client.post("/v1/experiments", json=body).status_code == 201
    for n in range(30):
        client.get(
            "/v1/recommendations", params={"anonymous_id": f"p{n}", "session_id": f"ps{n}"}
        ).raise_for_status()
    page = browser_page
    page.goto(dashboard_server.url + "/")
    page.wait_for_function(
        "document.getElementById('experiments').dataset.loaded === 'panel'", timeout=15_000
    )
    page.locator("#ranking tr").first.wait_for(timeout=15_000)
    rows = page.locator("#variants tbody tr")
    assert attributes(page, "#variants tbody tr", "data-variant") == ["control", "engine"]
    visitors = [int(r.locator("td").nth(1).text_content()) for r in rows.all()]
    assert sum(visitors) == 30  # the dashboard's own previews are not in the experiment
    metrics = attributes(page, "#lift-chart g", "data-metric")
    assert metrics[:2] == ["conversion_rate", "revenue_per_visitor"] and "ctr" in metrics
    assert "Traffic split as configured" in page.locator("#srm").text_content()
    assert page.locator("#error").text_content() == ""
    readout = client.get("/v1/experiments/panel").json()
    assert sum(v["impressions"] for v in readout["variants"]) == 30


def test_tradeoff_panel_plots_the_frontier_and_rings_the_current_setting(
    browser_page: Any, tmp_path: Path
) -> None:
    url = seed_store(tmp_path / "store.duckdb")
    settings = ServeSettings(database_url=url, refresh_seconds=0, tradeoff_k=1)
    with running(settings, keys=KeyRing([])) as server:
        page = browser_page
        page.goto(server.url + "/")
        page.wait_for_function(
            "document.getElementById('tradeoff-chart').dataset.status === 'ready'",
            timeout=30_000,
        )
        labels = attributes(page, "#tradeoff-chart g.point", "data-label")
        assert len(labels) == 9 and labels[0] == "relevance"
        flags = attributes(page, "#tradeoff-chart g.point", "data-frontier")
        frontier = dict(zip(labels, flags, strict=True))
        # At k=1 relevance misses the first prediction of each held-out session; the dials don't.
        assert frontier["relevance"] == "false"
        assert frontier["margin 1"] == frontier["conversion 1"] == "true"
        assert attributes(page, "#tradeoff-chart .ring", "data-label") == ["relevance"]
        assert len(attributes(page, "#tradeoff-chart polyline.frontier-line", "points")) == 1
        assert len(attributes(page, "#tradeoff-chart line.whisker", "x1")) == 18  # 2 per point
        summary = page.locator("#tradeoff-summary").text_content()
        assert "24 predictions in 8 held-out sessions" in summary
        assert "value = price" in summary

        # Saving margin 1 as the server's setting moves the ring onto that point.
        page.locator("#w-margin").fill("1")
        page.locator("#save-objectives").click()
        page.wait_for_function(
            "document.getElementById('tradeoff-chart').dataset.current === 'margin 1'",
            timeout=15_000,
        )
        assert attributes(page, "#tradeoff-chart .ring", "data-label") == ["margin 1"]
        centres = dict(
            zip(labels, attributes(page, "#tradeoff-chart circle.dot", "cx"), strict=True)
        )
        ring = attributes(page, "#tradeoff-chart .ring", "cx")
        assert ring == [centres["margin 1"]] and ring != [centres["relevance"]]
        assert page.locator("#error").text_content() == ""
