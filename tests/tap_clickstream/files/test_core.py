"""The singer-sdk standard tap tests for ``file_events`` with no settings: the bundled sample.

With no source configured the tap reads the REES46 sample shipped in
``tap_clickstream/samples`` (17,434 e-commerce rows and one truncated last row); the suite
reads its first 1,000 events (the full read is in ``test_streams.py``).

Attribute tests left out, because the sample has no values to test them on (the SDK warns,
and warnings are errors here); record_matches_stream_schema still checks every record's types:
- is_numeric: REES46 rows carry no revenue, engagement, scroll or media progress.
- is_object: REES46 rows carry no search filters.
"""

from __future__ import annotations

from singer_sdk.testing import SuiteConfig, get_tap_test_class
from singer_sdk.testing.runners import TapTestRunner
from singer_sdk.testing.suites import SingerTestSuite
from singer_sdk.testing.tap_tests import (
    AttributeIsBooleanTest,
    AttributeIsDateTimeTest,
    AttributeIsIntegerTest,
    AttributeNotNullTest,
)

from tap_clickstream.tap import TapClickstream

ATTRIBUTE_TESTS = SingerTestSuite(
    kind="tap_stream_attribute",
    tests=[
        AttributeIsBooleanTest,
        AttributeIsDateTimeTest,
        AttributeIsIntegerTest,
        AttributeNotNullTest,
    ],
)


class TestTapClickstreamSample(
    get_tap_test_class(
        TapClickstream,
        config={},
        parse_env_config=False,
        include_stream_attribute_tests=False,
        custom_suites=[ATTRIBUTE_TESTS],
        suite_config=SuiteConfig(max_records_limit=1000),
    )
):
    """The standard tests, plus what the sample must yield."""

    def test_sample_is_the_default_source(self, runner: TapTestRunner) -> None:
        assert set(runner.records) == {"file_events"}
        records = runner.records["file_events"]
        assert len(records) == 1000
        assert {r["event_type"] for r in records} >= {"product_view", "add_to_cart"}
        first = records[0]
        assert first["event_ts"] == "2019-10-01T00:00:00.000000Z"
        assert first["event_name"] == "view"
        assert first["items"] == [{"item_id": "44600062", "brand": "shiseido", "price": 35.79}]
        assert first["session_id"] == "72d76fde-8bb3-4e00-8c23-a032dfed738c"
        assert first["user_id"] == "541312140"
        assert first["properties"] == {"category_id": "2103807459595387724"}
