"""personalize.js in Chromium against the real server: what it sends, when, and what arrives."""

from __future__ import annotations

import base64
import io
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from target_personalize.serve import KeyRing, ServeSettings
from target_personalize.serve.app import STATIC
from tests.serve.conftest import Server, running, seed_store
from tests.serve.web import (
    Sent,
    Shop,
    attributes,
    freeze_clock,
    received,
    stored_browser_events,
    tracker_page,
    wait_until,
)

SDK = STATIC / "sdk" / "personalize.js"


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Server]:
    url = seed_store(tmp_path / "store.duckdb")
    with running(ServeSettings(database_url=url, ack="commit"), keys=KeyRing([])) as server:
        yield server


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 800, "height": 1000})
    try:
        yield context.new_page()
    finally:
        context.close()


def test_the_sdk_is_small_plain_and_served(api: Server) -> None:
    source = SDK.read_bytes()
    assert len(source) < 12_000, f"personalize.js is {len(source)} bytes, the budget is 12,000"
    text = source.decode()
    assert "eval(" not in text and "new Function" not in text and "import " not in text
    served = api.client.get("/sdk/personalize.js")
    assert served.status_code == 200
    assert served.content == source
    assert "javascript" in served.headers["content-type"]


def test_page_view_pings_with_active_time_and_scroll(api: Server, shop: Shop, page: Any) -> None:
    options = {"minVisit": 5, "heartbeat": 5, "flushMs": 500}
    url = shop.add("/p", tracker_page(api.url, options, "<div style='height:5000px'></div>"))
    sent = Sent(page)
    freeze_clock(page)
    page.goto(url)
    page.evaluate(  # (2000 + 1000) / 5000: 60% seen; scrolling is activity too
        "new Promise(done => { addEventListener('scroll', done, {once: true}); scrollTo(0, 2000) })"
    )
    page.mouse.move(10, 10)
    page.clock.run_for(5_000)  # active during the minimum visit: a ping
    page.clock.run_for(5_000)  # idle for a heartbeat: none
    page.mouse.move(20, 20)
    page.clock.run_for(5_000)  # active again: a ping
    page.clock.run_for(1_000)
    wait_until(page, lambda: len(sent.named("page_ping")) == 2, "two page pings")
    (view,) = sent.named("page_view")
    assert view["source"] == "browser" and view["page_path"] == "/p"
    assert view["page_title"] == "Test shop" and view["page_url"] == url
    assert len(view["event_id"]) == 32 and len(view["session_id"]) == 32
    pings = sent.named("page_ping")
    assert [ping["event_type"] for ping in pings] == ["engagement", "engagement"]
    assert [ping["engagement_ms"] for ping in pings] == [5_000, 5_000]
    assert [ping["properties"]["active_ms"] for ping in pings] == [5_000, 10_000]
    assert [ping["scroll_depth_pct"] for ping in pings] == [60, 60]
    ids = {event["anonymous_id"] for event in sent.events}
    sessions = {event["session_id"] for event in sent.events}
    assert len(ids) == 1 and len(sessions) == 1
    wait_until(page, lambda: len(sent.statuses) == len(sent.batches), "answers")
    assert set(sent.statuses) == {200}
    assert received(api) == len(sent.events)  # partial=true: none was rejected


def test_no_ping_while_hidden_or_before_the_minimum_visit(
    tmp_path: Path, shop: Shop, page: Any
) -> None:
    url = seed_store(tmp_path / "store.duckdb")
    with running(ServeSettings(database_url=url, ack="commit"), keys=KeyRing([])) as api:
        options = {"minVisit": 5, "heartbeat": 5, "flushMs": 100}
        shop.add("/p", tracker_page(api.url, options))
        freeze_clock(page)
        page.goto(shop.origin + "/p")
        page.mouse.move(10, 10)
        page.clock.run_for(4_000)  # active, but the minimum visit is not over
        page.evaluate(
            "Object.defineProperty(document, 'visibilityState', {value: 'hidden'});"
            "document.dispatchEvent(new Event('visibilitychange'))"
        )  # hidden: what is waiting goes by beacon
        page.mouse.move(30, 30)
        page.clock.run_for(20_000)
        wait_until(page, lambda: received(api) == 2, "the beacon")
        page.wait_for_timeout(500)
    names = sorted(name for _, name, _ in stored_browser_events(url))
    assert names == ["page_view", "scroll_depth"]


