"""Funnel mining on hand-made journeys whose funnels were worked out by hand, on both backends."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any

import pytest

from target_personalize.engine import (
    LIFT_PRIOR_UNITS,
    Contribution,
    EventStore,
    FunnelError,
    SessionRanker,
    compute_event_weights,
    discover_funnel,
    explicit_funnel,
)
from target_personalize.engine.funnel.markov import fit_markov_chain
from tests.engine.conftest import Journeys

DAY = 86400
WEEK = 7 * DAY
VIEW, CART, BUY = "product_view", "add_to_cart", "purchase"


# Explicit funnels


def explicit_set(journeys: Journeys) -> Journeys:
    """Eleven sessions (one user each) around product_view -> add_to_cart -> purchase."""
    return (
        journeys.add("s01", "u01", (0, VIEW), (60, CART), (120, BUY))
        .add("s02", "u02", (0, VIEW), (30, VIEW), (90, CART))
        # a conversion without any earlier step: never enters
        .add("s03", "u03", (0, BUY))
        # the cart before the first view does not count
        .add("s04", "u04", (0, CART), (10, VIEW), (20, BUY))
        # everything at the same timestamp, logged in reverse order
        .add("s05", "u05", (0, BUY), (0, CART), (0, VIEW))
        # purchase before the cart
        .add("s06", "u06", (0, VIEW), (30, BUY), (60, CART))
        # exactly at the edge of a 7-day window: inside
        .add("s07", "u07", (0, VIEW), (WEEK, CART), (WEEK, BUY))
        # one second past the window
        .add("s08", "u08", (0, VIEW), (WEEK + 1, CART), (WEEK + 2, BUY))
        # a repeated first step does not move the start of the window
        .add("s09", "u09", (0, VIEW), (100, VIEW), (110, CART), (120, BUY))
        .add("s10", "u10", (0, "page_view"))
        # the same step twice at one timestamp
        .add("s11", "u11", (0, VIEW), (0, VIEW))
    )


def counts(funnel) -> list[int]:
    return [step.units for step in funnel.steps]


def test_loose_funnel_counts_rates_and_times(any_store: EventStore, journeys: Journeys) -> None:
    store = explicit_set(journeys).load(any_store)
    funnel = explicit_funnel(store, [VIEW, CART, BUY])
    # entered: every session with a view; cart after the first view within 7 days;
    # purchase after that cart.
    assert counts(funnel) == [9, 6, 4]
    first, second, third = funnel.steps
    assert (first.step_conversion, first.overall_conversion, first.drop_off) == (1.0, 1.0, 0)
    assert second.step_conversion == pytest.approx(6 / 9)
    assert second.drop_off == 3
    assert second.drop_off_rate == pytest.approx(1 / 3)
    assert third.step_conversion == pytest.approx(4 / 6)
    assert third.overall_conversion == pytest.approx(4 / 9)
    assert third.drop_off == 2
    assert funnel.overall_conversion == pytest.approx(4 / 9)
    # carts: s01 60, s02 90, s05 0, s06 60, s07 1 week, s09 110
    assert second.median_seconds_from_start == 75.0
    assert second.mean_seconds_from_start == pytest.approx((60 + 90 + 0 + 60 + WEEK + 110) / 6)
    # purchases: s01 120, s05 0, s07 1 week, s09 120
    ttc = funnel.time_to_convert
    assert ttc.converters == 4
    assert ttc.median_seconds == 120.0
    assert ttc.mean_seconds == pytest.approx((120 + 0 + WEEK + 120) / 4)
    assert ttc.p90_seconds == pytest.approx(120 + 0.7 * (WEEK - 120))
    assert {b.label: b.units for b in ttc.histogram if b.units} == {
        "< 1 min": 1,
        "1-5 min": 2,
        ">= 7 d": 1,
    }


def test_strict_order_and_window(any_store: EventStore, journeys: Journeys) -> None:
    store = explicit_set(journeys).load(any_store)
    # strict: nothing may happen at a time strictly between two steps (s02 and s09 have a
    # second view first; s06 a purchase); events at one timestamp may go in either order.
    assert counts(explicit_funnel(store, [VIEW, CART, BUY], order="strict")) == [9, 3, 3]
    # no window: s08 completes too
    assert counts(explicit_funnel(store, [VIEW, CART, BUY], window=None)) == [9, 7, 5]
    assert counts(explicit_funnel(store, [VIEW, CART, BUY], order="strict", window=None)) == [
        9,
        4,
        4,
    ]
    # a one-minute window (inclusive): carts of s01 (60 s), s05 (0 s), s06 (60 s); only s05
    # also buys within the minute
    assert counts(explicit_funnel(store, [VIEW, CART, BUY], window=timedelta(minutes=1))) == [
        9,
        3,
        1,
    ]


def test_repeated_steps_use_distinct_events(any_store: EventStore, journeys: Journeys) -> None:
    store = explicit_set(journeys).load(any_store)
    # a second view: s02 (30 s), s09 (100 s), s11 (same timestamp, another event)
    assert counts(explicit_funnel(store, [VIEW, VIEW, BUY])) == [9, 3, 1]
    assert counts(explicit_funnel(store, [VIEW, VIEW, VIEW])) == [9, 3, 0]


def test_steps_match_raw_event_names(any_store: EventStore, journeys: Journeys) -> None:
    journeys.add("a", "u1", (0, VIEW, {"event_name": "view"}), (5, CART, {"event_name": "cart"}))
    journeys.add("b", "u2", (0, VIEW, {"event_name": "view"}))
    store = journeys.load(any_store)
    assert counts(explicit_funnel(store, ["view", "cart"])) == [2, 1]
    assert counts(explicit_funnel(store, [VIEW, "cart"])) == [2, 1]
    # one event matches both steps (type and raw name): it serves only one of them
    assert counts(explicit_funnel(store, [VIEW, "view"])) == [2, 0]


def test_per_user_and_per_session(any_store: EventStore, journeys: Journeys) -> None:
    # u1: two source sessions a day apart
    journeys.add("a", "u1", (0, VIEW))
    journeys.add("b", "u1", (DAY, CART), (DAY + 60, BUY))
    # u2: no session ids; 30 minutes of inactivity split two derived sessions
    journeys.add(None, "u2", (0, VIEW), (600, BUY), (7200, VIEW), (7260, CART))
    store = journeys.load(any_store)
    sessions = explicit_funnel(store, [VIEW, CART, BUY], unit="session")
    assert counts(sessions) == [3, 1, 0]
    users = explicit_funnel(store, [VIEW, CART, BUY], unit="user")
    assert counts(users) == [2, 2, 1]
    assert users.time_to_convert.median_seconds == DAY + 60
    assert counts(
        explicit_funnel(store, [VIEW, CART, BUY], unit="user", window=timedelta(hours=1))
    ) == [2, 0, 0]


def test_time_range(any_store: EventStore, journeys: Journeys) -> None:
    store = explicit_set(journeys).load(any_store)
    # [since, until): only the first day; s07 and s08 lose their cart and purchase
    funnel = explicit_funnel(
        store, [VIEW, CART, BUY], since=date(2024, 1, 1), until=date(2024, 1, 2)
    )
    assert counts(funnel) == [9, 5, 3]
    assert funnel.since == datetime(2024, 1, 1)
    assert counts(explicit_funnel(store, [VIEW], since=datetime(2024, 1, 1, 0, 2))) == [0]


def test_empty_funnel(any_store: EventStore) -> None:
    funnel = explicit_funnel(any_store, [VIEW, BUY])
    assert counts(funnel) == [0, 0]
    assert funnel.overall_conversion is None
    assert funnel.steps[1].step_conversion is None
    assert funnel.time_to_convert.median_seconds is None
    assert funnel.as_dict()["steps"][0]["units"] == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"steps": []}, "at least one step"),
        ({"steps": [VIEW, " "]}, "at least one step"),
        ({"unit": "device"}, "unit must be"),
        ({"order": "any"}, "order must be"),
        ({"window": timedelta(seconds=-1)}, "must not be negative"),
        ({"since": date(2024, 2, 1), "until": date(2024, 1, 1)}, "must be before"),
    ],
)
def test_explicit_funnel_rejects_bad_requests(kwargs, message) -> None:
    arguments = {"steps": [VIEW, BUY], **kwargs}
    with EventStore("duckdb:///:memory:") as store, pytest.raises(FunnelError, match=message):
        explicit_funnel(store, **arguments)


# Discovered funnels


def discovery_set(journeys: Journeys) -> Journeys:
    """Eight sessions, one event a minute; four convert (j5 at its very first event)."""
    pv, search = "page_view", "search"
    return (
        journeys.add(
            "j1",
            "u1",
            (0, pv, {"engagement_ms": 10_000}),
            (60, VIEW, {"scroll_depth_pct": 80}),
            (120, CART),
            (180, BUY),
        )
        # a repeated view is collapsed; what follows the purchase is not part of the journey
        .add(
            "j2",
            "u2",
            (0, pv),
            (60, VIEW),
            (120, VIEW),
            (180, CART),
            (240, BUY),
            (300, pv, {"engagement_ms": 99_000_000}),
        )
        .add("j3", "u3", (0, pv, {"engagement_ms": 5_000}), (60, VIEW, {"scroll_depth_pct": 20}))
        .add("j4", "u4", (0, pv))
        .add("j5", "u5", (0, BUY))
        .add("j6", "u6", (0, VIEW), (60, CART))
        .add("j7", "u7", (0, pv), (60, CART), (120, BUY))
        .add("j8", "u8", (0, search))
    )


def test_discovered_funnel_known_answer(any_store: EventStore, journeys: Journeys) -> None:
    store = discovery_set(journeys).load(any_store)
    found = discover_funnel(store, BUY, min_share=0.5)
    assert (found.units, found.converters, found.base_rate) == (8, 4, 0.5)

    steps = {s.event_type: s for s in found.steps}
    assert [s.event_type for s in found.steps] == ["page_view", VIEW, CART, BUY]
    pv, view, cart, buy = found.steps
    assert (pv.units, pv.converters, pv.converter_share, pv.conversion_rate) == (5, 3, 0.75, 0.6)
    assert pv.lift == pytest.approx(1.2)
    assert (view.units, view.converters, view.converter_share, view.lift) == (4, 2, 0.5, 1.0)
    assert (cart.units, cart.converters, cart.conversion_rate, cart.lift) == (4, 3, 0.75, 1.5)
    # from the first occurrence to the conversion: page views 180, 240, 120 s
    assert pv.median_seconds_to_conversion == 180.0
    assert pv.p90_seconds_to_conversion == pytest.approx(228.0)
    assert (view.median_seconds_to_conversion, view.p90_seconds_to_conversion) == (150.0, 174.0)
    assert cart.median_seconds_to_conversion == 60.0
    # in order: 5 page views, 3 then view, 2 then cart, 2 then buy
    assert [s.funnel_units for s in found.steps] == [5, 3, 2, 2]
    assert pv.drop_off == pytest.approx(0.4)
    assert view.drop_off == pytest.approx(1 / 3)
    assert cart.drop_off == 0.0
    assert buy.drop_off is None
    assert (buy.units, buy.lift) == (4, 2.0)
    assert "search" not in steps

    # paths, repeats collapsed, conversion left out; ties by label sequence
    assert [(p.path, p.units, p.support, p.conversion_rate) for p in found.converting_paths] == [
        (("page_view", VIEW, CART), 2, 0.5, 1.0),
        ((), 1, 0.25, 1.0),
        (("page_view", CART), 1, 0.25, 1.0),
    ]
    assert [(p.path, p.units, p.conversion_rate) for p in found.non_converting_paths] == [
        (("page_view",), 1, 0.0),
        (("page_view", VIEW), 1, 0.0),
        ((VIEW, CART), 1, 0.0),
        (("search",), 1, 0.0),
    ]

    # Markov chain: P(conversion) = 1/2; removal effects worked out by hand
    assert found.conversion_probability == pytest.approx(0.5)
    effects = {c.event_type: c.removal_effect for c in found.contributions}
    assert effects == pytest.approx(
        {"page_view": 78 / 128, VIEW: 18 / 32, CART: 0.75, "search": 0.0}
    )
    lifts = {c.event_type: c.lift for c in found.contributions}
    assert lifts == pytest.approx({"page_view": 1.2, VIEW: 1.0, CART: 1.5, "search": 0.0})

    # weights: half necessity (removal effect / 0.75), half signal (log shrunk lift / log max)
    def shrunk(converters: int, units: int) -> float:
        return (converters + LIFT_PRIOR_UNITS * 0.5) / (units + LIFT_PRIOR_UNITS) / 0.5

    top = math.log(shrunk(3, 4))
    expected = {
        "page_view": round(0.5 * (78 / 128) / 0.75 + 0.5 * math.log(shrunk(3, 5)) / top, 4),
        VIEW: round(0.5 * (18 / 32) / 0.75, 4),
        CART: 1.0,
        "search": 0.0,
        BUY: 1.0,
    }
    assert found.event_weights == expected
    assert [c.event_type for c in found.contributions] == [CART, "page_view", VIEW, "search"]

    # time to convert from the session start: 180, 240, 0, 120 s
    ttc = found.time_to_convert
    assert (ttc.converters, ttc.median_seconds, ttc.mean_seconds) == (4, 150.0, 135.0)
    assert ttc.p90_seconds == pytest.approx(222.0)
    assert [b.units for b in ttc.histogram[:2]] == [1, 3]

    # implicit signals, over the journey before the conversion only
    signals = {s.name: s for s in found.signals}
    engagement = signals["engagement_ms"]
    assert (engagement.units, engagement.converters) == (2, 1)
    assert (engagement.mean_converters, engagement.mean_others) == (10.0, 5.0)
    assert engagement.correlation == pytest.approx(1.0)
    assert {b.label: (b.units, b.converters) for b in engagement.buckets if b.units} == {
        "< 10 s": (1, 0),
        "10-30 s": (1, 1),
    }
    scroll = signals["scroll_depth_pct"]
    assert (scroll.median_converters, scroll.median_others) == (80.0, 20.0)
    assert signals["media_progress_pct"].units == 0
    assert signals["media_progress_pct"].correlation is None


def test_discovered_steps_follow_min_share(any_store: EventStore, journeys: Journeys) -> None:
    store = discovery_set(journeys).load(any_store)
    assert [s.event_type for s in discover_funnel(store, BUY, min_share=0.75).steps] == [
        "page_view",
        CART,
        BUY,
    ]
    assert [s.event_type for s in discover_funnel(store, BUY, max_steps=1).steps] == [CART, BUY]


def test_simultaneous_events_count_before_the_conversion(
    any_store: EventStore, journeys: Journeys
) -> None:
    # logged purchase first, at the same moment as the cart
    journeys.add("a", "u1", (0, VIEW), (60, BUY), (60, CART))
    journeys.add("b", "u2", (0, VIEW))
    store = journeys.load(any_store)
    found = discover_funnel(store, BUY)
    assert [p.path for p in found.converting_paths] == [(VIEW, CART)]
    assert [s.event_type for s in found.steps] == [VIEW, CART, BUY]
    assert [s.funnel_units for s in found.steps] == [2, 1, 1]


def test_user_unit_joins_sessions(any_store: EventStore, journeys: Journeys) -> None:
    journeys.add("a", "u1", (0, VIEW))
    journeys.add("b", "u1", (DAY, CART), (DAY + 60, BUY))
    journeys.add("c", "u2", (0, VIEW))
    store = journeys.load(any_store)
    by_session = discover_funnel(store, BUY)
    assert (by_session.units, by_session.converters) == (3, 1)
    assert [p.path for p in by_session.converting_paths] == [(CART,)]
    by_user = discover_funnel(store, BUY, unit="user")
    assert (by_user.units, by_user.converters) == (2, 1)
    assert [p.path for p in by_user.converting_paths] == [(VIEW, CART)]
    assert by_user.time_to_convert.median_seconds == DAY + 60


def test_conversion_by_raw_name(any_store: EventStore, journeys: Journeys) -> None:
    journeys.add("a", "u1", (0, VIEW), (9, "purchase", {"event_name": "Order Completed"}))
    journeys.add("b", "u2", (0, VIEW), (9, "purchase", {"event_name": "Refund Purchase"}))
    store = journeys.load(any_store)
    found = discover_funnel(store, "Order Completed")
    assert (found.units, found.converters) == (2, 1)
    # the other purchase-type event is an ordinary step of b's journey
    assert [p.path for p in found.non_converting_paths] == [(VIEW, "purchase")]
    assert found.event_weights["purchase"] == 1.0
    assert found.steps[-1].event_type == "Order Completed"


def test_no_conversions(any_store: EventStore, journeys: Journeys) -> None:
    journeys.add("a", "u1", (0, VIEW), (5, CART))
    store = journeys.load(any_store)
    found = discover_funnel(store, BUY)
    assert (found.units, found.converters, found.base_rate) == (1, 0, 0.0)
    assert [s.event_type for s in found.steps] == [BUY]
    assert found.converting_paths == ()
    assert found.event_weights == {CART: 0.0, VIEW: 0.0}
    assert found.as_dict()["time_to_convert"]["median_seconds"] is None


def test_empty_store(any_store: EventStore) -> None:
    found = discover_funnel(any_store, BUY)
    assert (found.units, found.converters, found.base_rate) == (0, 0, None)
    assert found.contributions == ()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"conversion": " "}, "key conversion"),
        ({"min_share": 0.0}, "min_share"),
        ({"max_steps": -1}, "must not be negative"),
        ({"unit": "visit"}, "unit must be"),
    ],
)
def test_discover_funnel_rejects_bad_requests(kwargs, message) -> None:
    arguments = {"conversion": BUY, **kwargs}
    with EventStore("duckdb:///:memory:") as store, pytest.raises(FunnelError, match=message):
        discover_funnel(store, **arguments)


# Pieces


def test_markov_removal_effects_by_hand() -> None:
    # A -> conversion (2), A -> B -> conversion (1), B -> exit (1); START -> A 3, -> B 1
    chain = fit_markov_chain(
        [
            (None, "A", "step", 3),
            (None, "B", "step", 1),
            ("A", None, "conversion", 2),
            ("A", "B", "step", 1),
            ("B", None, "conversion", 1),
            ("B", None, "exit", 1),
            ("B", "B", "step", 5),  # self-transitions are ignored
        ]
    )
    # h(B) = 1/2, h(A) = 2/3 + 1/3 * 1/2 = 5/6, h(S) = 3/4 * 5/6 + 1/4 * 1/2 = 3/4
    assert chain.conversion_probability == pytest.approx(0.75)
    # without A: 1/4 * 1/2 = 1/8; without B: 3/4 * 2/3 = 1/2
    assert chain.removal_effects == pytest.approx({"A": 1 - (1 / 8) / 0.75, "B": 1 - 0.5 / 0.75})


def test_event_weights_are_in_unit_interval() -> None:
    contributions = [
        Contribution("a", 100, 50, 0.5, 0.5, 5.0, 0.9, 0.0),
        Contribution("b", 1000, 10, 0.1, 0.01, 0.1, 0.2, 0.0),
        Contribution("c", 3, 3, 0.03, 1.0, 10.0, 0.05, 0.0),
    ]
    weights = compute_event_weights(contributions, base_rate=0.1, conversion_types=["buy"])
    assert set(weights) == {"a", "b", "c", "buy"}
    assert all(0.0 <= w <= 1.0 for w in weights.values())
    assert weights["buy"] == 1.0
    # a: most removal effect and (shrunk) lift; c's raw lift is higher but rests on 3 units
    assert weights["a"] == 1.0
    assert weights["c"] < weights["a"]
    assert compute_event_weights(contributions, base_rate=None) == {
        "a": 0.5,
        "b": 0.1111,
        "c": 0.0278,
    }


# Same results on both backends


def generated_records(seed: int = 7, sessions: int = 300) -> list[dict[str, object]]:
    """A few thousand events with ties, repeats, users with several sessions and missing ids."""
    rng = random.Random(seed)
    kinds = ["page_view", VIEW, VIEW, "search", CART, "begin_checkout", BUY]
    records: list[dict[str, object]] = []
    start = datetime(2024, 1, 1)
    for s in range(sessions):
        user = f"u{rng.randrange(sessions // 3)}"
        session = None if s % 5 == 0 else f"s{s}"
        at = start + timedelta(days=rng.randrange(10), seconds=rng.randrange(86400))
        for k in range(rng.randrange(1, 12)):
            if rng.random() < 0.8:
                at += timedelta(seconds=rng.choice([0, 1, 30, 120, 900]))
            kind = rng.choice(kinds[: 2 + k]) if k < 5 else rng.choice(kinds)
            records.append(
                {
                    "source": "gen",
                    "event_id": f"g{len(records)}",
                    "event_name": kind,
                    "event_type": kind,
                    "event_ts": at.isoformat(),
                    "user_id": user,
                    "session_id": session,
                    "engagement_ms": rng.choice([None, rng.randrange(100_000)]),
                    "scroll_depth_pct": rng.choice([None, rng.randrange(101)]),
                }
            )
    return records


@pytest.mark.postgres
def test_duckdb_and_postgresql_agree(postgres_url: str) -> None:
    records = generated_records()
    with EventStore("duckdb:///:memory:") as duck, EventStore(postgres_url) as pg:
        duck.load_events(records)
        pg.load_events(records)
        for unit in ("session", "user"):
            a = discover_funnel(duck, BUY, unit=unit, min_share=0.2)
            b = discover_funnel(pg, BUY, unit=unit, min_share=0.2)
            assert a.converters > 10
            assert_same(a.as_dict(), b.as_dict())
            for order in ("loose", "strict"):
                for steps in ([VIEW, CART, BUY], [VIEW, VIEW, "search", BUY]):
                    x = explicit_funnel(
                        duck, steps, unit=unit, order=order, window=timedelta(hours=6)
                    )
                    y = explicit_funnel(
                        pg, steps, unit=unit, order=order, window=timedelta(hours=6)
                    )
                    assert_same(x.as_dict(), y.as_dict())


def assert_same(a: object, b: object, path: str = "") -> None:
    """Equal, except floats from sums and correlations, which may differ in the last bits."""
    if isinstance(a, dict) and isinstance(b, dict):
        assert a.keys() == b.keys(), path
        for key in a:
            assert_same(a[key], b[key], f"{path}.{key}")
    elif isinstance(a, list) and isinstance(b, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and isinstance(b, float):
        assert a == pytest.approx(b, rel=1e-9, abs=1e-9), path
    else:
        assert a == b, path


def test_the_ranker_reads_the_event_weights(journeys: Journeys) -> None:
    item = {"items": [{"item_id": "i1", "price": 10.0}]}
    journeys.add("a", "u1", (0, VIEW, item), (60, CART, item), (120, BUY, item))
    journeys.add("b", "u2", (0, VIEW, item))
    with EventStore("duckdb:///:memory:") as store:
        journeys.load(store)
        found = discover_funnel(store, BUY)
        ranker = SessionRanker(random_state=0).fit(store, event_weights=found.event_weights)
    assert ranker.key_conversion == BUY
    assert {k: ranker.event_weights[k] for k in found.event_weights} == found.event_weights


@pytest.mark.postgres
def test_postgresql_follows_the_steps_without_nested_loops(postgres_url: str) -> None:
    # Its planner has no statistics for the steps' CTEs: it took a step of thousands of units
    # for one row and rescanned the journeys per unit (332 s at 1M events, docs/scale.md).
    settings: list[str] = []
    with EventStore(postgres_url) as pg:
        pg.load_events(generated_records())
        backend = pg.backend
        execute = backend.execute

        def watched(sql: str, params: Sequence[Any] = ()) -> Any:
            if "AS MATERIALIZED" in sql:  # the chain of steps, as PostgreSQL plans it
                settings.append(execute("SHOW enable_nestloop")[0][0])
            return execute(sql, params)

        backend.execute = watched  # type: ignore[method-assign]
        discover_funnel(pg, BUY, min_share=0.2)
        explicit_funnel(pg, [VIEW, CART, BUY], window=timedelta(hours=6))
        backend.execute = execute  # type: ignore[method-assign]
        assert settings == ["off", "off"]
        assert pg.query("SHOW enable_nestloop") == [("on",)]  # for the other statements
