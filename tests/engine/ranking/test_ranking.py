"""Rankers: the contract for every ranker, then what the session ranker adds."""

from __future__ import annotations

import contextlib
from datetime import timedelta
from typing import Any

import numpy as np
import pytest

from target_personalize.engine import (
    DEFAULT_EVENT_WEIGHTS,
    VSKNN,
    EventStore,
    Interactions,
    ModelFormatError,
    MostPopular,
    Objectives,
    RankerBase,
    RankerError,
    SessionRanker,
    ViewsItemKNN,
    interactions_from_store,
    load_ranker,
    model_path,
    refresh_ranker,
)
from tests.support.postgres import postgres_schema_url

from .contract import T0, RankerContract, follows_sessions, session_events, store_with


class TestSessionRanker(RankerContract):
    def make(self) -> RankerBase:
        return SessionRanker(random_state=0)


class TestVSKNN(RankerContract):
    def make(self) -> RankerBase:
        return VSKNN(random_state=0)


class TestViewsItemKNN(RankerContract):
    def make(self) -> RankerBase:
        return ViewsItemKNN(random_state=0)


class TestMostPopular(RankerContract):
    session_based = False

    def make(self) -> RankerBase:
        return MostPopular(random_state=0)


# Event weights from the funnel


def _cart_vs_view_sessions() -> list[list[Any]]:
    """A is followed by X (only viewed) as often as by Y (bought)."""
    sessions: list[list[Any]] = []
    for i in range(10):
        sessions.append(["A", "X"] if i % 2 == 0 else ["A", ("Y", "purchase")])
    return sessions


def test_funnel_weights_favour_items_neighbours_converted_on() -> None:
    with store_with(session_events(_cart_vs_view_sessions())) as store:
        ranker = SessionRanker().fit(store)
        ranker.observe(
            {"session_id": "q", "event_type": "product_view", "items": [{"item_id": "A"}]}
        )
        answer = [r.item_id for r in ranker.recommend(session_id="q", k=3)]
        assert answer.index("Y") < answer.index("X")
        # Weights that make a purchase say no more than a view: X and Y tie, order by index.
        flat = {"product_view": 1.0, "purchase": 1.0}
        ranker = SessionRanker().fit(store, event_weights=flat)
        ranker.observe(
            {"session_id": "q", "event_type": "product_view", "items": [{"item_id": "A"}]}
        )
        scores = {r.item_id: r.score for r in ranker.recommend(session_id="q", k=3)}
        assert scores["X"] == pytest.approx(scores["Y"], rel=1e-2)  # newer sessions: a bit more


def test_query_event_types_weigh_by_funnel() -> None:
    # A goes with B, C with D. Carting A instead of viewing it moves the answer towards B.
    with store_with(session_events(follows_sessions())) as store:
        ranker = SessionRanker(sr_weight=0.0, remind_weight=0.0).fit(store)
    ratios = []
    for session, first_kind in (("viewed", "product_view"), ("carted", "add_to_cart")):
        ranker.observe(
            {"session_id": session, "event_type": first_kind, "items": [{"item_id": "A"}]}
        )
        ranker.observe(
            {"session_id": session, "event_type": "product_view", "items": [{"item_id": "C"}]}
        )
        scores = {r.item_id: r.score for r in ranker.recommend(session_id=session, k=4)}
        ratios.append(scores["B"] / scores["D"])
    assert ratios[1] > 2 * ratios[0]


def test_event_weights_are_checked_and_key_conversion_defaults_to_the_top_weight() -> None:
    with store_with(session_events(follows_sessions())) as store:
        with pytest.raises(RankerError, match=r"\[0, 1\]"):
            SessionRanker().fit(store, event_weights={"product_view": 2.0})
        ranker = SessionRanker().fit(store, event_weights={"product_view": 0.3, "booking": 1.0})
    assert ranker.key_conversion == "booking"
    assert ranker.event_weights["product_view"] == 0.3
    assert ranker.event_weights["add_to_cart"] == DEFAULT_EVENT_WEIGHTS["add_to_cart"]


