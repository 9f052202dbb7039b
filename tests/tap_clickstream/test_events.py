"""The canonical event helpers: crosswalk and EventTypeMapper, parse_ts, format_ts, ids."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from tap_clickstream.events import (
    CANONICAL_TYPES,
    EVENT_COLUMNS,
    EventTypeMapper,
    format_ts,
    parse_ts,
    snake_case,
    stable_event_id,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Order Completed", "order_completed"),
        ("addToCart", "add_to_cart"),
        ("$mp_web_page_view", "mp_web_page_view"),
        ("[Amplitude] Page Viewed", "amplitude_page_viewed"),
        ("  Video -- 25% watched ", "video_25_watched"),
        ("view_item", "view_item"),
        ("$$$", "unknown"),
        ("", "unknown"),
    ],
)
def test_snake_case(raw: str, expected: str) -> None:
    assert snake_case(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # Segment / Mixpanel / Amplitude spec names
        ("Product Viewed", "product_view"),
        ("Product Added", "add_to_cart"),
        ("Product Removed", "remove_from_cart"),
        ("Products Searched", "search"),
        ("Product List Filtered", "filter"),
        ("Checkout Started", "begin_checkout"),
        ("Order Completed", "purchase"),
        ("Product Added to Wishlist", "add_to_wishlist"),
        ("$mp_web_page_view", "page_view"),
        ("[Amplitude] Page Viewed", "page_view"),
        # GA4 recommended events
        ("view_item", "product_view"),
        ("view_item_list", "category_view"),
        ("add_to_cart", "add_to_cart"),
        ("begin_checkout", "begin_checkout"),
        ("purchase", "purchase"),
        ("view_search_results", "search"),
        ("user_engagement", "engagement"),
        # Snowplow
        ("page_ping", "engagement"),
        ("transaction", "purchase"),
        # other verbs
        ("Followed", "follow"),
        ("Message Sent", "message"),
        ("Video Progress", "media_progress"),
        ("Booking Completed", "booking"),
        # unmapped names are kept, in snake_case, never dropped
        ("Checkout Done", "checkout_done"),
        ("Trial Started", "trial_started"),
    ],
)
def test_builtin_crosswalk(raw: str, expected: str) -> None:
    assert EventTypeMapper()(raw) == expected


def test_every_canonical_type_maps_to_itself() -> None:
    mapper = EventTypeMapper()
    assert {kind: mapper(kind) for kind in CANONICAL_TYPES} == {k: k for k in CANONICAL_TYPES}


def test_user_map_wins_over_the_crosswalk() -> None:
    mapper = EventTypeMapper(
        {"Order Completed": "booking", "Checkout Done": "Purchase", "checkout": "add_to_cart"}
    )
    assert mapper("Order Completed") == "booking"  # the crosswalk says purchase
    assert mapper("Checkout Done") == "purchase"  # the user's type is snake_cased
    assert mapper("checkout_done") == "purchase"  # and matched by normalised name too
    assert mapper("Checkout") == "add_to_cart"  # the crosswalk says begin_checkout
    assert mapper("Product Viewed") == "product_view"  # the rest still crosswalked
    assert mapper("Order Completed") == "booking"  # cached answers agree


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1709251200, datetime(2024, 3, 1, tzinfo=UTC)),
        (1709251200.25, datetime(2024, 3, 1, 0, 0, 0, 250000, tzinfo=UTC)),
        (1709251200123, datetime(2024, 3, 1, 0, 0, 0, 123000, tzinfo=UTC)),  # milliseconds
        (1709251200123456, datetime(2024, 3, 1, 0, 0, 0, 123456, tzinfo=UTC)),  # microseconds
        ("1709251200", datetime(2024, 3, 1, tzinfo=UTC)),
        ("2024-03-01T00:00:00Z", datetime(2024, 3, 1, tzinfo=UTC)),
        ("2024-03-01T01:00:00+01:00", datetime(2024, 3, 1, tzinfo=UTC)),
        ("2024-03-01 05:00:00.000001", datetime(2024, 3, 1, 5, 0, 0, 1, tzinfo=UTC)),  # Amplitude
        ("2024-03-01 05:00:00", datetime(2024, 3, 1, 5, tzinfo=UTC)),
        ("2024-03-01 07:00:00.5", datetime(2024, 3, 1, 7, 0, 0, 500000, tzinfo=UTC)),
        ("2019-10-01 00:00:00 UTC", datetime(2019, 10, 1, tzinfo=UTC)),  # REES46
        ("2024-03-01", datetime(2024, 3, 1, tzinfo=UTC)),
        (datetime(2024, 3, 1), datetime(2024, 3, 1, tzinfo=UTC)),  # naive means UTC
        (
            datetime(2024, 3, 1, 1, tzinfo=timezone(timedelta(hours=1))),
            datetime(2024, 3, 1, tzinfo=UTC),
        ),
    ],
)
def test_parse_ts(value: object, expected: datetime) -> None:
    parsed = parse_ts(value)
    assert parsed == expected
    assert parsed.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    "value", [None, "", "yesterday", True, [], {}, float("inf"), float("nan"), 1e30, "1e400"]
)
def test_parse_ts_rejects(value: object) -> None:
    with pytest.raises(ValueError, match="not a timestamp"):
        parse_ts(value)


def test_format_ts() -> None:
    moment = datetime(2024, 3, 1, 1, 2, 3, 4, tzinfo=timezone(timedelta(hours=2)))
    assert format_ts(moment) == "2024-02-29T23:02:03.000004Z"
    assert format_ts(parse_ts(format_ts(moment))) == format_ts(moment)


def test_stable_event_id() -> None:
    one = stable_event_id("Order Completed", "user-1", "2024-03-02T10:00:00.000000Z")
    assert one == stable_event_id("Order Completed", "user-1", "2024-03-02T10:00:00.000000Z")
    assert len(one) == 32 and int(one, 16) >= 0
    assert one != stable_event_id("Order Completed", "user-2", "2024-03-02T10:00:00.000000Z")
    # Fields are separated: moving text between them changes the id.
    assert stable_event_id("ab", "c") != stable_event_id("a", "bc")
    assert stable_event_id(None, "x") == stable_event_id("", "x")


def test_event_columns_follow_the_design() -> None:
    assert EVENT_COLUMNS[:5] == ("source", "event_id", "event_name", "event_type", "event_ts")
    assert {"items", "properties", "user_properties", "is_aggregate"} <= set(EVENT_COLUMNS)
