"""The LambdaRank second stage and the calibrated conversion model, on data with known answers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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
from target_personalize.engine.ranking.candidate_conversion import CandidateConversion
from target_personalize.engine.ranking.features import FEATURE_NAMES
from target_personalize.engine.ranking.interactions import ItemTable

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


_GROUP = 20


def _two_intent_shop(
    count: int, seed: int, prefix: str, start: float
) -> tuple[list[list[Any]], list[int]]:
    """Sessions of two intents over two groups of items (``a*`` and ``b*``, 20 each).

    A session of intent ``g`` views 5 items, 90% of them in its group, then half of the
    sessions cart and buy a *new* item of their group, item ``j`` with weight ``j + 1``. So the
    true P(the session converts on item ``j``) is ``0.5 (j + 1) / 210`` in its group and 0 in the
    other, while every item's rate is the same for both intents.
    """
    rng = np.random.default_rng(seed)
    weight = np.arange(1, _GROUP + 1, dtype=np.float64)
    rows: list[list[Any]] = []
    intents: list[int] = []
    t = start
    for s in range(count):
        intent = int(rng.integers(2))
        intents.append(intent)
        key = f"{prefix}{s}"
        viewed: set[str] = set()
        for _ in range(5):
            group = intent if rng.random() < 0.9 else 1 - intent
            item = f"{'ab'[group]}{int(rng.integers(_GROUP))}"
            viewed.add(item)
            rows.append([key, item, "product_view", t])
            t += 10.0
        if rng.random() < 0.5:
            fresh = [j for j in range(_GROUP) if f"{'ab'[intent]}{j}" not in viewed]
            p = weight[fresh] / weight[fresh].sum()
            item = f"{'ab'[intent]}{int(rng.choice(fresh, p=p))}"
            rows += [[key, item, "add_to_cart", t], [key, item, "purchase", t + 1.0]]
            t += 10.0
    return rows, intents


def test_the_calibrated_model_gives_the_margin_dial_the_session_s_probability() -> None:
    """Group ``b`` carries ten times the margin. With item rates (the same for both intents)
    the margin dial pushes ``b`` items on ``a`` sessions, which never buy them; with the
    session's calibrated P it keeps to what the session buys. Measured per session as the
    true expected margin of the list over the oracle's (the 5 best items by true expected
    margin), averaged over sessions."""
    ids = [f"{g}{j}" for g in "ab" for j in range(_GROUP)]
    margin = {i: 10.0 if i[0] == "b" else 1.0 for i in ids}
    catalog = ItemTable.build(
        ids, category=[i[0] for i in ids], price=[20.0] * len(ids), margin=list(margin.values())
    )
    train_rows, _ = _two_intent_shop(2_000, 5, "t", 0.0)
    train = Interactions.from_rows(*(list(c) for c in zip(*train_rows, strict=True)), items=catalog)
    ranker = RerankedSessionRanker(
        random_state=0, n_estimators=40, rerank_candidates=40, calibrated_dials=True
    )
    ranker.fit(train, key_conversion="purchase")
    assert isinstance(ranker.conversion_model, CandidateConversion)
    calibrated = ranker.conversion_model

    def true_margin(item: str, intent: int) -> float:
        if item[0] != "ab"[intent]:
            return 0.0
        return 0.5 * (int(item[1:]) + 1) / 210.0 * margin[item]

    test_rows, intents = _two_intent_shop(150, 6, "q", 1e7)
    shares: dict[str, list[float]] = {"calibrated": [], "rates": []}
    p_own, p_other = [], []
    for s, intent in enumerate(intents):
        key = f"q{s}"
        for row in test_rows:
            if row[0] == key and row[2] == "product_view":
                ranker.observe(
                    {"session_id": key, "event_type": row[2], "items": [{"item_id": row[1]}]}
                )
        oracle = sum(sorted((true_margin(i, intent) for i in ids), reverse=True)[:5])
        for label, model in (("calibrated", calibrated), ("rates", None)):
            ranker.conversion_model = model
            shown = ranker.recommend(session_id=key, k=5, objectives={"margin": 1.0})
            shares[label].append(sum(true_margin(i.item_id, intent) for i in shown) / oracle)
        ranker.conversion_model = calibrated
        # The same item gets the P of the session asking: high where the session buys.
        for item in ranker.recommend(session_id=key, k=40):
            (p_own if item.item_id[0] == "ab"[intent] else p_other).append(item.conversion)
    assert float(np.mean(shares["calibrated"])) > float(np.mean(shares["rates"])) + 0.1
    assert float(np.mean(p_own)) > 3 * float(np.mean(p_other))
