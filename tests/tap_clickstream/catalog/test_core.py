"""The singer-sdk standard tap tests for ``items``, on a CSV catalog file.

The file is written when this module is imported: the SDK's test factory instantiates the tap
and discovers its streams at import time.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from singer_sdk.testing import get_tap_test_class
from singer_sdk.testing.runners import TapTestRunner

from tap_clickstream.tap import TapClickstream
from tests.tap_clickstream.catalog.conftest import MAPPING, write_csv

DIRECTORY = Path(tempfile.mkdtemp(prefix="catalog-core-"))
PATH = write_csv(DIRECTORY / "catalog.csv")


@pytest.fixture(scope="module", autouse=True)
def _catalog_file() -> Iterator[Path]:
    yield PATH
    shutil.rmtree(DIRECTORY, ignore_errors=True)


class TestTapClickstreamCatalog(
    get_tap_test_class(
        TapClickstream,
        config={"catalog": {"path": str(PATH), "mapping": MAPPING}},
        parse_env_config=False,
    )
):
    """The standard tests, plus the catalog as the target's items table takes it."""

    def test_only_the_items_stream(self, runner: TapTestRunner) -> None:
        assert set(runner.records) == {"items"}
        assert [r["item_id"] for r in runner.records["items"]] == ["42", "43", "A", "B"]
