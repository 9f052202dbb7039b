"""Known answers for the statistics: by hand, from GrowthBook's gbstats, and from scipy/statsmodels."""

from __future__ import annotations

import math

import numpy as np
import pytest
import statsmodels.api as sm
from scipy import stats
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

from target_personalize.engine.experiments import (
    ArmStatistic,
    Moments,
    arm_moments,
    cuped_lift,
    mean_statistic,
    ratio_statistic,
    relative_lift,
    sample_ratio_mismatch,
    sequential_halfwidth,
    welch_dof,
)


def _two_arms(y_a, y_b, x_a=None, x_b=None) -> list[Moments]:
    arm = np.r_[np.zeros(len(y_a), dtype=np.intp), np.ones(len(y_b), dtype=np.intp)]
    x = None if x_a is None else np.r_[x_a, x_b].astype(float)
    return arm_moments(arm, 2, np.r_[y_a, y_b].astype(float), x)


def test_conversion_rate_lift_by_hand() -> None:
    # Control: 2 of 10 visitors convert; variant: 4 of 10. Sample variances (n - 1):
    # control 0.2 * 0.8 * 10/9 = 8/45, variant 0.4 * 0.6 * 10/9 = 4/15.
    control, variant = _two_arms([1, 1] + [0] * 8, [1] * 4 + [0] * 6)
    a, b = mean_statistic(control), mean_statistic(variant)
    assert (a.mean, a.variance, b.mean, b.variance) == pytest.approx((0.2, 8 / 45, 0.4, 4 / 15))
    # Delta method: v_b / (n_b m_a^2) + v_a m_b^2 / (n_a m_a^4) = 2/3 + 16/9 = 22/9.
    # Welch: (4/225 + 6/225)^2 / ((4/225)^2 / 9 + (6/225)^2 / 9) = 900/52.
    assert welch_dof(a, b) == pytest.approx(900 / 52)
    lift = relative_lift(a, b)
    se = math.sqrt(22 / 9)
    t = stats.t.ppf(0.975, 900 / 52)
    assert lift.estimate == pytest.approx(1.0)
    assert lift.difference == pytest.approx(0.2)
    assert lift.standard_error == pytest.approx(se)
    assert (lift.ci_low, lift.ci_high) == pytest.approx((1 - t * se, 1 + t * se))
    assert lift.p_value == pytest.approx(2 * stats.t.sf(1 / se, 900 / 52))


# Sums of two arms and what GrowthBook's stats engine answers for them: computed with
# packages/stats/gbstats of growthbook/growthbook at 8f1db4456915a8e7b7faf23d5632ca7219d2f469
# (SampleMeanStatistic, RegressionAdjustedStatistic, RatioStatistic; TwoSidedTTest and
# SequentialTwoSidedTTest with their default configs: alpha 0.05, N_tune 5000).
CONTROL = Moments(10_000, 1200.0, 9000.0, 1000.0, 4000.0, 2500.0)
VARIANT = Moments(10_000, 1700.0, 12000.0, 1010.0, 4100.0, 3100.0)
GBSTATS = {
    ("mean", False): (0.4166666666666668, 0.13617998975283557, 0.697153343580498, 0.0035983556885985646, 0.1430992486413482),
    ("mean", True): (0.4166666666666668, -0.03082101771081769, 0.8641543510441513, 0.09392457380760591, 0.1430992486413482),
    ("cuped", False): (0.41106550882006565, 0.1549483498469188, 0.6671826677932124, 0.00165813997673947, 0.13066638413581488),
    ("cuped", True): (0.41106550882006565, 0.00245681088439087, 0.8196742067557404, 0.04722156793567521, 0.13066638413581488),
    ("ratio", False): (0.40264026402640263, 0.1189838078467576, 0.6862967202060477, 0.005403191651075501, 0.14471625916490946),
    ("ratio", True): (0.40264026402640263, -0.04990399682980251, 0.8551845248826078, 0.13426346864582428, 0.14471625916490946),
}  # fmt: skip