def test_media_progress_and_data_attributes(api: Server, shop: Shop, page: Any) -> None:
    sound = io.BytesIO()
    with wave.open(sound, "wb") as out:  # four seconds of silence
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(b"\0\0" * 8000 * 4)
    clip = "data:audio/wav;base64," + base64.b64encode(sound.getvalue()).decode()  # seekable
    body = (
        "<div data-personalize-view data-personalize-item='sku-1' data-personalize-price='9.5'"
        " data-personalize-category='shoes'>"
        "<button id='add' data-personalize-event='add_to_cart'>Add</button></div>"
        "<button id='buy' data-personalize-event='purchase' data-personalize-order='o-1'"
        " data-personalize-revenue='19' data-personalize-currency='EUR'"
        ' data-personalize-items=\'[{"item_id":"sku-1","quantity":2}]\'>Buy</button>'
        f"<audio id='m' src='{clip}' data-personalize-item='clip-7' preload='auto'></audio>"
    )
    url = shop.add("/p", tracker_page(api.url, {"flushMs": 100}, body))
    sent = Sent(page)
    page.goto(url)
    page.click("#add")
    page.click("#buy")
    page.wait_for_function("document.getElementById('m').readyState >= 1")
    for second in (1.1, 2.1, 3.1, 4.0):
        page.evaluate(f"document.getElementById('m').currentTime = {second}")
        page.wait_for_timeout(100)
    wait_until(page, lambda: len(sent.named("media_progress")) == 4, "four media milestones")
    (view,) = sent.named("product_view")
    assert view["items"] == [{"item_id": "sku-1", "category": "shoes", "price": 9.5}]
    (cart,) = sent.named("add_to_cart")
    assert cart["items"][0]["item_id"] == "sku-1"
    (purchase,) = sent.named("purchase")
    assert purchase["order_id"] == "o-1" and purchase["revenue"] == 19
    assert purchase["currency"] == "EUR" and purchase["items"] == [
        {"item_id": "sku-1", "quantity": 2}
    ]
    progress = sent.named("media_progress")
    assert [event["media_progress_pct"] for event in progress] == [25, 50, 75, 100]
    assert {event["items"][0]["item_id"] for event in progress} == {"clip-7"}
    wait_until(page, lambda: received(api) == len(sent.events), "every event accepted")


def test_batches_of_twenty_then_the_timer(api: Server, shop: Shop, page: Any) -> None:
    url = shop.add("/p", tracker_page(api.url, {"pageView": False, "flushMs": 2000}))
    sent = Sent(page)
    freeze_clock(page)
    page.goto(url)
    page.evaluate(
        "for (let i = 0; i < 45; i++) personalize.track('search', {search_query: 'q' + i})"
    )
    wait_until(page, lambda: len(sent.batches) == 2, "two full batches")
    page.clock.run_for(1_900)
    page.wait_for_timeout(200)
    assert [len(batch) for batch in sent.batches] == [20, 20]
    page.clock.run_for(200)
    wait_until(page, lambda: len(sent.batches) == 3, "the timer's batch")
    assert [len(batch) for batch in sent.batches] == [20, 20, 5]
    assert [event["search_query"] for event in sent.events] == [f"q{i}" for i in range(45)]


def test_page_hide_sends_the_last_batch(tmp_path: Path, shop: Shop, page: Any) -> None:
    url = seed_store(tmp_path / "store.duckdb")
    with running(ServeSettings(database_url=url, ack="commit"), keys=KeyRing([])) as api:
        shop.add("/p", tracker_page(api.url, {"flushMs": 600_000}))
        sent = Sent(page)
        page.goto(shop.origin + "/p")
        ids = page.evaluate("[1, 2, 3].map(i => personalize.track('search', {n: i}).event_id)")
        page.wait_for_timeout(300)
        assert sent.batches == []  # held for the timer
        page.goto("about:blank")  # pagehide: the beacon goes
        wait_until(page, lambda: received(api) == 5, "the beacon")
    stored = {event_id for event_id, _, _ in stored_browser_events(url)}
    assert set(ids) <= stored
    assert len(stored) == 5  # and the page view, and the scroll depth reached (all: 100%)


