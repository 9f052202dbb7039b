"""The live storefront: a new visitor's product view reranks "recommended for you"."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from target_personalize.serve import KeyRing, ServeSettings
from target_personalize.serve.browser import BrowserSettings
from tests.serve.conftest import running, seed_store
from tests.serve.web import Sent, attributes, wait_until


def recommended(page: Any) -> list[str]:
    return [item or "" for item in attributes(page, "#recs li", "data-personalize-item")]


def test_catalog_is_public_and_only_with_demo(tmp_path: Path) -> None:
    url = seed_store(tmp_path / "store.duckdb")
    demo = ServeSettings(database_url=url, browser=BrowserSettings(demo=True))
    with running(demo, keys=KeyRing([])) as server:
        catalog = server.client.get("/demo/catalog.json").json()
        assert [item["item_id"] for item in catalog] == ["a", "cheap", "pricey"]  # by views
        assert catalog[0] == {
            "item_id": "a",
            "name": None,
            "category": "shoes",
            "brand": None,
            "price": 20.0,
            "views": 40,
        }
        assert "personalize.recommend" in server.client.get("/demo/shop.js").text
        assert server.client.get("/demo/").status_code == 200
    with running(
        ServeSettings(database_url=seed_store(tmp_path / "s.duckdb")), keys=KeyRing([])
    ) as server:
        assert server.client.get("/demo/").status_code == 404


def test_a_click_reranks_the_list(tmp_path: Path, browser: Any) -> None:
    url = seed_store(tmp_path / "store.duckdb")
    settings = ServeSettings(database_url=url, browser=BrowserSettings(demo=True))
    with running(settings, keys=KeyRing([])) as server:
        context = browser.new_context()
        page = context.new_page()
        sent = Sent(page)
        page.goto(server.url + "/demo/")
        page.locator("#recs li").first.wait_for()
        first = recommended(page)
        page.click(".card >> nth=0")  # the most viewed product: "a"
        page.wait_for_selector(".product[data-personalize-item='a']")
        wait_until(page, lambda: recommended(page) != first, "the list to rerank")
        assert "a" not in recommended(page)  # seen
        wait_until(page, lambda: sent.named("product_view"), "the product view")
        (view,) = sent.named("product_view")
        assert view["items"][0]["item_id"] == "a" and view["items"][0]["category"] == "shoes"
        # A click in the list: the product page's view carries that list's rec_id.
        rec_id = page.get_attribute("#recs", "data-personalize-rec-id")
        target = recommended(page)[0]
        page.click(f"#recs li[data-personalize-item='{target}'] a")
        page.wait_for_selector(f".product[data-personalize-item='{target}']")
        wait_until(page, lambda: len(sent.named("product_view")) == 2, "the second view")
        assert sent.named("product_view")[1]["rec_id"] == rec_id
        context.close()