@pytest.mark.parametrize(("kind", "sequential"), list(GBSTATS))
def test_matches_growthbook_stats_engine(kind: str, sequential: bool) -> None:
    n_tune = 5000.0 if sequential else None
    if kind == "cuped":
        lift, _ = cuped_lift(CONTROL, VARIANT, n_tune=n_tune)
    else:
        statistic = mean_statistic if kind == "mean" else ratio_statistic
        lift = relative_lift(statistic(CONTROL), statistic(VARIANT), n_tune=n_tune)
    got = (lift.estimate, lift.ci_low, lift.ci_high, lift.p_value, lift.standard_error)
    assert got == pytest.approx(GBSTATS[kind, sequential], rel=1e-9)


@pytest.fixture
def revenue_data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    pre_a, pre_b = rng.gamma(0.5, 20, 400), rng.gamma(0.5, 20, 450)
    y_a = 0.6 * pre_a + rng.gamma(0.5, 20, 400)
    y_b = 0.6 * pre_b + rng.gamma(0.5, 24, 450)
    return y_a, y_b, pre_a, pre_b


def test_welch_degrees_of_freedom_equal_scipy_and_statsmodels(revenue_data) -> None:
    y_a, y_b, _, _ = revenue_data
    control, variant = _two_arms(y_a, y_b)
    dof = welch_dof(mean_statistic(control), mean_statistic(variant))
    assert dof == pytest.approx(stats.ttest_ind(y_b, y_a, equal_var=False).df, rel=1e-10)
    assert dof == pytest.approx(CompareMeans(DescrStatsW(y_b), DescrStatsW(y_a)).dof_satt())


def test_relative_variance_is_the_delta_method_in_matrix_form(revenue_data) -> None:
    y_a, y_b, _, _ = revenue_data
    control, variant = _two_arms(y_a, y_b)
    lift = relative_lift(mean_statistic(control), mean_statistic(variant))
    # g(m_a, m_b) = m_b / m_a - 1; the two means are independent.
    m_a, m_b = y_a.mean(), y_b.mean()
    gradient = np.array([-m_b / m_a**2, 1 / m_a])
    covariance = np.diag([y_a.var(ddof=1) / y_a.size, y_b.var(ddof=1) / y_b.size])
    assert lift.standard_error == pytest.approx(math.sqrt(gradient @ covariance @ gradient))
    assert lift.estimate == pytest.approx(m_b / m_a - 1)


def test_cuped_theta_and_adjusted_arms_equal_ols_and_welch(revenue_data) -> None:
    y_a, y_b, pre_a, pre_b = revenue_data
    control, variant = _two_arms(y_a, y_b, pre_a, pre_b)
    lift, theta = cuped_lift(control, variant)
    # theta is the slope of post on pre over both arms pooled.
    ols = sm.OLS(np.r_[y_a, y_b], sm.add_constant(np.r_[pre_a, pre_b])).fit()
    assert theta == pytest.approx(ols.params[1], rel=1e-10)
    adj_a, adj_b = y_a - theta * pre_a, y_b - theta * pre_b
    assert lift.difference == pytest.approx(adj_b.mean() - adj_a.mean())
    assert lift.estimate == pytest.approx((adj_b.mean() - adj_a.mean()) / y_a.mean())
    welch = stats.ttest_ind(adj_b, adj_a, equal_var=False)
    assert welch_dof(
        ArmStatistic(400, adj_a.mean(), adj_a.var(ddof=1)),
        ArmStatistic(450, adj_b.mean(), adj_b.var(ddof=1)),
    ) == pytest.approx(welch.df)
    plain = relative_lift(mean_statistic(control), mean_statistic(variant))
    assert lift.standard_error < 0.9 * plain.standard_error  # pre explains much of post