def test_offline_events_arrive_once_when_back_online(
    tmp_path: Path, shop: Shop, browser: Any
) -> None:
    url = seed_store(tmp_path / "store.duckdb")
    context = browser.new_context()
    page = context.new_page()
    try:
        with running(ServeSettings(database_url=url, ack="commit"), keys=KeyRing([])) as api:
            shop.add("/p", tracker_page(api.url, {"flushMs": 50, "pageView": False}))
            sent = Sent(page)
            page.goto(shop.origin + "/p")
            context.set_offline(True)
            ids = page.evaluate(
                "[...Array(25).keys()].map(i => personalize.track('search', {n: i}).event_id)"
            )
            wait_until(
                page,
                lambda: len(page.evaluate("JSON.parse(localStorage.pz_q || '[]')")) == 25,
                what="the retry queue",
            )
            assert sent.statuses == []
            context.set_offline(False)  # the page's "online" event flushes the queue
            wait_until(page, lambda: page.evaluate("localStorage.pz_q") is None, "an empty queue")
            wait_until(page, lambda: sent.statuses.count(200) == 2, "the queued batches")
        stored = stored_browser_events(url)
    finally:
        context.close()
    assert sorted(event_id for event_id, _, _ in stored) == sorted(ids)


def test_events_sent_while_the_server_is_down_arrive_when_it_is_back(
    tmp_path: Path, shop: Shop, page: Any
) -> None:
    settings = ServeSettings(database_url=seed_store(tmp_path / "store.duckdb"), ack="commit")
    with running(settings, keys=KeyRing([])) as first:
        port = int(first.url.rsplit(":", 1)[1])
        options = {"flushMs": 50, "retrySeconds": 0.5, "pageView": False}
        page.goto(shop.add("/p", tracker_page(first.url, options)))
    ids = page.evaluate("[1, 2, 3].map(i => personalize.track('search', {n: i}).event_id)")
    queued = "JSON.parse(localStorage.pz_q || '[]').map(e => e.event_id)"
    wait_until(page, lambda: page.evaluate(queued) == ids, "the retry queue")
    with running(settings, keys=KeyRing([]), port=port) as second:
        wait_until(page, lambda: received(second) == 3, "the retried batch", timeout=60)
        assert page.evaluate("localStorage.pz_q") is None
    assert sorted(
        event_id for event_id, _, _ in stored_browser_events(settings.database_url)
    ) == sorted(ids)


def test_nothing_is_sent_or_stored_before_consent(api: Server, shop: Shop, page: Any) -> None:
    url = shop.add("/p", tracker_page(api.url, {"consent": "pending", "flushMs": 50}))
    sent = Sent(page)
    page.goto(url)
    page.evaluate("personalize.track('search', {search_query: 'shoes'})")
    page.wait_for_timeout(500)
    assert sent.batches == []
    assert page.evaluate("Object.keys(localStorage).filter(k => k.startsWith('pz_'))") == []
    assert "pz_" not in page.evaluate("document.cookie")
    page.evaluate("personalize.consent('granted')")
    wait_until(page, lambda: len(sent.events) == 2, "the held events")
    assert [event["event_name"] for event in sent.events] == ["page_view", "search"]
    assert page.evaluate("localStorage.pz_aid") == sent.events[0]["anonymous_id"]
    assert f"pz_aid={sent.events[0]['anonymous_id']}" in page.evaluate("document.cookie")


def test_denied_consent_and_opt_out_send_nothing(api: Server, shop: Shop, page: Any) -> None:
    url = shop.add("/p", tracker_page(api.url, {"flushMs": 50}))
    sent = Sent(page)
    page.goto(url)
    wait_until(page, lambda: len(sent.events) == 1, "the page view")
    page.evaluate("personalize.optOut(); personalize.track('search', {search_query: 'x'})")
    page.reload()  # the opt-out outlives the page
    page.evaluate("personalize.track('search', {search_query: 'y'})")
    page.wait_for_timeout(500)
    assert len(sent.events) == 1
    assert page.evaluate("Object.keys(localStorage)") == ["pz_optout"]
    assert "pz_aid" not in page.evaluate("document.cookie")
    denied = shop.add("/d", tracker_page(api.url, {"consent": "denied", "flushMs": 50}))
    page.evaluate("personalize.optIn()")
    page.goto(denied)
    page.wait_for_timeout(500)
    assert len(sent.events) == 1


