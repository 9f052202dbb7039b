"""Experiment definitions: the command-line form, its errors, and the stored form."""

from __future__ import annotations

import re

import pytest

from target_personalize.engine import Objectives
from target_personalize.engine.experiments import (
    Experiment,
    ExperimentError,
    Variant,
    parse_traffic,
)


def test_the_issue_example_parses() -> None:
    experiment = Experiment.from_cli(
        "checkout-2024",
        ["control=popularity", "engine=objectives:conversion=1,margin=0.5"],
        "50,50",
        conversion="purchase",
    )
    assert experiment.variants == (
        Variant("control", "popularity"),
        Variant("engine", "engine", Objectives(conversion=1.0, margin=0.5)),
    )
    assert experiment.weights == (0.5, 0.5)
    assert experiment.coverage == 1.0
    assert experiment.control == "control"
    assert experiment.seed == "checkout-2024"
    assert experiment.variant_ids == ("control", "engine")


@pytest.mark.parametrize(
    ("spec", "ranker", "objectives"),
    [
        ("popularity", "popularity", None),
        ("views_only", "views_only", None),
        ("none", "none", None),
        ("engine", "engine", None),
        ("objectives:conversion=1", "engine", Objectives(conversion=1.0)),
        ("objectives: margin = 2 , conversion=0", "engine", Objectives(margin=2.0)),
        ("objectives:value=0.25", "engine", Objectives(margin=0.25)),
    ],
)
def test_every_variant_kind_parses(spec: str, ranker: str, objectives: Objectives | None) -> None:
    variant = Variant.parse(f"arm-1={spec}")
    assert (variant.variant_id, variant.ranker, variant.objectives) == ("arm-1", ranker, objectives)
    assert Variant.parse(f"arm-1={variant.spec}") == variant


def test_traffic_below_100_percent_is_coverage() -> None:
    weights, coverage = parse_traffic("10,30", ["a", "b"])
    assert weights == pytest.approx((0.25, 0.75))
    assert coverage == pytest.approx(0.4)
    assert parse_traffic("33.3,33.3,33.4", ["a", "b", "c"])[1] == pytest.approx(1.0)


def test_without_traffic_the_split_is_even_and_everyone_is_in() -> None:
    experiment = Experiment.from_cli("e", ["a=none", "b=engine", "c=popularity"], control="b")
    assert experiment.weights == pytest.approx((1 / 3,) * 3)
    assert experiment.coverage == 1.0
    assert experiment.control == "b"


@pytest.mark.parametrize(
    ("variants", "traffic", "message"),
    [
        (["control"], None, "variant 'control': write ID=RANKER"),
        (["=popularity"], None, "variant '=popularity': write ID=RANKER"),
        (["control="], None, "variant 'control=': write ID=RANKER"),
        (["control=popular", "b=engine"], None, "unknown ranker 'popular'"),
        (["bad id=none", "b=engine"], None, "variant 'bad id=none': variant id 'bad id'"),
        (["a=none", "b=objectives:conversion=x"], None, "weight 'x' of objective 'conversion'"),
        (["a=none", "b=objectives:conversion"], None, "objective 'conversion' must be NAME=WEIGHT"),
        (["a=none", "b=objectives:speed=1"], None, "unknown objective 'speed'"),
        (
            ["a=none", "b=objectives:margin=-1"],
            None,
            "objective 'margin' needs a weight from 0 to 1e+06",
        ),
        (["a=none", "b=objectives:margin=1,margin=2"], None, "objective 'margin' is given twice"),
        (["a=none"], None, "needs at least two variants, got 1"),
        (["a=none", "a=engine"], None, "variant id(s) given twice: a"),
        (["a=none", "b=engine"], "50", "traffic '50': 1 share(s) for 2 variants (a, b)"),
        (["a=none", "b=engine"], "50,abc", "share 'abc' of variant 'b' is not a number"),
        (["a=none", "b=engine"], "50,0", "share '0' of variant 'b' must be above 0"),
        (["a=none", "b=engine"], "50,nan", "share 'nan' of variant 'b' must be above 0"),
        (["a=none", "b=engine"], "60,50", "shares add up to 110, more than 100 percent"),
    ],
)
def test_bad_cli_forms_name_the_part_at_fault(
    variants: list[str], traffic: str | None, message: str
) -> None:
    with pytest.raises(ExperimentError, match=re.escape(message)):
        Experiment.from_cli("exp", variants, traffic)


def test_unknown_control_conversion_and_ids_are_refused() -> None:
    with pytest.raises(ExperimentError, match="control 'c' is not one of its variants"):
        Experiment.from_cli("exp", ["a=none", "b=engine"], control="c")
    with pytest.raises(ExperimentError, match="conversion event type 'add to cart'"):
        Experiment.from_cli("exp", ["a=none", "b=engine"], conversion="add to cart")
    with pytest.raises(ExperimentError, match="experiment id ''"):
        Experiment.from_cli("", ["a=none", "b=engine"])
    with pytest.raises(ExperimentError, match="objective weights apply to the engine only"):
        Variant("a", "popularity", Objectives(conversion=1))


def test_the_stored_form_round_trips() -> None:
    experiment = Experiment.from_cli(
        "exp",
        ["control=none", "engine=objectives:conversion=1,margin=0.123456789"],
        "5,15",
        conversion="signup",
        control="engine",
    )
    again = Experiment.from_dict(experiment.as_dict())
    assert again == experiment
    assert again.coverage == pytest.approx(0.2)
    assert experiment.as_dict()["variants"][1]["spec"] == (
        "objectives:conversion=1,margin=0.123456789"
    )
    with pytest.raises(ExperimentError, match="missing or invalid field 'seed'"):
        Experiment.from_dict({k: v for k, v in experiment.as_dict().items() if k != "seed"})
