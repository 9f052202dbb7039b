"""The item index of a serving ranker: remembered answers stay those of the item table."""

from __future__ import annotations

from unittest.mock import patch

from target_personalize.engine.ranking import vocabulary
from target_personalize.engine.ranking.interactions import interactions_from_store
from target_personalize.engine.ranking.vocabulary import Vocabulary

from .contract import follows_sessions, session_events, store_with


def _vocabulary() -> Vocabulary:
    with store_with(session_events(follows_sessions())) as store:
        return Vocabulary(interactions_from_store(store), {"product_view": 1.0})


def test_items_are_found_again_after_live_items_were_appended() -> None:
    words = _vocabulary()
    training = {str(item): i for i, item in enumerate(words.items.item_ids)}
    assert list(training) == ["A", "B", "C", "D", "F0", "F1", "F2", "P"]
    first = {item: words.item(item) for item in training}
    assert first == {item: (i, False) for item, i in training.items()}
    # A new item is appended after the training rows, with its category.
    assert words.item({"item_id": "0-new", "category": "toys"}) == (8, True)
    assert words.item("0-new") == (8, False)
    assert words.items.categories[words.items.category[8]] == "toys"
    # The training items keep their answers, remembered or looked up again.
    assert {item: words.item(item) for item in training} == first
    words._found.clear()
    assert {item: words.item(item) for item in training} == first
    # Unknown bare ids stay unknown, asked once or twice.
    assert words.item("Z") == (-1, False)
    assert words.item("Z") == (-1, False)
    assert words.lookup(["B", "0-new", "Z"]).tolist() == [1, 8, -1]


def test_the_remembered_ids_are_bounded() -> None:
    words = _vocabulary()
    with patch.object(vocabulary, "_IDS_KEPT", 2):
        answers = [words.item(item) for item in ("A", "B", "C", "P", "X", "A")]
        assert len(words._found) <= 2
    assert [found for found, _ in answers] == [0, 1, 2, 7, -1, 0]
