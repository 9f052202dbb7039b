"""Assignment follows GrowthBook's hash version 2: its published SDK cases and the FNV-1a spec."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from scipy import stats

from target_personalize.engine.experiments import (
    Experiment,
    Variant,
    assign,
    bucket,
    bucket_ranges,
    choose_variation,
    fnv1a32,
)

CASES = json.loads(
    (Path(__file__).parents[2] / "fixtures" / "growthbook" / "cases.json").read_text()
)


def _ranges(case: dict) -> list[tuple[float, float]]:
    if case.get("ranges"):
        return [tuple(r) for r in case["ranges"]]
    n = case["n_variations"]
    return bucket_ranges(case["weights"] or [1 / n] * n, case["coverage"])


@pytest.mark.parametrize(("seed", "value", "version", "expected"), CASES["hash"])
def test_growthbook_hash_v2_cases(seed: str, value: str, version: int, expected: float) -> None:
    assert version == 2
    assert bucket(seed, value) == expected


@pytest.mark.parametrize(
    ("name", "args", "expected"),
    [
        c
        for c in CASES["getBucketRange"]
        if c[0]
        in {
            "normal 50/50",
            "reduced coverage",
            "zero coverage",
            "4 variations",
            "uneven weights",
            "uneven weights, 3 variations",
            "uneven weights, reduced coverage, 3 variations",
            "weights sum almost equals 1",
        }
    ],
)
def test_growthbook_bucket_range_cases(name: str, args: list, expected: list) -> None:
    n, coverage, weights = args
    ranges = bucket_ranges(weights or [1 / n] * n, coverage)
    assert ranges == [pytest.approx(tuple(r), abs=1e-12) for r in expected], name


@pytest.mark.parametrize(("name", "value", "ranges", "expected"), CASES["chooseVariation"])
def test_growthbook_choose_variation_cases(
    name: str, value: float, ranges: list, expected: int
) -> None:
    index = choose_variation(value, [tuple(r) for r in ranges])
    assert (-1 if index is None else index) == expected, name


@pytest.mark.parametrize(
    "case", CASES["run_hash_v2"] + CASES["feature_buckets"], ids=lambda c: c["name"]
)
def test_growthbook_experiment_cases(case: dict) -> None:
    if "bucket" in case:
        assert bucket(case["seed"], case["visitor_id"]) == case["bucket"]
    index = choose_variation(bucket(case["seed"], case["visitor_id"]), _ranges(case))
    assert index == case["variation"]


def test_fnv1a_spec_vectors() -> None:
    # The FNV reference test vectors (draft-eastlake-fnv): FNV-1a 32 of "", "a", "foobar".
    assert [fnv1a32(s) for s in ("", "a", "foobar")] == [0x811C9DC5, 0xE40C292C, 0xBF9CF968]


@pytest.mark.parametrize(
    ("seed", "visitor_id", "fnv", "expected"),
    [
        # Computed by GrowthBook's JavaScript hashFnv32a and hash(seed, value, 2)
        # (packages/sdk-js/src/util.ts) under Node: non-ASCII ids hash by UTF-16 code units.
        ("exp", "\N{GRINNING FACE}", 727017373, 0.7506),
        ("exp", "\N{LATIN SMALL LETTER E WITH ACUTE}-visitor", 2384795480, 0.5191),
        ("экспериментальный", "visitor-\N{GREEK CAPITAL LETTER OMEGA}", 310535617, 0.2984),
        ("checkout-2024", "0f8fad5b-d9cb-469f-a165-70867728950e", 45222084, 0.2352),
    ],
)
def test_non_ascii_ids_hash_as_in_the_browser(
    seed: str, visitor_id: str, fnv: int, expected: float
) -> None:
    assert fnv1a32(seed + visitor_id) == fnv
    assert bucket(seed, visitor_id) == expected


def _experiment(weights: tuple[float, ...] = (), coverage: float = 1.0) -> Experiment:
    variants = (Variant("control", "popularity"), Variant("engine"))
    return Experiment("checkout-2024", variants, weights, coverage)


def test_assignment_is_sticky_and_follows_the_bucket() -> None:
    experiment = _experiment((0.3, 0.7))
    for visitor in ("a", "b", "0f8fad5b-d9cb-469f-a165-70867728950e", "42"):
        first = assign(experiment, visitor)
        assert first is not None
        assert assign(experiment, visitor) == first
        expected = "control" if bucket("checkout-2024", visitor) < 0.3 else "engine"
        assert first.variant_id == expected


def test_assignment_splits_visitors_as_weighted() -> None:
    experiment = _experiment((0.3, 0.7))
    counts = {"control": 0, "engine": 0}
    for i in range(20_000):
        variant = assign(experiment, f"visitor-{i}")
        assert variant is not None
        counts[variant.variant_id] += 1
    p = stats.chisquare([counts["control"], counts["engine"]], [6000, 14000]).pvalue
    assert p > 0.001, counts


def test_visitors_outside_the_coverage_and_empty_ids_are_not_assigned() -> None:
    experiment = _experiment(coverage=0.2)
    outcomes = [assign(experiment, f"visitor-{i}") for i in range(5_000)]
    inside = [o for o in outcomes if o is not None]
    assert 0.17 < len(inside) / len(outcomes) < 0.23
    for i, outcome in enumerate(outcomes):
        value = bucket("checkout-2024", f"visitor-{i}")
        assert (outcome is not None) == (value < 0.1 or 0.5 <= value < 0.6)
    assert assign(experiment, "") is None


def test_the_seed_defaults_to_the_experiment_id_and_can_be_set() -> None:
    variants = (Variant("a"), Variant("b"))
    default = Experiment("exp-1", variants)
    seeded = Experiment("exp-1", variants, seed="other")
    assert default.seed == "exp-1"
    ids = [f"v{i}" for i in range(200)]
    assert [assign(default, i) for i in ids] != [assign(seeded, i) for i in ids]
    for i in ids:
        variant = assign(seeded, i)
        assert variant is not None
        assert variant.variant_id == ("a" if bucket("other", i) < 0.5 else "b")
