"""The singer-sdk standard tap tests for ``snowplow_events``, on a wide-layout DuckDB file.

The warehouse is seeded when this module is imported: the SDK's test factory instantiates the
tap and discovers its streams at import time, and syncs once in a class-scoped fixture.

Attribute test left out, because the seeded events have no values to test it on (the SDK
warns, and warnings are errors here); record_matches_stream_schema still checks every
record's types:
- is_object: no event carries search filters.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from singer_sdk.testing import get_tap_test_class
from singer_sdk.testing.runners import TapTestRunner
from singer_sdk.testing.suites import SingerTestSuite
from singer_sdk.testing.tap_tests import (
    AttributeIsBooleanTest,
    AttributeIsDateTimeTest,
    AttributeIsIntegerTest,
    AttributeIsNumberTest,
    AttributeNotNullTest,
)

from tap_clickstream.tap import TapClickstream
from tests.tap_clickstream.snowplow.conftest import snowplow_config
from tests.tap_clickstream.snowplow.warehouse import EMITTED, create_wide

DIRECTORY = Path(tempfile.mkdtemp(prefix="snowplow-core-"))
URL = f"duckdb:///{DIRECTORY / 'snowplow.duckdb'}"
create_wide(URL)

ATTRIBUTE_TESTS = SingerTestSuite(
    kind="tap_stream_attribute",
    tests=[
        AttributeIsBooleanTest,
        AttributeIsDateTimeTest,
        AttributeIsIntegerTest,
        AttributeIsNumberTest,
        AttributeNotNullTest,
    ],
)


@pytest.fixture(scope="module", autouse=True)
def _warehouse() -> Iterator[str]:
    yield URL
    shutil.rmtree(DIRECTORY, ignore_errors=True)


class TestTapClickstreamSnowplow(
    get_tap_test_class(
        TapClickstream,
        config=snowplow_config(URL),
        parse_env_config=False,
        include_stream_attribute_tests=False,
        custom_suites=[ATTRIBUTE_TESTS],
    )
):
    """The standard tests, plus what the sync must yield."""

    def test_every_event_once(self, runner: TapTestRunner) -> None:
        assert set(runner.records) == {"snowplow_events"}
        ids = [r["event_id"] for r in runner.records["snowplow_events"]]
        assert sorted(ids) == sorted(EMITTED)
