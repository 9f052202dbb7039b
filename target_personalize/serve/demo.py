"""``personalize serve --demo``: a live storefront at ``/demo`` that uses only the public SDK.

The shop lists the store's most viewed items (``/demo/catalog.json``); its pages send events
with ``personalize.js`` and show ``personalize.recommend`` lists, so each click visibly
reranks "recommended for you": the cold start of a new visitor, live.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.staticfiles import StaticFiles

from target_personalize.engine import EventStore
from target_personalize.engine.store.views import event_items_sql

__all__ = ["CATALOG_SIZE", "add_storefront", "catalog"]

CATALOG_SIZE = 400
DEMO = Path(__file__).parent / "static" / "demo"


def catalog(store: EventStore, size: int = CATALOG_SIZE) -> list[dict[str, Any]]:
    """The ``size`` most viewed items: id, name, category, brand, price and views."""
    rows = store.query(
        f"""
SELECT i.item_id, max(i.item_name), max(i.category), max(i.brand), max(i.price), count(*) AS n
FROM ({event_items_sql(store.dialect)}) i
JOIN events e ON e.source = i.source AND e.event_id = i.event_id
WHERE e.event_type = 'product_view'
GROUP BY i.item_id
ORDER BY n DESC, i.item_id
LIMIT {int(size)}"""
    )
    names = ("item_id", "name", "category", "brand", "price", "views")
    return [dict(zip(names, row, strict=True)) for row in rows]


def add_storefront(app: FastAPI) -> None:
    """The storefront: ``/demo/catalog.json`` (computed once), then the shop's files."""
    cached: list[list[dict[str, Any]]] = []

    @app.get("/demo/catalog.json", include_in_schema=False)
    async def items(request: Request) -> list[dict[str, Any]]:
        if not cached:
            cached.append(await request.app.state.serving.run_in_store(catalog))
        return cached[0]

    app.mount("/demo", StaticFiles(directory=DEMO, html=True), name="demo")
