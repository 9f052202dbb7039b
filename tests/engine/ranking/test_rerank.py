"""The LambdaRank second stage and the calibrated conversion model, on data with known answers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from target_personalize.engine import (
    CalibratedConversionModel,
    Interactions,
    Objectives,
    RankerBase,
    RerankedSessionRanker,
    SessionRanker,
    evaluate,
    expected_calibration_error,
)
from target_personalize.engine.evaluation.splits import prepare_fixed_split
from target_personalize.engine.exceptions import RankerError
from target_personalize.engine.ranking.features import FEATURE_NAMES

_ITEMS = 60


def _cycle_sessions(
    count: int, start_time: float, seed: int, prefix: str
) -> tuple[list[str], list[str], list[str], list[float]]:
    """Sessions that walk a fixed cycle of items: the next item is always ``successor[last]``.

    Visitors never return to an item, so the session ranker's reminders of the session's own
    items (its strongest signal on clicks) always point at a wrong item here.
    """
    successor = np.random.default_rng(99).permutation(_ITEMS)
    rng = np.random.default_rng(seed)
    sessions, items, kinds, times = [], [], [], []
    t = start_time
    for s in range(count):
        item = int(rng.integers(_ITEMS))
        for _ in range(int(rng.integers(3, 7))):
            sessions.append(f"{prefix}{s}")
            items.append(f"i{item}")
            kinds.append("product_view")
            times.append(t)
            t += 10.0
            item = int(successor[item])
    return sessions, items, kinds, times


def _cycle_split() -> tuple[Interactions, Interactions]:
    train = Interactions.from_rows(*_cycle_sessions(1_500, 0.0, 1, "a"))
    test = Interactions.from_rows(*_cycle_sessions(200, 1e6, 2, "b"))
    return prepare_fixed_split(train, test)


def test_the_second_stage_recovers_a_ranking_the_first_stage_misses() -> None:
    train, test = _cycle_split()
    first = SessionRanker(random_state=0)
    second = RerankedSessionRanker(random_state=0, n_estimators=60, rerank_candidates=30)
    report = evaluate(
        train,
        test,
        [("first", first, Objectives()), ("second", second, Objectives())],
        k=1,
    )
    first_hit, second_hit = report.result("first").hit_rate, report.result("second").hit_rate
    assert first_hit < 0.5
    assert second_hit > 0.95


def test_a_saved_reranker_loads_with_its_second_stage(tmp_path: Path) -> None:
    train, _ = _cycle_split()
    ranker = RerankedSessionRanker(random_state=0, n_estimators=30, rerank_candidates=30)
    ranker.fit(train)
    session = str(train.session_keys[int(train.session[-1])])
    before = ranker.recommend(session_id=session, k=10)
    path = ranker.save(tmp_path / "model")
    loaded = RankerBase.load(path)
    assert isinstance(loaded, RerankedSessionRanker)
    assert loaded.get_params() == ranker.get_params()
    after = loaded.recommend(session_id=session, k=10)
    assert [i.item_id for i in after] == [i.item_id for i in before]
    assert np.allclose([i.score for i in after], [i.score for i in before])


def test_conversion_probabilities_need_conversions() -> None:
    train, _ = _cycle_split()
    ranker = RerankedSessionRanker(random_state=0, n_estimators=10).fit(train)
    with pytest.raises(RankerError, match="no conversion model"):
        ranker.conversion_probabilities(session_id=str(train.session_keys[0]))


def _known_probabilities(rows: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    features = rng.uniform(-2, 2, size=(rows, 3))
    # Strongly non-linear and skewed, so raw boosted scores alone would be off.
    p = 1.0 / (1.0 + np.exp(-(2.5 * features[:, 0] - features[:, 1] ** 2 - 1.5)))
    return features, p, rng.random(rows) < p


def test_the_conversion_model_is_calibrated_on_known_probabilities() -> None:
    features, _, outcome = _known_probabilities(30_000, 1)
    groups = np.arange(outcome.size) // 5
    model = CalibratedConversionModel(n_estimators=100).fit(features, outcome, groups)
    held, truth, held_outcome = _known_probabilities(30_000, 2)
    predicted = model.predict(held)
    assert expected_calibration_error(predicted, held_outcome) < 0.02
    assert float(np.mean(np.abs(predicted - truth))) < 0.05
    # A round trip through arrays predicts the same.
    again = CalibratedConversionModel.from_arrays(model.arrays("m"), "m")
    assert again is not None
    assert np.allclose(again.predict(held), predicted)


def test_expected_calibration_error_known_answers() -> None:
    assert expected_calibration_error(np.full(10, 0.5), np.arange(10) % 2) == pytest.approx(0.0)
    assert expected_calibration_error(np.full(4, 0.9), np.zeros(4)) == pytest.approx(0.9)
    mixed = expected_calibration_error(np.array([0.1, 0.1, 0.9, 0.9]), np.array([0, 0, 1, 0]))
    assert mixed == pytest.approx(0.5 * 0.1 + 0.5 * 0.4)


def test_the_conversion_model_refuses_one_class() -> None:
    with pytest.raises(RankerError, match="both converting and non-converting"):
        CalibratedConversionModel().fit(
            np.zeros((10, len(FEATURE_NAMES))), np.zeros(10), np.arange(10)
        )


def test_conversion_probabilities_follow_what_sessions_cart() -> None:
    """Even items are always added to cart right after their view, odd ones never: the item a
    session goes to next (its successor on the cycle) is likely to be carted when it is even."""
    sessions, items, kinds, times = _cycle_sessions(1_500, 0.0, 3, "c")
    rows = [list(x) for x in zip(sessions, items, kinds, times, strict=True)]
    carted = [[s, i, "add_to_cart", t + 1.0] for s, i, _, t in rows if int(i[1:]) % 2 == 0]
    merged = sorted(rows + carted, key=lambda row: (row[0], row[3]))
    train = Interactions.from_rows(*(list(column) for column in zip(*merged, strict=True)))
    ranker = RerankedSessionRanker(random_state=0, n_estimators=30, rerank_candidates=20)
    ranker.fit(train, key_conversion="add_to_cart")
    successor = np.random.default_rng(99).permutation(_ITEMS)
    even, odd = [], []
    for session in range(60):
        key = str(train.session_keys[session])
        last = [r[1] for r in merged if r[0] == key][-1]
        upcoming = f"i{successor[int(last[1:])]}"
        answer = dict(ranker.conversion_probabilities(session_id=key, k=20))
        assert all(0.0 <= p <= 1.0 for p in answer.values())
        if upcoming in answer:
            (even if int(upcoming[1:]) % 2 == 0 else odd).append(answer[upcoming])
    assert len(even) > 10 and len(odd) > 10
    assert float(np.mean(even)) > float(np.mean(odd)) + 0.3
