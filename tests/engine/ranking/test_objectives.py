"""Objectives: weights from mappings and from NAME=WEIGHT texts, and the scores they give."""

from __future__ import annotations

import numpy as np
import pytest

from target_personalize.engine import Objectives, RankerError
from target_personalize.engine.ranking.objectives import ItemFactors


@pytest.mark.parametrize(
    ("pairs", "expected"),
    [
        (["conversion=1"], Objectives(conversion=1.0)),
        (["conversion=1", "margin:0.5"], Objectives(conversion=1.0, margin=0.5)),
        ([" value = 2 "], Objectives(margin=2.0)),
        (["revenue:0"], Objectives()),
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
        ("margin=-1", "objective 'margin' needs a weight >= 0, got -1.0"),
        ("margin:nan", "objective 'margin' needs a weight >= 0, got nan"),
    ],
)
def test_bad_pairs_say_what_is_wrong(pair: str, message: str) -> None:
    with pytest.raises(RankerError, match="^" + message.replace("(", r"\(")):
        Objectives.from_pairs(["conversion=1", pair])


def test_score_raises_the_factors_to_the_weights() -> None:
    factors = ItemFactors(
        conversion=np.array([0.1, 0.4]),
        conversion_factor=np.array([0.5, 2.0]),
        value=np.array([10.0, 40.0]),
        value_factor=np.array([0.5, 2.0]),
        base_rate=0.2,
        category_rate=np.array([0.2]),
        value_middle=20.0,
    )
    relevance = np.array([1.0, 0.5])
    assert Objectives().score(relevance, factors) is relevance
    assert Objectives(conversion=1).score(relevance, factors).tolist() == [0.5, 1.0]
    assert Objectives(conversion=1, margin=2).score(relevance, factors).tolist() == [0.125, 4.0]
    assert relevance.tolist() == [1.0, 0.5]  # untouched