# Objectives


def _objective_store() -> EventStore:
    """After A, the sessions go on to H (cheap, often bought) or M (high margin, rarely bought)."""
    sessions: list[list[Any]] = []
    for i in range(20):
        if i % 2 == 0:
            sessions.append(["A", "H", ("H", "purchase")] if i % 4 == 0 else ["A", "H"])
        else:
            sessions.append(["A", "M"])
    catalog = {"H": {"price": 5.0}, "M": {"price": 50.0}, "A": {"price": 10.0}}
    items = [
        {"item_id": "H", "price": 5.0, "margin": 1.0, "category": "snacks"},
        {"item_id": "M", "price": 50.0, "margin": 30.0, "category": "meals"},
        {"item_id": "A", "price": 10.0, "margin": 3.0, "category": "meals"},
    ]
    return store_with(session_events(sessions, catalog=catalog), items)


def test_objectives_reorder_by_conversion_and_margin() -> None:
    with _objective_store() as store:
        ranker = SessionRanker(remind_weight=0.0).fit(store)
    ranker.observe({"session_id": "q", "event_type": "product_view", "items": [{"item_id": "A"}]})
    relevance = [r.item_id for r in ranker.recommend(session_id="q", k=3) if r.item_id != "A"]
    conversion = [
        r.item_id
        for r in ranker.recommend(session_id="q", k=3, objectives={"conversion": 1.0})
        if r.item_id != "A"
    ]
    margin = [
        r.item_id
        for r in ranker.recommend(session_id="q", k=3, objectives={"margin": 1.0})
        if r.item_id != "A"
    ]
    assert conversion[0] == "H"
    assert margin[0] == "M"
    assert relevance[0] == "H"  # H follows A more often (it is also bought there)
    top = ranker.recommend(session_id="q", k=3, objectives={"margin": 1.0})
    by_id = {r.item_id: r for r in top}
    assert by_id["M"].value == 30.0
    assert by_id["H"].conversion > by_id["M"].conversion


def test_objectives_given_at_fit_are_the_default() -> None:
    with _objective_store() as store:
        ranker = SessionRanker(remind_weight=0.0).fit(store, objectives={"margin": 2.0})
    assert ranker.objectives == Objectives(margin=2.0)
    ranker.observe({"session_id": "q", "event_type": "product_view", "items": [{"item_id": "A"}]})
    assert next(r.item_id for r in ranker.recommend(session_id="q", k=3) if r.item_id != "A") == "M"
    with pytest.raises(RankerError, match="unknown objective"):
        ranker.recommend(session_id="q", objectives={"clicks": 1.0})


class _FixedModel:
    """P(conversion) by item id, whatever the session."""

    def __init__(self, ranker: SessionRanker, probability: dict[str, float]) -> None:
        self.ids = ranker.items.item_ids
        self.by_id = probability
        self.asked: list[list[str]] = []

    def probability(self, items: Any, query: Any) -> Any:
        ids = [str(self.ids[i]) for i in items]
        self.asked.append(ids)
        return np.array([self.by_id.get(i, 0.0) for i in ids])


def test_a_conversion_model_supplies_the_probability() -> None:
    with _objective_store() as store:
        ranker = SessionRanker(remind_weight=0.0).fit(store)
    ranker.observe({"session_id": "q", "event_type": "product_view", "items": [{"item_id": "A"}]})
    first = [r.item_id for r in ranker.recommend(session_id="q", k=3, objectives={"conversion": 1})]
    assert first[0] == "H"
    ranker.conversion_model = _FixedModel(ranker, {"H": 0.01, "M": 0.9, "A": 0.0})
    top = ranker.recommend(session_id="q", k=3, objectives={"conversion": 1})
    assert top[0].item_id == "M"
    assert {r.item_id: r.conversion for r in top}["M"] == 0.9
    ranked = ranker.rank(["H", "M"], session_id="q", objectives={"conversion": 1})
    assert [r.item_id for r in ranked] == ["M", "H"]


