"""The offline evaluation: session-rec's protocol, the extra metrics, splits, and V-SKNN."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from target_personalize.engine import (
    VSKNN,
    Interactions,
    ItemTable,
    MostPopular,
    Objectives,
    SessionRanker,
    default_rankers,
    evaluate,
    evaluate_store,
    ndcg_at_k,
    per_user_split,
    precision_at_k,
    read_session_file,
    read_split_file,
)
from target_personalize.engine.evaluation.splits import prepare_fixed_split, prepare_split
from target_personalize.engine.ranking.query import Query
from tests.engine.ranking.contract import session_events, store_with

# The shared data set lies beside the repository (../shared/data).
DATA = Path(__file__).resolve().parents[4] / "shared" / "data"
YOOCHOOSE_TRAIN = DATA / "yoochoose-clicks-100k-train_full.txt"
YOOCHOOSE_TEST = DATA / "yoochoose-clicks-100k-test.txt"


def _rows(
    sessions: dict[str, list[Any]], start: float = 0.0, items: ItemTable | None = None
) -> Interactions:
    keys, ids, kinds, times = [], [], [], []
    t = start
    for key, steps in sessions.items():
        for step in steps:
            item, kind = (step, "product_view") if isinstance(step, str) else step
            keys.append(key)
            ids.append(item)
            kinds.append(kind)
            times.append(t)
            t += 60.0
    return Interactions.from_rows(keys, ids, kinds, times, items=items)


def test_protocol_by_hand_with_most_popular() -> None:
    # Popularity in training: p (3), q (2), r (1).
    vocabulary = ItemTable.build(["p", "q", "r"])
    train = _rows({"t1": ["p", "q"], "t2": ["p", "q"], "t3": ["p", "r"]}, items=vocabulary)
    test = _rows({"x": ["r", "q", "p", "r"]}, start=10_000.0, items=vocabulary)
    report = evaluate(train, test, [("pop", MostPopular(), Objectives())], k=2)
    result = report.result("pop")
    # Predictions for q (rank 2), p (rank 1), r (rank 3 > k): 3 predictions.
    assert result.predictions == 3
    assert result.hit_rate == pytest.approx(2 / 3)
    assert result.mrr == pytest.approx((1 / 2 + 1) / 3)
    assert result.coverage == pytest.approx(2 / 3)
    assert result.conversion_predictions == 0 and result.conversion_hit_rate is None


def test_conversion_hit_rate_and_value_captured() -> None:
    vocabulary = ItemTable.build(["p", "q", "r"], price=[10.0, 100.0, 1.0])
    train = _rows({"t1": ["p", "q"], "t2": ["p", "q"], "t3": ["p", "r"]}, items=vocabulary)
    test = _rows(
        {"x": ["r", "p", ("q", "add_to_cart"), ("r", "purchase")]}, start=10_000.0, items=vocabulary
    )
    result = evaluate(train, test, [("pop", MostPopular(), Objectives())], k=2).result("pop")
    # Three predictions; later conversions: {q, r}, {q, r}, {r}. Top 2 is always [p, q].
    assert result.conversion_predictions == 3
    assert result.conversion_hit_rate == pytest.approx(2 / 3)
    assert result.value_captured == pytest.approx(200.0 / 203.0)
    assert result.value_at_k == pytest.approx(200.0 / 3)


def test_vsknn_scores_as_session_rec_does() -> None:
    train = _rows({"S1": ["1", "2", "3"], "S2": ["2", "4"], "S3": ["5", "6"]})
    model = VSKNN().fit(train)
    items = model.items

    def scores(sequence: list[str]) -> dict[str, float]:
        at = items.index(sequence)
        query = Query(items=at, kinds=np.zeros(at.size, np.int64), ts=np.zeros(at.size))
        values = model._relevance(query)
        return {str(items.item_ids[i]): float(values[i]) for i in np.flatnonzero(values)}

    assert scores(["1", "2"]) == pytest.approx({"1": 0.625, "2": 1.125, "3": 0.625, "4": 0.5})
    assert scores(["2", "5"]) == pytest.approx(
        {"1": 0.03125, "2": 0.0625, "3": 0.03125, "4": 0.03125, "5": 0.5, "6": 0.5}
    )


def test_zero_scores_never_hit() -> None:
    vocabulary = ItemTable.build(["a", "b", "c", "d"])
    train = _rows({"t1": ["a", "b"], "t2": ["c", "d"]}, items=vocabulary)
    test = _rows({"x": ["a", "c"]}, start=5_000.0, items=vocabulary)
    result = evaluate(train, test, [("v", VSKNN(), Objectives())], k=20).result("v")
    # Only a and b score after a; c scores 0 and is not "in the list" though k > items.
    assert result.predictions == 1 and result.hit_rate == 0.0 and result.mrr == 0.0


def test_prepare_split_filters_and_splits_by_time() -> None:
    sessions = {f"s{i}": ["a", "b", "c"] for i in range(6)}
    sessions["rare"] = ["a", "z"]  # z has one event: dropped, then "rare" is too short
    sessions["single"] = ["b"]
    data = _rows(sessions)
    train, test, cut = prepare_split(data, cut=60.0 * 13)
    assert "z" not in {str(data.items.item_ids[i]) for i in np.concatenate([train.item, test.item])}
    assert {str(data.session_keys[s]) for s in train.session} == {"s0", "s1", "s2", "s3"}
    assert {str(data.session_keys[s]) for s in test.session} == {"s4", "s5"}
    assert len(test) + len(train) == 18
    assert cut == 60.0 * 13


def test_fixed_split_drops_unknown_items_and_short_sessions(tmp_path: Path) -> None:
    (tmp_path / "train.txt").write_text(
        "SessionId\tItemId\tTime\n1\t10\t1.0\n1\t11\t2.0\n2\t10\t3.0\n2\t12\t4.0\n"
    )
    (tmp_path / "test.txt").write_text(
        "SessionId\tItemId\tTime\n5\t10\t9.0\n5\t99\t9.5\n5\t11\t10.0\n6\t99\t11.0\n6\t12\t12.0\n"
    )
    train = read_split_file(tmp_path / "train.txt")
    test = read_split_file(tmp_path / "test.txt", items=None)
    train, test = prepare_fixed_split(train, test)
    assert [str(train.items.item_ids[i]) for i in test.item] == ["10", "11"]
    report = evaluate(train, test, [("pop", MostPopular(), Objectives())])
    assert report.result("pop").predictions == 1


def test_canonical_event_files_as_a_split(tmp_path: Path) -> None:
    events = session_events([["A", "B"], ["A", "B"], ["C", "D"]])
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(json.dumps(e) for e in events) + "\n")
    data = read_split_file(path)
    assert len(data) == 6 and data.n_sessions == 3


def test_evaluate_store_compares_baselines_and_the_ranker() -> None:
    sessions = [
        ["A", "B", ("B", "add_to_cart"), ("B", "purchase")],
        ["C", "D"],
        ["A", "B"],
        ["C", "D", "A"],
    ] * 8
    catalog = {"B": {"price": 20.0}, "D": {"price": 5.0}, "A": {"price": 1.0}, "C": {"price": 2.0}}
    with store_with(session_events(sessions, catalog=catalog)) as store:
        report = evaluate_store(store, objectives={"conversion": 1.0, "margin": 0.5}, k=2)
    names = [r.name for r in report.results]
    assert names == [
        "most popular",
        "views-only item-kNN",
        "V-SKNN",
        "session ranker",
        "session ranker (conversion 1, margin 0.5)",
    ]
    assert report.split.test_sessions > 0 and report.split.value_kind == "price"
    ours = report.result("session ranker")
    assert ours.hit_rate >= report.result("most popular").hit_rate
    assert report.as_dict()["results"][0]["hr@2"] == report.results[0].hit_rate
    json.dumps(report.as_dict())


def test_default_rankers_share_the_fitted_ranker() -> None:
    rows = default_rankers(objectives={"margin": 1.0})
    assert rows[-1][1] is rows[-2][1]
    assert isinstance(rows[-1][1], SessionRanker)
    assert len(default_rankers()) == 4


def test_precision_ndcg_and_per_user_split() -> None:
    assert precision_at_k(["a", "b", "c"], {"b", "z"}, k=2) == 0.5
    assert ndcg_at_k(["a", "b"], {"a"}, k=2) == 1.0
    assert ndcg_at_k(["b", "a"], {"a"}, k=2) == pytest.approx(1 / math.log2(3))
    assert ndcg_at_k(["x"], set(), k=2) == 0.0
    keys = ["u1-a", "u1-a", "u1-b", "u1-b", "u2-a", "u2-a"]
    data = Interactions.from_rows(
        keys,
        ["i1", "i2", "i3", "i4", "i1", "i2"],
        ["product_view"] * 6,
        [1, 2, 3, 4, 5, 6],
        visitors=["u1", "u1", "u1", "u1", "u2", "u2"],
    )
    train, test = per_user_split(data)
    assert {str(data.session_keys[s]) for s in test.session} == {"u1-b"}
    assert len(train) == 4


@pytest.mark.skipif(not YOOCHOOSE_TRAIN.exists(), reason="the shared YooChoose sample is absent")
def test_vsknn_reproduces_session_rec_on_yoochoose_100k() -> None:
    """engine-anchors.md 2.5: V-SKNN HR@20 .6807, MRR@20 .3692; most popular .0894/.0264."""
    train, test = prepare_fixed_split(
        read_session_file(YOOCHOOSE_TRAIN), read_session_file(YOOCHOOSE_TEST)
    )
    report = evaluate(
        train,
        test,
        [("pop", MostPopular(), Objectives()), ("vsknn", VSKNN(), Objectives())],
        k=20,
    )
    assert report.result("vsknn").predictions == 10_152
    assert report.result("vsknn").hit_rate == pytest.approx(0.6807, abs=0.01)
    assert report.result("vsknn").mrr == pytest.approx(0.3692, abs=0.01)
    assert report.result("pop").hit_rate == pytest.approx(0.0894, abs=0.001)
    assert report.result("pop").mrr == pytest.approx(0.0264, abs=0.001)
