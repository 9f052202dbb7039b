"""The ranker contract, run against every ranker (STYLE.md guideline 13).

A test class mixes :class:`RankerContract` in and says how to build its ranker. The datasets are
tiny and synthetic, with answers known in advance:

* ``follows``: in every session, B follows A and D follows C; whoever saw A should get B.
* ``checkerboard``: items of group a are only ever seen with group a, group b with group b;
  a session in group a gets group-a items only.
* ``popular``: item P is in far more sessions than any other.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import pytest

from target_personalize.engine import EventStore, ModelNotFittedError, RankerBase, RankerError

T0 = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)

Step = tuple[str, str] | str


def session_events(
    sessions: Sequence[Sequence[Step]],
    *,
    start: datetime = T0,
    users: Sequence[str | None] | None = None,
    prefix: str = "s",
    catalog: dict[str, dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """Canonical events for ``sessions``: each a list of item ids or (item id, event type).

    Sessions start ten minutes apart; events in a session are a minute apart.
    """
    events: list[dict[str, Any]] = []
    for number, steps in enumerate(sessions):
        begin = start + timedelta(minutes=10 * number)
        user = users[number] if users else None
        for position, step in enumerate(steps):
            item, kind = (step, "product_view") if isinstance(step, str) else step
            info = (catalog or {}).get(item, {})
            events.append(
                {
                    "source": "test",
                    "event_id": f"{prefix}{number}-{position}",
                    "event_name": kind,
                    "event_type": kind,
                    "event_ts": (begin + timedelta(minutes=position)).isoformat(),
                    "session_id": f"{prefix}{number}",
                    "user_id": user,
                    "anonymous_id": None if user else f"anon-{prefix}{number}",
                    "items": [
                        {
                            "item_id": item,
                            "category": info.get("category"),
                            "brand": info.get("brand"),
                            "price": info.get("price"),
                            "quantity": 1,
                        }
                    ],
                    "revenue": info.get("price") if kind == "purchase" else None,
                }
            )
    return events


def store_with(
    events: Iterable[dict[str, Any]], items: Iterable[dict[str, Any]] = ()
) -> EventStore:
    """An in-memory store holding ``events`` and catalog ``items``."""
    store = EventStore("duckdb:///:memory:")
    store.load_events(list(events))
    catalog = list(items)
    if catalog:
        store.load_items(catalog)
    return store


def follows_sessions() -> list[list[Step]]:
    """B follows A, D follows C, with a few fillers; P is popular but unrelated."""
    sessions: list[list[Step]] = []
    for i in range(12):
        sessions.append(["A", "B"] if i % 2 == 0 else ["C", "D"])
    for i in range(6):
        sessions.append(["P", f"F{i % 3}"])
    return sessions


def checkerboard_sessions() -> list[list[Step]]:
    """Group a (a0..a3) and group b (b0..b3) never meet."""
    sessions: list[list[Step]] = []
    for i in range(16):
        group = "a" if i % 2 == 0 else "b"
        sessions.append([f"{group}{i % 4}", f"{group}{(i + 1) % 4}", f"{group}{(i + 2) % 4}"])
    return sessions


def popular_sessions() -> list[list[Step]]:
    """P in every session, Q in half, R in a quarter."""
    sessions: list[list[Step]] = []
    for i in range(16):
        steps: list[Step] = ["P"]
        if i % 2 == 0:
            steps.append("Q")
        if i % 4 == 0:
            steps.append("R")
        steps.append(f"X{i}")
        sessions.append(steps)
    return sessions


class RankerContract:
    """Tests every ranker passes. Subclasses set ``session_based`` and implement ``make``."""

    #: Whether the ranker uses the session (False for popularity baselines).
    session_based: ClassVar[bool] = True

    def make(self) -> RankerBase:
        """A fresh, unfitted ranker."""
        raise NotImplementedError

    def fitted(self, sessions: Sequence[Sequence[Step]], **kwargs: Any) -> RankerBase:
        with store_with(session_events(sessions, **kwargs)) as store:
            return self.make().fit(store)

    # Known answers

    def test_known_answer(self) -> None:
        if self.session_based:
            ranker = self.fitted(follows_sessions())
            assert ranker.recommend(session_id="s0", k=3)[0].item_id in {"A", "B"}
            answer = [r.item_id for r in ranker.recommend(session_id="s1", k=5)]
            assert answer[0] in {"C", "D"}
            assert "B" not in answer[:2]
        else:
            ranker = self.fitted(popular_sessions())
            answer = [r.item_id for r in ranker.recommend(session_id="s1", k=3)]
            assert answer == ["P", "Q", "R"]

    def test_checkerboard(self) -> None:
        ranker = self.fitted(checkerboard_sessions())
        if not self.session_based:
            pytest.skip("popularity does not follow the session")
        for session, group in (("s0", "a"), ("s1", "b")):
            answer = [r.item_id for r in ranker.recommend(session_id=session, k=4)]
            assert answer, "a session in the data gets an answer"
            assert all(item.startswith(group) for item in answer), answer

    def test_scores_are_sorted_and_finite(self) -> None:
        ranker = self.fitted(follows_sessions())
        answer = ranker.recommend(session_id="s0", k=10)
        scores = [r.score for r in answer]
        assert scores == sorted(scores, reverse=True)
        assert all(math.isfinite(s) and s > 0 for s in scores)
        assert len({r.item_id for r in answer}) == len(answer)

    # Agreement between entry points

    def test_batch_agrees_with_single(self) -> None:
        ranker = self.fitted(follows_sessions())
        requests: list[tuple[str | None, str | None]] = [
            (None, "s0"),
            (None, "s1"),
            (None, "s13"),
            (None, "unknown-session"),
        ]
        batch = ranker.recommend_batch(requests, k=5)
        single = [ranker.recommend(user, session, k=5) for user, session in requests]
        assert batch == single

    def test_rank_agrees_with_recommend(self) -> None:
        ranker = self.fitted(follows_sessions())
        top = ranker.recommend(session_id="s0", k=4)
        # Unknown ids longer and shorter than every known one.
        shuffled = [r.item_id for r in reversed(top)] + ["never-seen", "z"]
        ranked = ranker.rank(shuffled, session_id="s0")
        # Same items and scores; tied items keep the order they were given in.
        assert {r.item_id for r in ranked[: len(top)]} == {r.item_id for r in top}
        assert [r.score for r in ranked[: len(top)]] == [r.score for r in top]
        by_id = {r.item_id: r for r in top}
        assert all(by_id[r.item_id] == r for r in ranked[: len(top)])
        assert [r.item_id for r in ranked[-2:]] == ["never-seen", "z"]
        assert [r.score for r in ranked[-2:]] == [0.0, 0.0]
        assert len(ranked) == len(shuffled)

    # Persistence

    def test_save_load_round_trip(self, tmp_path: Any) -> None:
        ranker = self.fitted(follows_sessions())
        path = ranker.save(tmp_path / "model")
        assert path.suffix == ".npz"
        assert path.with_suffix(".json").exists()
        loaded = type(ranker).load(path)
        assert loaded.get_params() == ranker.get_params()
        assert loaded.event_weights == ranker.event_weights
        for session in ("s0", "s1", "s12"):
            assert loaded.recommend(session_id=session, k=5) == ranker.recommend(
                session_id=session, k=5
            )
        assert RankerBase.load(path).recommend(session_id="s0") == ranker.recommend(session_id="s0")

    # Live events

    def test_observe_changes_the_next_answer(self) -> None:
        ranker = self.fitted(follows_sessions())
        before = ranker.recommend(session_id="live-1", k=3)
        ranker.observe(_live("live-1", "A", 0))
        after_a = [r.item_id for r in ranker.recommend(session_id="live-1", k=3)]
        if self.session_based:
            assert after_a[0] in {"A", "B"} and "B" in after_a
            ranker.observe(_live("live-1", "C", 1))
            ranker.observe(_live("live-1", "C", 2))
            after_c = [r.item_id for r in ranker.recommend(session_id="live-1", k=3)]
            assert after_c != after_a
            assert after_c[0] in {"C", "D"}
        else:
            assert [r.item_id for r in before] == after_a

    def test_observe_by_user_without_session(self) -> None:
        ranker = self.fitted(follows_sessions())
        ranker.observe({**_live(None, "C", 0), "user_id": "u-live"})
        answer = [r.item_id for r in ranker.recommend(user_id="u-live", k=3)]
        if self.session_based:
            assert "D" in answer
        else:  # a user's live events do not move popularity
            assert answer == [r.item_id for r in ranker.recommend(user_id="someone-else", k=3)]

    # Options and errors

    def test_exclude_seen(self) -> None:
        ranker = self.fitted(follows_sessions())
        answer = [r.item_id for r in ranker.recommend(session_id="s0", k=10, exclude_seen=True)]
        assert "A" not in answer and "B" not in answer

    def test_filters(self) -> None:
        ranker = self.fitted(follows_sessions())
        answer = ranker.recommend(session_id="s0", k=10, filters={"item_ids": ["B", "C", "P"]})
        assert {r.item_id for r in answer} <= {"B", "C", "P"}
        assert ranker.recommend(session_id="s0", filters={"exclude": ["B"]})[0].item_id != "B"
        with pytest.raises(RankerError, match="unknown filter"):
            ranker.recommend(session_id="s0", filters={"colour": "red"})

    def test_needs_fit(self) -> None:
        ranker = self.make()
        with pytest.raises(ModelNotFittedError):
            ranker.recommend(session_id="s0")
        with pytest.raises(ModelNotFittedError):
            ranker.save("nowhere.npz")

    def test_needs_a_user_or_session(self) -> None:
        ranker = self.fitted(follows_sessions())
        with pytest.raises(RankerError):
            ranker.recommend()

    def test_random_state_and_params(self) -> None:
        ranker = self.make()
        params = ranker.get_params()
        assert "random_state" in params
        clone = type(ranker)(**params)
        assert clone.get_params() == params

    def test_relevance_only_when_objective_weights_are_zero(self) -> None:
        ranker = self.fitted(follows_sessions())
        plain = ranker.recommend(session_id="s0", k=5)
        zero = ranker.recommend(session_id="s0", k=5, objectives={"conversion": 0, "margin": 0})
        assert plain == zero


def _live(session: str | None, item: str, minute: int) -> dict[str, Any]:
    return {
        "event_type": "product_view",
        "event_ts": (T0 + timedelta(days=1, minutes=minute)).isoformat(),
        "session_id": session,
        "items": [{"item_id": item}],
    }