# Cold start


def _catalog_store() -> EventStore:
    sessions: list[list[Any]] = []
    for i in range(12):
        sessions.append(["shoe1", "shoe2"] if i % 3 else ["hat1", "hat2", "hat1"])
    catalog = {
        "shoe1": {"category": "apparel.shoes", "brand": "runfast"},
        "shoe2": {"category": "apparel.shoes", "brand": "runfast"},
        "hat1": {"category": "apparel.hats", "brand": "capco"},
        "hat2": {"category": "apparel.hats", "brand": "capco"},
    }
    items = [
        {"item_id": "shoe-new", "category": "apparel.shoes", "brand": "runfast", "price": 80.0},
        {"item_id": "hat-new", "category": "apparel.hats", "brand": "capco", "price": 20.0},
    ]
    return store_with(session_events(sessions, catalog=catalog), items)


def test_new_visitor_gets_popular_items_narrowed_by_search() -> None:
    with _catalog_store() as store:
        ranker = SessionRanker().fit(store)
    cold = [r.item_id for r in ranker.recommend(session_id="nobody", k=2)]
    assert set(cold) == {"shoe1", "shoe2"}  # the most popular
    ranker.observe({"session_id": "n", "event_type": "search", "search_query": "Hats for summer"})
    narrowed = [r.item_id for r in ranker.recommend(session_id="n", k=3)]
    assert narrowed[:2] == ["hat1", "hat2"]


def test_new_item_is_reachable_through_category_and_brand() -> None:
    with _catalog_store() as store:
        ranker = SessionRanker().fit(store)
    ranker.observe(
        {"session_id": "q", "event_type": "product_view", "items": [{"item_id": "hat2"}]}
    )
    answer = [r.item_id for r in ranker.recommend(session_id="q", k=4)]
    assert "hat-new" in answer
    assert "shoe-new" not in answer[:3]
    # An item first seen live joins the vocabulary with its category and brand.
    ranker.observe(
        {
            "session_id": "other",
            "event_type": "product_view",
            "items": [{"item_id": "hat-live", "category": "apparel.hats", "brand": "capco"}],
        }
    )
    assert "hat-live" in [r.item_id for r in ranker.recommend(session_id="q", k=5)]
    assert ranker.rank(["shoe1", "hat-live"], session_id="q")[0].item_id == "hat-live"


def test_filters_by_category_brand_and_price() -> None:
    with _catalog_store() as store:
        ranker = SessionRanker().fit(store)
    answer = ranker.recommend(session_id="s1", k=10, filters={"category": "apparel.hats"})
    assert {r.item_id for r in answer} == {"hat1", "hat2", "hat-new"}
    answer = ranker.recommend(
        session_id="s1", k=10, filters={"category": "apparel", "max_price": 50}
    )
    assert {r.item_id for r in answer} == {"hat-new"}
    answer = ranker.recommend(session_id="s1", k=10, filters={"brand": ["runfast"]})
    assert {r.item_id for r in answer} == {"shoe1", "shoe2", "shoe-new"}


# Users and history


def test_known_user_gets_their_history() -> None:
    sessions = [["a0", "a1"], ["b0", "b1"]] * 6 + [["a2", "a3"]]
    users = [None] * 12 + ["u1"]
    with store_with(
        session_events([*sessions, ["a0", "a2"], ["a1", "a3"]], users=[*users, None, None])
    ) as store:
        ranker = SessionRanker().fit(store)
    answer = [r.item_id for r in ranker.recommend(user_id="u1", k=4)]
    assert set(answer) <= {"a0", "a1", "a2", "a3"}
    # A new live session of the user starts from their history.
    ranker.observe({"user_id": "u1", "session_id": "u1-live", "event_type": "page_view"})
    answer = [r.item_id for r in ranker.recommend(user_id="u1", k=4, exclude_seen=False)]
    assert answer[0].startswith("a")


# Incremental refits and persistence next to the store


