"""The readout: per-variant figures, lift per metric, SRM, exclusions, and its input checks."""

from __future__ import annotations

import json
import re

import numpy as np
import pyarrow as pa
import pytest

from target_personalize.engine.experiments import (
    ExperimentError,
    VisitorData,
    build_readout,
    cuped_lift,
    mean_statistic,
    ratio_statistic,
    relative_lift,
)
from target_personalize.engine.experiments.moments import arm_moments

IDS = ("control", "engine")


def _small() -> VisitorData:
    # control: 4 visitors, 1 converted (2 orders, revenue 30); engine: 4 visitors, 2 converted.
    return VisitorData(
        IDS,
        np.array([0, 0, 0, 0, 1, 1, 1, 1]),
        conversion_events=np.array([2, 0, 0, 0, 1, 1, 0, 0]),
        revenue=np.array([30.0, 0, 0, 0, 10, 25, 0, 0]),
        margin=np.array([6.0, 0, 0, 0, 2, 5, 0, 0]),
        clicks=np.array([1, 0, 2, 0, 1, 1, 1, 0]),
        impressions=np.array([2, 1, 3, 2, 2, 2, 2, 1]),
        multiple_variants=3,
    )


def test_the_figures_of_each_variant() -> None:
    readout = build_readout(_small(), experiment_id="exp", conversion="purchase")
    control, engine = readout.variants
    assert (control.visitors, control.conversions, control.conversion_events) == (4, 1, 2)
    assert (control.conversion_rate, control.revenue, control.revenue_per_visitor) == (
        0.25,
        30,
        7.5,
    )
    assert (control.aov, control.margin, control.margin_per_visitor) == (15, 6, 1.5)
    assert (control.clicks, control.impressions, control.ctr) == (3, 8, 3 / 8)
    assert (engine.conversions, engine.conversion_rate, engine.aov, engine.ctr) == (
        2,
        0.5,
        17.5,
        3 / 7,
    )
    assert readout.multiple_variants == 3


def test_the_json_shape_has_the_issue_s_fields() -> None:
    out = build_readout(
        _small(), experiment_id="exp", conversion="purchase", min_sample=1
    ).as_dict()
    json.dumps(out, allow_nan=False)
    assert {"experiment_id", "conversion", "control", "variants", "lift", "srm", "excluded"} <= set(
        out
    )
    assert (out["experiment_id"], out["conversion"], out["control"]) == (
        "exp",
        "purchase",
        "control",
    )
    assert {"variant_id", "visitors", "conversions", "conversion_rate", "revenue",
            "revenue_per_visitor"} <= set(out["variants"][0])  # fmt: skip
    assert [(x["variant_id"], x["metric"]) for x in out["lift"]] == [
        ("engine", m)
        for m in ("conversion_rate", "revenue_per_visitor", "margin_per_visitor", "aov", "ctr")
    ]
    assert {"variant_id", "metric", "estimate", "ci_low", "ci_high", "p_value"} <= set(
        out["lift"][0]
    )
    assert set(out["srm"]) >= {"p_value", "flagged"}
    assert out["excluded"] == {"multiple_variants": 3}


def test_each_lift_is_the_inference_on_that_metric() -> None:
    data = _small()
    readout = build_readout(data, experiment_id="exp", min_sample=1)
    lifts = {x.metric: x for x in readout.lift}
    converted = (data.conversion_events > 0).astype(float)
    for metric, y, x, statistic in [
        ("conversion_rate", converted, None, mean_statistic),
        ("revenue_per_visitor", data.revenue, None, mean_statistic),
        ("aov", data.revenue, data.conversion_events, ratio_statistic),
        ("ctr", data.clicks, data.impressions, ratio_statistic),
    ]:
        a, b = arm_moments(data.variant, 2, y, x)
        expected = relative_lift(statistic(a), statistic(b))
        assert lifts[metric].plain == expected
    assert lifts["conversion_rate"].plain.estimate == pytest.approx(1.0)  # 0.25 -> 0.5
    assert lifts["aov"].plain.estimate == pytest.approx(17.5 / 15 - 1)


