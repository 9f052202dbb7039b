"""bench/shop.py's verdicts against issue 13's goals, on made-up results with known answers."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import pytest

from tests.support.bench import load_bench


@pytest.fixture(scope="module")
def shop() -> ModuleType:
    return load_bench("shop")


def result(seed: int, rows: dict[str, tuple[float, float]]) -> dict[str, Any]:
    """A seed's rows from (conversions, margin) per list; ratios to ``relevance``."""
    base = rows["relevance"]
    return {
        "seed": seed,
        "rows": {
            label: {
                "conversions_per_list": conv,
                "margin_per_list": margin,
                "conversion_ratio": conv / base[0],
                "margin_ratio": margin / base[1],
            }
            for label, (conv, margin) in rows.items()
        },
    }


def test_the_mean_passes_while_a_seed_below_the_goal_is_shown_failing(shop: ModuleType) -> None:
    results = [
        result(
            7,
            {
                "relevance": (1.0, 10.0),
                "conversion=1": (1.5, 12.0),
                "margin=3": (1.3, 19.9),  # 1.99x margin: this seed misses
                "oracle: conversions": (2.0, 13.0),
                "oracle: expected margin": (1.6, 25.0),
            },
        ),
        result(
            11,
            {
                "relevance": (1.0, 10.0),
                "conversion=1": (1.2, 12.0),  # 1.2x conversions: this seed misses
                "margin=3": (1.0, 22.1),  # 2.21x margin, 100% of the conversions
                "oracle: conversions": (1.6, 13.0),
                "oracle: expected margin": (1.6, 26.0),
            },
        ),
    ]
    title, margin, conversion, frontier = shop.goals(results, "margin=3", "conversion=1")
    assert title == "goals (issue 13), mean over 2 seeds [each seed]:"
    assert margin.startswith("PASS  margin dial margin=3: margin 2.100x")
    assert "[7: 1.990 FAIL, 11: 2.210 PASS]" in margin
    assert "conversions 1.150x (goal >= 0.95x) [7: 1.300, 11: 1.000]" in margin
    assert conversion.startswith("PASS  conversion dial conversion=1: conversions 1.350x")
    assert "[7: 1.500 PASS, 11: 1.200 FAIL]" in conversion
    # Best dial over each oracle: margin 19.9/25 and 22.1/26 (mean 82%); conversions 1.5/2
    # and 1.2/1.6 (conversion=1; mean 75%).
    assert "82% of the margin oracle's expected margin (margin=3) [7: 80%, 11: 85%]" in frontier
    assert "75% of the conversion oracle's conversions (conversion=1) [7: 75%, 11: 75%]" in (
        frontier
    )


def test_losing_conversions_fails_the_margin_goal(shop: ModuleType) -> None:
    rows = {
        "relevance": (1.0, 10.0),
        "conversion=1": (1.29, 11.0),
        "margin=3": (0.94, 30.0),  # 3x margin for 94% of the conversions
        "oracle: conversions": (2.0, 13.0),
        "oracle: expected margin": (1.6, 40.0),
    }
    _, margin, conversion, _ = shop.goals([result(13, rows)], "margin=3", "conversion=1")
    assert margin.startswith("FAIL  margin dial")
    assert "[13: 3.000 FAIL]" in margin
    assert conversion.startswith("FAIL  conversion dial")