def test_cuped_without_covariate_variation_is_the_plain_estimate(revenue_data) -> None:
    y_a, y_b, _, _ = revenue_data
    control, variant = _two_arms(y_a, y_b, np.ones(400), np.ones(450))
    lift, theta = cuped_lift(control, variant)
    assert theta == 0.0
    plain = relative_lift(mean_statistic(control), mean_statistic(variant))
    assert lift == plain


def test_ratio_variance_is_the_variance_of_the_linearised_values(revenue_data) -> None:
    y_a, _, pre_a, _ = revenue_data
    orders = np.floor(pre_a / 10)
    (arm,) = arm_moments(np.zeros(400, dtype=np.intp), 1, y_a, orders)
    ratio = ratio_statistic(arm)
    r = y_a.sum() / orders.sum()
    assert ratio.mean == pytest.approx(r)
    linearised = (y_a - r * orders) / orders.mean()
    assert ratio.variance == pytest.approx(linearised.var(ddof=1))


def test_sample_ratio_mismatch_by_hand() -> None:
    # 10,400 vs 9,600 where 10,000 each are expected: chi2 = 2 * 400^2 / 10,000 = 32.
    srm = sample_ratio_mismatch([10_400, 9_600], [0.5, 0.5])
    assert srm.p_value == pytest.approx(stats.chi2.sf(32, 1))
    assert srm.flagged
    assert srm.expected == (10_000, 10_000)
    fair = sample_ratio_mismatch([10_050, 9_950], [50, 50])
    assert fair.p_value == pytest.approx(stats.chi2.sf(0.5, 1))  # 2 * 50^2 / 10,000
    assert not fair.flagged
    uneven = sample_ratio_mismatch([2_000, 8_000, 0], [0.2, 0.4, 0.4])
    assert uneven.flagged  # an arm without visitors is a mismatch
    assert sample_ratio_mismatch([0, 0], [1, 1]).p_value is None


def test_sequential_intervals_are_widest_relative_to_fixed_ones_away_from_n_tune() -> None:
    # For a unit-variance mean after n visitors (se = 1/sqrt(n)), the confidence sequence is
    # wider than the fixed 95% interval at every n, least so near N_tune.
    def relative_width(n: int) -> float:
        return sequential_halfwidth(1 / math.sqrt(n), n, 0.05) / (
            stats.norm.ppf(0.975) / math.sqrt(n)
        )

    widths = {n: relative_width(n) for n in (500, 2_000, 5_000, 10_000, 50_000)}
    assert all(w > 1 for w in widths.values())
    assert min(widths, key=widths.__getitem__) == 5_000
    assert sequential_halfwidth(0.01, 5_000, 0.05, n_tune=50_000) != sequential_halfwidth(
        0.01, 5_000, 0.05
    )


def test_sequential_p_values_are_never_below_fixed_ones(revenue_data) -> None:
    y_a, y_b, _, _ = revenue_data
    control, variant = _two_arms(y_a, y_b)
    a, b = mean_statistic(control), mean_statistic(variant)
    fixed, always_valid = relative_lift(a, b), relative_lift(a, b, n_tune=5000)
    assert always_valid.estimate == fixed.estimate
    assert always_valid.p_value >= fixed.p_value
    assert always_valid.ci_low < fixed.ci_low and always_valid.ci_high > fixed.ci_high


@pytest.mark.parametrize(
    ("a", "b", "reason"),
    [
        (ArmStatistic(1, 0.5, 0.1), ArmStatistic(10, 0.5, 0.1), "fewer than 2 visitors"),
        (ArmStatistic(10, 0.0, 0.0), ArmStatistic(10, 0.5, 0.1), "the control's value is 0"),
        (ArmStatistic(10, 0.5, 0.0), ArmStatistic(10, 0.6, 0.0), "no variation"),
    ],
)
def test_undefined_lifts_say_why(a: ArmStatistic, b: ArmStatistic, reason: str) -> None:
    lift = relative_lift(a, b)
    assert lift.estimate is None and lift.p_value is None and lift.ci_low is None
    assert lift.reason is not None and lift.reason.startswith(reason)