@pytest.mark.parametrize(
    "database", ["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_update_reads_only_new_loads_and_matches_a_full_fit(database: str) -> None:
    first = session_events(follows_sessions())
    later = session_events(
        [["C", "E"], ["C", "E"], ["C", "E"]], start=T0 + timedelta(hours=5), prefix="t"
    )
    # One old session grows too.
    grown = session_events([["A", "B", "E"]], prefix="s")
    with contextlib.ExitStack() as stack:
        if database == "duckdb":
            store = stack.enter_context(store_with(first))
        else:
            store = stack.enter_context(EventStore(stack.enter_context(postgres_schema_url())))
            store.load_events(first)
        ranker = SessionRanker().fit(store)
        before = len(ranker.data)
        store.load_events(later + grown)
        ranker.update(store)
        full = SessionRanker().fit(store)
    assert len(ranker.data) == len(full.data) == before + 3 * 2 + 1
    for session in ("s0", "s1", "t0"):
        assert ranker.recommend(session_id=session, k=5) == full.recommend(session_id=session, k=5)


def test_refresh_ranker_next_to_a_duckdb_file(tmp_path: Any) -> None:
    url = f"duckdb:///{tmp_path / 'shop.duckdb'}"
    with EventStore(url) as store:
        store.load_events(session_events(follows_sessions()))
        assert refresh_ranker(store) is None  # no model yet, none created
        created = refresh_ranker(store, create=True, objectives={"conversion": 1.0})
        assert created is not None
        path = model_path(url)
        assert path == tmp_path / "shop.ranker.npz" and path.exists()
        store.load_events(session_events([["C", "E"]], prefix="t", start=T0 + timedelta(hours=3)))
        refreshed = refresh_ranker(store)
        assert refreshed is not None and len(refreshed.data) == len(created.data) + 2
        loaded = load_ranker(store)
        assert loaded is not None and loaded.objectives == Objectives(conversion=1.0)
        assert loaded.recommend(session_id="t0") == refreshed.recommend(session_id="t0")


def test_models_of_non_file_stores_live_in_a_table() -> None:
    with store_with(session_events(follows_sessions())) as store:
        assert load_ranker(store) is None
        ranker = refresh_ranker(store, create=True)
        assert ranker is not None
        loaded = load_ranker(store)
        assert loaded is not None
        assert loaded.recommend(session_id="s0") == ranker.recommend(session_id="s0")


@pytest.mark.postgres
def test_a_store_finds_only_the_models_of_its_own_schema() -> None:
    # Two stores in one PostgreSQL database, each in its schema: a model saved by one is not
    # the other's (which used to fail on the other schema's table).
    events = session_events(follows_sessions())
    with postgres_schema_url() as first_url, postgres_schema_url() as second_url:
        with EventStore(first_url) as first:
            first.load_events(events)
            assert refresh_ranker(first, create=True) is not None
        with EventStore(second_url) as second:
            second.load_events(events)
            assert load_ranker(second) is None
            assert refresh_ranker(second) is None
            assert refresh_ranker(second, create=True) is not None
            assert load_ranker(second) is not None


def test_load_refuses_other_files(tmp_path: Any) -> None:
    with pytest.raises(ModelFormatError):
        SessionRanker.load(tmp_path / "missing.npz")
    with store_with(session_events(follows_sessions())) as store:
        path = MostPopular().fit(store).save(tmp_path / "pop.npz")
    with pytest.raises(ModelFormatError, match="not a SessionRanker"):
        SessionRanker.load(path)
    assert isinstance(RankerBase.load(path), MostPopular)


@pytest.mark.postgres
def test_fit_from_postgres_equals_duckdb() -> None:
    events = session_events(follows_sessions(), users=[f"u{i % 4}" for i in range(18)])
    with postgres_schema_url() as url, EventStore(url) as pg_store:
        pg_store.load_events(events)
        on_pg = SessionRanker().fit(pg_store)
        refresh_ranker(pg_store, create=True)
        assert load_ranker(pg_store) is not None
    with store_with(events) as duck:
        on_duck = SessionRanker().fit(duck)
    for session in ("s0", "s1", "s14"):
        assert on_pg.recommend(session_id=session) == on_duck.recommend(session_id=session)
    assert on_pg.recommend(user_id="u1") == on_duck.recommend(user_id="u1")


def test_interactions_from_the_store() -> None:
    catalog = {"A": {"category": "c1", "brand": "b1", "price": 3.0}}
    events = session_events(
        [["A", ("B", "add_to_cart")], ["A"]], users=["u1", "u1"], catalog=catalog
    )
    with store_with(events, [{"item_id": "Z", "price": 9.0, "margin": 4.0}]) as store:
        data = interactions_from_store(store)
    assert isinstance(data, Interactions)
    assert list(data.items.item_ids) == ["A", "B", "Z"]
    assert data.items.categories == ("c1",)
    assert np.isnan(data.items.price[1]) and data.items.price[0] == 3.0
    assert data.items.value()[2] == 4.0  # margin wins over price
    assert list(data.session_keys) == ["s0", "s1"]
    assert list(data.visitors) == ["u1"]
    assert [data.event_types[k] for k in data.kind] == [
        "product_view",
        "add_to_cart",
        "product_view",
    ]
    assert list(data.item) == [0, 1, 0]


def test_live_sessions_survive_a_refit() -> None:
    with store_with(session_events(follows_sessions())) as store:
        ranker = SessionRanker().fit(store)
        ranker.observe(
            {"session_id": "live", "event_type": "add_to_cart", "items": [{"item_id": "C"}]}
        )
        ranker.observe(
            {
                "session_id": "live",
                "event_type": "product_view",
                "items": [{"item_id": "new", "category": "x"}],
            }
        )
        before = ranker.recommend(session_id="live", k=3)
        store.load_events(session_events([["A", "E"]], prefix="t", start=T0 + timedelta(hours=4)))
        ranker.update(store)
    after = ranker.recommend(session_id="live", k=3)
    assert [r.item_id for r in after][:2] == [r.item_id for r in before][:2]
    assert "E" in ranker.items.item_ids


# A model refreshed while serving


def test_a_refreshed_model_adopts_the_live_sessions_as_if_it_had_seen_them() -> None:
    first = session_events(follows_sessions())
    later = session_events([["N", "B"]] * 6, prefix="n", start=T0 + timedelta(days=1))
    live = [
        {
            "source": "api",
            "event_id": "l1",
            "event_type": "product_view",
            "event_ts": "2024-03-03T10:00:00Z",
            "session_id": "live",
            "items": [{"item_id": "A"}],
        },
        {
            "source": "api",
            "event_id": "l2",
            "event_type": "product_view",
            "event_ts": "2024-03-03T10:01:00Z",
            "session_id": "live",
            "items": [{"item_id": "only-live", "category": "misc"}],
        },
        {
            "source": "api",
            "event_id": "l3",
            "event_type": "product_view",
            "event_ts": "2024-03-03T10:02:00Z",
            "user_id": "u-live",
            "items": [{"item_id": "N"}],
        },
    ]
    with store_with(first) as store:
        serving = SessionRanker(random_state=0).fit(store)
    for event in live:
        serving.observe(event)
    with store_with(first + later) as store:
        refreshed = SessionRanker(random_state=0).fit(store)
        expected = SessionRanker(random_state=0).fit(store)
    refreshed.adopt_live(serving)
    for event in live:
        expected.observe(event)
    for query in ({"session_id": "live"}, {"user_id": "u-live"}):
        got = refreshed.recommend(**query, k=6)
        assert got == expected.recommend(**query, k=6)
    # The refreshed model knows N -> B, which the serving one did not.
    assert refreshed.recommend(user_id="u-live", k=1, exclude_seen=True)[0].item_id == "B"
    # An item seen only live is in the new vocabulary, with its category.
    assert "only-live" in refreshed.items.item_ids.tolist()
