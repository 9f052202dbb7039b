"""Live sessions: what a serving ranker keeps of the events it observes."""

from __future__ import annotations

from typing import Any

from target_personalize.engine import EventStore, SessionRanker

from .contract import follows_sessions, session_events, store_with


def _view(session: str | None, item: str, user: str | None = None) -> dict[str, object]:
    return {
        "session_id": session,
        "user_id": user,
        "event_type": "product_view",
        "items": [{"item_id": item}],
    }


def test_the_least_recently_observed_session_is_dropped_with_its_visitor() -> None:
    with store_with(session_events(follows_sessions())) as store:
        ranker = SessionRanker(max_live_sessions=2, remind_weight=0.0).fit(store)
    ranker.observe(_view("one", "A", user="u1"))
    ranker.observe(_view("two", "C", user="u2"))
    ranker.observe(_view("one", "A"))  # "one" is now the most recent
    ranker.observe(_view("three", "C", user="u3"))  # drops "two"
    assert ranker.recommend(session_id="one", k=1, exclude_seen=True)[0].item_id == "B"
    assert ranker.recommend(user_id="u1", k=1, exclude_seen=True)[0].item_id == "B"
    assert ranker.recommend(user_id="u3", k=1, exclude_seen=True)[0].item_id == "D"
    # "two" and its visitor are forgotten: they answer as a session never seen.
    assert ranker.recommend(session_id="two", k=4) == ranker.recommend(session_id="never", k=4)
    assert ranker.recommend(user_id="u2", k=4) == ranker.recommend(user_id="nobody", k=4)


def test_a_visitor_without_session_id_has_one_live_session() -> None:
    with store_with(session_events(follows_sessions())) as store:
        ranker = SessionRanker(remind_weight=0.0).fit(store)
    ranker.observe(_view(None, "A", user="walker"))
    ranker.observe(_view(None, "C", user="walker"))
    assert {r.item_id for r in ranker.recommend(user_id="walker", k=2, exclude_seen=True)} == {
        "B",
        "D",
    }
    assert ranker.recommend(session_id="walker#live", k=2) == ranker.recommend(
        user_id="walker", k=2
    )
    ranker.observe({"event_type": "product_view", "items": [{"item_id": "A"}]})  # no visitor
    assert ranker.recommend(user_id="walker", k=2) == ranker.recommend(
        session_id="walker#live", k=2
    )


class _ShortMemory(SessionRanker):
    max_session_events = 1


def test_a_live_session_keeps_its_latest_events() -> None:
    relevance_of_b = []
    for kind in (SessionRanker, _ShortMemory):
        with store_with(session_events(follows_sessions())) as store:
            ranker = kind(remind_weight=0.0, sr_weight=0.0, lambda_spw=100.0).fit(store)
        for item in ("A", "C"):
            ranker.observe(_view("s", item))
        answer = ranker.recommend(session_id="s", k=4, exclude_seen=True)
        found = {r.item_id: r.relevance for r in answer}
        relevance_of_b.append(found["B"])
    # B follows A: A still counts in a session of 100 events, not in one of 1.
    assert relevance_of_b[0] > 0.2
    assert relevance_of_b[1] < 1e-2, relevance_of_b


# Category and brand signals without items reach cold start (issue 11)


def _shop() -> EventStore:
    """Shoes are the most popular; hats and pots (a category named in Cyrillic) less so."""
    sessions: list[list[Any]] = []
    for i in range(15):
        sessions.append(
            [["shoe1", "shoe2"], ["shoe2", "shoe1"], ["hat1", "hat2"], ["shoe1"], ["pot1", "pot2"]][
                i % 5
            ]
        )
    catalog = {
        "shoe1": {"category": "apparel.shoes", "brand": "runfast"},
        "shoe2": {"category": "apparel.shoes", "brand": "runfast"},
        "hat1": {"category": "apparel.hats", "brand": "capco"},
        "hat2": {"category": "apparel.hats", "brand": "capco"},
        "pot1": {"category": "кухня", "brand": "zen"},
        "pot2": {"category": "кухня", "brand": "zen"},
    }
    return store_with(session_events(sessions, catalog=catalog))


def _top(ranker: SessionRanker, session: str, k: int) -> set[str]:
    return {r.item_id for r in ranker.recommend(session_id=session, k=k)}


def test_a_category_filter_without_items_narrows_a_new_session() -> None:
    with _shop() as store:
        ranker = SessionRanker().fit(store)
    assert _top(ranker, "nobody", 2) == {"shoe1", "shoe2"}  # the most popular
    # A category name with no latin word in it: only the filter's name can say what it means.
    ranker.observe({"session_id": "f", "event_type": "filter", "filters": {"category": "кухня"}})
    assert _top(ranker, "f", 2) == {"pot1", "pot2"}


def test_a_category_page_without_items_narrows_to_the_category_and_its_subcategories() -> None:
    with _shop() as store:
        ranker = SessionRanker().fit(store)
    ranker.observe(
        {
            "session_id": "p",
            "event_type": "category_view",
            "properties": {"category": "apparel.hats"},
        }
    )
    assert _top(ranker, "p", 2) == {"hat1", "hat2"}
    ranker.observe(
        {"session_id": "a", "event_type": "category_view", "properties": {"category": "apparel"}}
    )
    assert _top(ranker, "a", 4) == {"shoe1", "shoe2", "hat1", "hat2"}


def test_a_list_of_brands_narrows_to_those_brands_and_survives_a_refit() -> None:
    with _shop() as store:
        ranker = SessionRanker().fit(store)
        ranker.observe(
            {"session_id": "b", "event_type": "filter", "filters": {"brand": ["capco", "zen"]}}
        )
        assert _top(ranker, "b", 4) == {"hat1", "hat2", "pot1", "pot2"}
        ranker.fit(store)
    assert _top(ranker, "b", 4) == {"hat1", "hat2", "pot1", "pot2"}


# Live sessions kept in step with state shared by several servers (issue 16)


def test_sync_live_brings_a_session_in_step_with_events_observed_elsewhere() -> None:
    with store_with(session_events(follows_sessions())) as store:
        here = SessionRanker(remind_weight=0.0).fit(store)
        elsewhere = SessionRanker(remind_weight=0.0).fit(store)
    events = [_view("s", "A", user="u"), _view("s", "C", user="u")]
    for event in events:
        elsewhere.observe(event)
    here.observe(_view("s", "C"))  # a stale copy: replaced, not added to
    here.sync_live("s", events[:1], replace=True)
    assert here.holds_live("s")
    here.sync_live("s", events[1:], replace=False, visitor="u")
    for ranker in (here, elsewhere):
        assert ranker.recommend(user_id="u", k=4) == elsewhere.recommend(session_id="s", k=4)
    assert here.recommend(session_id="s", k=4) == elsewhere.recommend(session_id="s", k=4)

    here.forget_live("s", "u")
    assert not here.holds_live("s")
    assert here.recommend(session_id="s", k=4) == here.recommend(session_id="never", k=4)
    assert here.recommend(user_id="u", k=4) == here.recommend(user_id="nobody", k=4)
