"""The dial sweep: grids, bootstrap intervals, the frontier, and agreement with evaluate."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from target_personalize.engine import (
    Interactions,
    ItemTable,
    MostPopular,
    Objectives,
    RankerError,
    SessionRanker,
    evaluate,
)
from target_personalize.engine.evaluation.tradeoff import (
    DialPoint,
    Interval,
    _mark_frontier,
    _ratio_interval,
    objective_grid,
    tradeoff,
)


def test_grid_is_every_combination_of_the_ranges() -> None:
    grid = objective_grid(["margin=0..2", "conversion=1"], steps=3)
    assert grid == [
        Objectives(margin=0.0, conversion=1.0),
        Objectives(margin=1.0, conversion=1.0),
        Objectives(margin=2.0, conversion=1.0),
    ]
    assert len(objective_grid([], steps=3)) == 9
    assert objective_grid(["revenue=.5..1.5"], steps=2) == [
        Objectives(revenue=0.5),
        Objectives(revenue=1.5),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("margin", "must be NAME=LOW..HIGH"),
        ("margin=2..1", "goes down"),
        ("clicks=0..1", "unknown objective 'clicks'"),
    ],
)
def test_bad_ranges_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(RankerError, match=message):
        objective_grid([text])


def test_ratio_interval_is_the_micro_average_with_a_bootstrap_around_it() -> None:
    rng = np.random.default_rng(0)
    top = np.array([1.0, 0.0, 2.0, 1.0, 0.0, 1.0] * 10)
    bottom = np.array([2.0, 1.0, 2.0, 1.0, 1.0, 3.0] * 10)
    interval = _ratio_interval(top, bottom, 0.9, 500, rng)
    assert interval.value == pytest.approx(5 / 10)
    assert interval.low < 0.5 < interval.high
    # Every session alike: nothing to resample, a zero-width interval.
    same = _ratio_interval(np.ones(5), np.full(5, 2.0), 0.9, 500, rng)
    assert (same.value, same.low, same.high) == (0.5, 0.5, 0.5)
    empty = _ratio_interval(np.zeros(3), np.zeros(3), 0.9, 500, rng)
    assert math.isnan(empty.value)


def _point(conversion: float, value: float, margin: float) -> DialPoint:
    def at(x: float) -> Interval:
        return Interval(x, x, x)

    return DialPoint(Objectives(margin=margin), at(0.5), at(conversion), at(value), at(1.0))


def test_frontier_keeps_the_points_nothing_beats_on_both() -> None:
    points = [
        _point(0.9, 0.80, 0.0),  # frontier: best conversions
        _point(0.8, 0.90, 1.0),  # frontier: best value
        _point(0.8, 0.85, 0.5),  # dominated by the margin-1 point
        _point(0.85, 0.85, 2.0),  # frontier: between the two
    ]
    assert [p.on_frontier for p in _mark_frontier(points)] == [True, True, False, True]


def _rows(sessions: dict[str, list[object]], start: float, items: ItemTable) -> Interactions:
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


def test_tradeoff_agrees_with_evaluate_and_reports_every_setting() -> None:
    items = ItemTable.build(["a", "b", "c", "d"], price=[1.0, 50.0, 5.0, 2.0])
    sessions: dict[str, list[object]] = {}
    for i in range(30):
        sessions[f"t{i}"] = (
            ["a", "b", ("b", "purchase")] if i % 3 == 0 else ["a", "c", ("c", "purchase")]
        )
    train = _rows(sessions, 0.0, items)
    # Test visitors view a, then buy b (price 50).
    test = _rows({f"x{i}": ["a", ("b", "purchase")] for i in range(6)}, 100_000.0, items)
    settings = [Objectives(), Objectives(margin=1.0)]
    report = tradeoff(SessionRanker(random_state=0), train, test, settings, k=1, resamples=200)
    assert [p.objectives for p in report.points] == settings
    reference = evaluate(
        train, test, [("ranker", SessionRanker(random_state=0), Objectives())], k=1
    ).result("ranker")
    relevance = report.points[0]
    assert report.predictions == reference.predictions == 6
    assert relevance.hit_rate.value == pytest.approx(reference.hit_rate)
    assert relevance.conversion_hit_rate.value == pytest.approx(reference.conversion_hit_rate)
    assert relevance.realized_value.value == pytest.approx(reference.value_captured)
    # After a, relevance shows a itself (a reminder); the margin dial shows b, P 0.75 x 50.
    margin = report.points[1]
    assert relevance.conversion_hit_rate.value == 0.0
    assert margin.conversion_hit_rate.value == 1.0 and margin.realized_value.value == 1.0
    assert margin.expected_value.value > relevance.expected_value.value
    assert [p.on_frontier for p in report.points] == [False, True]
    assert report.too_small and report.value_kind == "price"
    json.dumps(report.as_dict())


def test_tradeoff_runs_any_ranker() -> None:
    items = ItemTable.build(["a", "b"])
    train = _rows({"t1": ["a", "b"], "t2": ["a", "b"]}, 0.0, items)
    test = _rows({"x": ["a", "b"]}, 10_000.0, items)
    report = tradeoff(MostPopular(), train, test, [Objectives()], k=1, resamples=100)
    assert report.points[0].on_frontier and report.sessions == 1