def test_widget_reranks_after_a_view_and_clicks_carry_the_rec_id(
    api: Server, shop: Shop, page: Any
) -> None:
    url = shop.add("/p", tracker_page(api.url, {"flushMs": 60_000}, "<ul id='recs'></ul>"))
    sent = Sent(page)
    page.goto(url)
    show = (
        "personalize.recommend({k: 3, container: '#recs'}).then(r => r.items.map(i => i.item_id))"
    )
    before = page.evaluate(show)
    page.evaluate("personalize.track('product_view', {items: [{item_id: 'a'}]})")
    after = page.evaluate(show)  # the widget sends what is pending first
    assert after != before
    shown = attributes(page, "#recs li", "data-personalize-item")
    assert shown == after
    rec_id = page.get_attribute("#recs", "data-personalize-rec-id")
    page.click(f"#recs li[data-personalize-item='{after[1]}']")
    page.evaluate(
        f"personalize.track('add_to_cart', {{items: [{{item_id: '{after[1]}'}}]}});"
        "personalize.flush()"
    )
    wait_until(page, lambda: sent.named("add_to_cart"), "the add to cart")
    views = sent.named("recommendation_view")
    assert [view["properties"]["item_ids"] for view in views] == [before, after]
    assert views[1]["rec_id"] == rec_id and "items" not in views[1]
    (click,) = sent.named("recommendation_click")
    assert click["rec_id"] == rec_id
    assert click["items"] == [{"item_id": after[1], "position": 2}]
    (cart,) = sent.named("add_to_cart")
    assert cart["rec_id"] == rec_id  # the list the item came from


def _shop_visit(browser: Any, url: str, *, click: bool) -> dict[str, Any]:
    """One visitor (a fresh context): the widget renders an experiment's list, then a purchase.

    With ``click``, the visitor clicks the list's second item and buys it (the SDK tags the add
    to cart and purchase with the list's ``rec_id``); without, buys the first item unclicked.
    Returns the server's /v1/recommendations answer and what the page sent.
    """
    context = browser.new_context()
    try:
        page = context.new_page()
        sent = Sent(page)
        page.goto(url)
        with page.expect_response(lambda r: "/v1/recommendations" in r.url) as answer:
            shown = page.evaluate(
                "personalize.recommend({k: 3, container: '#recs', experiment: 'widget'})"
                ".then(r => r.items.map(i => i.item_id))"
            )
        served = answer.value.json()
        assert served["experiment_id"] == "widget" and len(shown) == 3
        # The list carries the server's rec_id, the one the impression is stored under.
        assert page.get_attribute("#recs", "data-personalize-rec-id") == served["rec_id"]
        item = shown[1] if click else shown[0]
        if click:
            page.click(f"#recs li[data-personalize-item='{item}']")
        page.evaluate(
            f"personalize.track('add_to_cart', {{items: [{{item_id: '{item}'}}]}});"
            f"personalize.track('purchase', {{items: [{{item_id: '{item}'}}], revenue: 20,"
            " order_id: 'o-' + Math.random()});"
            "personalize.flush()"
        )
        wait_until(page, lambda: len(sent.statuses) == len(sent.batches), "the events' answers")
        assert set(sent.statuses) == {200}
        return {"served": served, "events": sent.events}
    finally:
        context.close()


def test_a_widget_click_carries_the_servers_rec_id_and_is_attributed(
    api: Server, shop: Shop, browser: Any
) -> None:
    body = {"experiment_id": "widget", "variants": ["control=popularity", "engine=engine"]}
    created = api.client.post("/v1/experiments", json={**body, "traffic": "50,50"})
    assert created.status_code == 201
    url = shop.add("/p", tracker_page(api.url, {"flushMs": 60_000}, "<ul id='recs'></ul>"))
    clicker = _shop_visit(browser, url, click=True)
    looker = _shop_visit(browser, url, click=False)  # shown the list, bought without a click

    rec_id = clicker["served"]["rec_id"]
    (click,) = [e for e in clicker["events"] if e["event_name"] == "recommendation_click"]
    assert click["rec_id"] == rec_id
    for name in ("add_to_cart", "purchase"):
        (event,) = [e for e in clicker["events"] if e["event_name"] == name]
        assert event["rec_id"] == rec_id, f"the {name} does not carry the list's rec_id"
    (bought,) = [e for e in looker["events"] if e["event_name"] == "purchase"]
    assert "rec_id" not in bought

    expected = {
        variant: {
            "visitors": 0,
            "conversions": 0,
            "impressions": 0.0,
            "clicks": 0.0,
            "attributed_click_through": 0,
            "attributed_view_through": 0,
        }
        for variant in ("control", "engine")
    }
    for visit, clicked in ((clicker, True), (looker, False)):
        figures = expected[visit["served"]["variant_id"]]
        figures["visitors"] += 1
        figures["conversions"] += 1  # bought after the first exposure
        figures["impressions"] += 1
        figures["clicks"] += 1 if clicked else 0  # the list's view is not a click
        figures["attributed_click_through"] += 1 if clicked else 0
        figures["attributed_view_through"] += 0 if clicked else 1  # a shown item, no rec_id
    readout = api.client.get("/v1/experiments/widget").json()
    got = {
        variant["variant_id"]: {key: variant[key] for key in expected["control"]}
        for variant in readout["variants"]
    }
    assert got == expected
