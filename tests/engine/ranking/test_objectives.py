"""Objectives: weights from mappings and from NAME=WEIGHT texts, and the scores they give."""

from __future__ import annotations

import re

import numpy as np
import pytest

from target_personalize.engine import Objectives, RankerError
from target_personalize.engine.ranking.objectives import ItemFactors, _relative


@pytest.mark.parametrize(
    ("pairs", "expected"),
    [
        (["conversion=1"], Objectives(conversion=1.0)),
        (["conversion=1", "margin:0.5"], Objectives(conversion=1.0, margin=0.5)),
        ([" value = 2 "], Objectives(margin=2.0)),
        (["revenue:0"], Objectives()),
        (["revenue=2"], Objectives(revenue=2.0)),
        ([], Objectives()),
    ],
)
def test_pairs_give_objectives(pairs: list[str], expected: Objectives) -> None:
    assert Objectives.from_pairs(pairs) == expected


@pytest.mark.parametrize(
    ("pair", "message"),
    [
        ("conversion", "objective 'conversion' must be NAME=WEIGHT, e.g. conversion=1"),
        ("=1", "objective '=1' must be NAME=WEIGHT"),
        ("conversion=high", "weight 'high' of objective 'conversion' is not a number"),
        ("conversion:2", "objective 'conversion' is given twice"),
        ("clicks=1", "unknown objective 'clicks'"),
        ("margin=-1", "objective 'margin' needs a weight from 0 to 1e+06, got -1.0"),
        ("margin:nan", "objective 'margin' needs a weight from 0 to 1e+06, got nan"),
        ("margin:1e309", "objective 'margin' needs a weight from 0 to 1e+06, got inf"),
        ("margin:1e308", "objective 'margin' needs a weight from 0 to 1e+06, got 1e+308"),
        ("margin:-inf", "objective 'margin' needs a weight from 0 to 1e+06, got -inf"),
    ],
)
def test_bad_pairs_say_what_is_wrong(pair: str, message: str) -> None:
    with pytest.raises(RankerError, match="^" + re.escape(message)):
        Objectives.from_pairs(["conversion=1", pair])


def _factors(
    probability: list[float], margin: list[float], price: list[float] | None = None
) -> ItemFactors:
    """Factors with a base rate of 0.2 and median value 1 (so factors equal the inputs / 0.2)."""
    p = np.array(probability)
    value = np.array(margin)
    revenue = np.array(price if price is not None else margin)
    return ItemFactors(
        conversion=p,
        conversion_factor=p / 0.2,
        value=value,
        value_factor=value,
        revenue=revenue,
        revenue_factor=revenue,
        base_rate=0.2,
        category_rate=np.array([0.2]),
        value_middle=1.0,
        revenue_middle=1.0,
        engagement=np.full(p.size, np.nan),
        engagement_factor=np.ones(p.size),
        engagement_middle=1.0,
    )


def test_score_weighs_expected_values() -> None:
    factors = _factors([0.1, 0.4], [0.5, 2.0])
    relevance = np.array([1.0, 0.5])
    assert Objectives().score(relevance, factors) is relevance
    assert Objectives(conversion=1).score(relevance, factors).tolist() == [0.5, 1.0]
    # margin=1: relevance x P x margin (over the base rate).
    assert Objectives(margin=1).score(relevance, factors).tolist() == [0.25, 2.0]
    # conversion=1, margin=1: P counts twice.
    assert Objectives(conversion=1, margin=1).score(relevance, factors).tolist() == [0.125, 4.0]
    assert relevance.tolist() == [1.0, 0.5]  # untouched


def test_margin_dial_ranks_by_expected_margin_not_by_margin() -> None:
    # a: P .5, margin 2 -> expected margin 1.0; b: P .1, margin 8 -> 0.8.
    factors = _factors([0.5, 0.1], [2.0, 8.0], price=[10.0, 100.0])
    relevance = np.ones(2)
    margin = Objectives(margin=1).score(relevance, factors)
    assert margin[0] > margin[1]
    assert margin.tolist() == pytest.approx([1.0 / 0.2, 0.8 / 0.2])
    # Revenue weighs P x price: a 5.0, b 10.0.
    revenue = Objectives(revenue=1).score(relevance, factors)
    assert revenue[1] > revenue[0]
    assert revenue.tolist() == pytest.approx([5.0 / 0.2, 10.0 / 0.2])


def test_a_given_conversion_factor_replaces_the_rates() -> None:
    factors = _factors([0.5, 0.1], [1.0, 1.0])
    score = Objectives(conversion=1).score(np.ones(2), factors, np.array([0.5, 2.0]))
    assert score.tolist() == [0.5, 2.0]


def test_values_are_relative_to_the_median_with_a_floor() -> None:
    factor, middle = _relative(np.array([0.0, 10.0, 20.0, np.nan, 30.0]))
    assert middle == 20.0
    # zero keeps 1% of the median, unknown counts as the median.
    assert factor.tolist() == pytest.approx([0.01, 0.5, 1.0, 1.0, 1.5])


def test_label_names_the_dials() -> None:
    assert Objectives().label() == "relevance"
    assert Objectives(conversion=1, revenue=0.5).label() == "conversion 1, revenue 0.5"