def _random(n: int, arms: int = 2, seed: int = 3, **extra: bool) -> VisitorData:
    rng = np.random.default_rng(seed)
    events = rng.poisson(0.2, n).astype(float)
    columns = {
        "pre_conversion_events": rng.poisson(0.2, n).astype(float),
        "pre_revenue": rng.gamma(0.3, 30, n),
    }
    return VisitorData(
        tuple(f"v{i}" for i in range(arms)),
        rng.integers(0, arms, n),
        events,
        events * rng.gamma(2, 15, n),
        **{k: v for k, v in columns.items() if extra.get(k)},
    )


def test_cuped_is_reported_beside_the_plain_estimate_when_pre_exposure_data_exist() -> None:
    data = _random(5_000, pre_conversion_events=True, pre_revenue=True)
    readout = build_readout(data, experiment_id="exp", sequential=True, min_sample=1)
    lifts = {x.metric: x for x in readout.lift}
    converted = (data.conversion_events > 0).astype(float)
    pre_converted = (data.pre_conversion_events > 0).astype(float)
    a, b = arm_moments(data.variant, 2, converted, pre_converted)
    expected, theta = cuped_lift(a, b, n_tune=5000.0)
    assert lifts["conversion_rate"].cuped == expected
    assert lifts["conversion_rate"].theta == theta
    assert lifts["conversion_rate"].plain == relative_lift(
        mean_statistic(a), mean_statistic(b), n_tune=5000.0
    )
    assert lifts["revenue_per_visitor"].cuped is not None
    assert lifts["aov"].cuped is None
    plain = build_readout(_random(5_000), experiment_id="exp")
    assert all(x.cuped is None and x.theta is None for x in plain.lift)
    # Pre-exposure conversions are covariates only: they never count as conversions.
    assert [v.conversions for v in readout.variants] == [v.conversions for v in plain.variants]


def test_intervals_wait_for_the_minimum_sample() -> None:
    data = _random(4_000)  # about 330 converted visitors per arm
    converted = [v.conversions for v in build_readout(data, experiment_id="e").variants]
    assert min(converted) > 150
    assert all(x.plain.p_value is not None for x in build_readout(data, experiment_id="e").lift)
    waiting = build_readout(data, experiment_id="e", min_sample=max(converted) + 1)
    for lift in waiting.lift:
        assert lift.plain.estimate is not None and lift.plain.difference is not None
        assert lift.plain.ci_low is None and lift.plain.p_value is None
        assert lift.plain.reason is not None and lift.plain.reason.startswith(
            f"waiting for {max(converted) + 1} "
        )
    rate = waiting.lift[0]
    assert rate.metric == "conversion_rate"
    assert rate.plain.reason == (
        f"waiting for {max(converted) + 1} converting visitors in an arm "
        f"(most so far: {max(converted)})"
    )


def test_every_variant_is_compared_with_the_chosen_control() -> None:
    readout = build_readout(_random(3_000, arms=3), experiment_id="exp", control="v1")
    assert readout.control == "v1"
    assert sorted({(x.variant_id) for x in readout.lift}) == ["v0", "v2"]
    assert {x.metric for x in readout.lift} == {"conversion_rate", "revenue_per_visitor", "aov"}


