"""Catalog settings rules."""

from __future__ import annotations

from typing import Any

import pytest

from tap_clickstream.config import SECRET_SETTINGS, validate_config

SECRET = "pa55-word-never-shown"


@pytest.mark.parametrize(
    "block",
    [
        {"path": "catalog.csv"},
        {"path": "/data/catalog.parquet", "mapping": {"item_id": "sku", "updated_at": "ts"}},
        {"sqlalchemy_url": "postgresql://host/db", "table": "shop.products"},
    ],
)
def test_valid_catalog_settings(block: dict[str, Any]) -> None:
    assert validate_config({"catalog": block}) == []


@pytest.mark.parametrize(
    ("block", "expected"),
    [
        ({"mapping": {"item_id": "sku"}}, ["catalog.sqlalchemy_url (with catalog.table) or"]),
        ({"path": "catalog.xlsx"}, ["catalog.path must be a .csv"]),
        (
            {"path": "c.csv", "sqlalchemy_url": f"postgresql://u:{SECRET}@h/db", "table": "t"},
            ["catalog: set catalog.path or catalog.sqlalchemy_url"],
        ),
        ({"sqlalchemy_url": f"postgresql://u:{SECRET}@h/db"}, ["catalog.table is required"]),
        (
            {"sqlalchemy_url": SECRET, "table": "t"},
            ["catalog.sqlalchemy_url must be a SQLAlchemy URL"],
        ),
        (
            {"path": "c.csv", "mapping": {"sku": "id", "price": 3}},
            [
                "catalog.mapping has keys that are not catalog fields: sku",
                "catalog.mapping must give a column name for: price",
            ],
        ),
    ],
)
def test_wrong_catalog_settings(block: dict[str, Any], expected: list[str]) -> None:
    errors = validate_config({"catalog": block})
    assert len(errors) == len(expected), errors
    for error, start in zip(errors, expected, strict=True):
        assert error.startswith(start), (error, start)
    assert not any(SECRET in error for error in errors)


def test_catalog_url_is_secret() -> None:
    assert "catalog.sqlalchemy_url" in SECRET_SETTINGS