def test_srm_uses_the_configured_weights_and_counts_empty_arms() -> None:
    data = _random(2_000, arms=2)
    fair = build_readout(data, experiment_id="e", weights={"v0": 0.5, "v1": 0.5})
    skewed = build_readout(data, experiment_id="e", weights={"v0": 0.9, "v1": 0.1})
    assert not fair.srm.flagged and skewed.srm.flagged
    assert fair.srm.observed == tuple(v.visitors for v in fair.variants)
    empty = VisitorData(("a", "b"), np.zeros(50, dtype=np.intp), np.zeros(50), np.zeros(50))
    readout = build_readout(empty, experiment_id="e")
    assert readout.srm.flagged
    assert readout.variants[1].visitors == 0 and readout.variants[1].conversion_rate is None
    assert readout.lift[0].plain.reason == "fewer than 2 visitors in an arm"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"control": "v9"}, "control 'v9' is not one of the variants (v0, v1)"),
        ({"weights": {"v0": 1.0}}, "weights are given for ['v0'] but the variants are"),
        ({"alpha": 1.5}, "alpha must be in (0, 1)"),
    ],
)
def test_bad_readout_arguments(kwargs: dict, message: str) -> None:
    with pytest.raises(ExperimentError, match=re.escape(message)):
        build_readout(_random(100), experiment_id="e", **kwargs)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"revenue": np.array([1.0, np.nan, 2.0])}, "column 'revenue': 1 value(s) missing or infinite, the first at row 1"),
        ({"conversion_events": np.array([0, -1, 0])}, "column 'conversion_events': 1 value(s) missing, infinite or negative, the first at row 1"),
        ({"revenue": np.array([1.0, 2.0])}, "column 'revenue': 2 values for 3 visitors"),
        ({"variant": np.array([0, 2, 1])}, "column 'variant_id': arm indexes must be in [0, 2)"),
        ({"clicks": np.array([1, 0, 0])}, "column 'clicks' is given without column 'impressions'"),
        ({"pre_margin": np.array([1, 0, 0])}, "column 'pre_margin' is given without column 'margin'"),
        ({"margin": np.array(["a", "b", "c"])}, "column 'margin': not numbers"),
        ({"multiple_variants": -1}, "multiple_variants must be a count >= 0"),
        ({"variant_ids": ("a", "a")}, "variant ids must be distinct"),
    ],
)  # fmt: skip
def test_bad_visitor_columns_are_refused_with_the_column_and_row(
    change: dict, message: str
) -> None:
    columns = {
        "variant_ids": ("a", "b"),
        "variant": np.array([0, 1, 1]),
        "conversion_events": np.array([0, 1, 0]),
        "revenue": np.array([0.0, 9.5, 0.0]),
    }
    with pytest.raises(ExperimentError, match=re.escape(message)):
        VisitorData(**{**columns, **change})


def test_from_arrow_reads_strings_and_dictionaries_in_the_experiment_order() -> None:
    table = pa.table({
        "variant_id": ["engine", "control", "engine", "engine"],
        "conversion_events": pa.array([1, 0, 0, 2], pa.int64()),
        "revenue": [10.0, 0.0, 0.0, 35.5],
        "pre_revenue": [0.0, 1.0, 0.0, 0.0],
        "ignored": ["x", "y", "z", "w"],
    })  # fmt: skip
    for t in (table, table.set_column(0, "variant_id", table["variant_id"].dictionary_encode())):
        data = VisitorData.from_arrow(
            t, variant_ids=["control", "engine", "popular"], multiple_variants=2
        )
        assert data.variant_ids == ("control", "engine", "popular")
        assert data.variant.tolist() == [1, 0, 1, 1]
        assert data.revenue.tolist() == [10.0, 0.0, 0.0, 35.5]
        assert data.pre_revenue is not None and data.margin is None
        assert data.multiple_variants == 2
    assert VisitorData.from_arrow(table).variant_ids == ("engine", "control")


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (pa.table({"variant_id": ["a"], "revenue": [1.0]}), "missing column(s) conversion_events"),
        (pa.table({"variant_id": ["a", None], "conversion_events": [0, 0], "revenue": [0.0, 0.0]}), "column 'variant_id': 1 null value(s)"),
        (pa.table({"variant_id": ["a", "zz"], "conversion_events": [0, 0], "revenue": [0.0, 0.0]}), "'zz' not among the experiment's variants (a, b)"),
        (pa.table({"variant_id": ["a", "b"], "conversion_events": [0, None], "revenue": [0.0, 0.0]}), "column 'conversion_events': 1 value(s) missing"),
    ],
)  # fmt: skip
def test_from_arrow_refuses_bad_tables(table: pa.Table, message: str) -> None:
    with pytest.raises(ExperimentError, match=re.escape(message)):
        VisitorData.from_arrow(table, variant_ids=["a", "b"])
