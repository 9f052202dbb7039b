"""Experiment statistics benchmark: are the readout's error rates what they claim, and how fast?

Usage::

    nice .venv/bin/python bench/experiments.py                 # everything (about 2 minutes)
    nice .venv/bin/python bench/experiments.py --runs 200 --json out.json

The simulated shop (seeded, so every run gives the same figures): each visitor has a purchase
rate ``lambda ~ Gamma(0.5, 0.1)`` (most visitors rarely buy, a few often); in the experiment
they place ``Poisson(lambda * (1 + L))`` orders, where ``L`` is the variant's true lift (0 in
the control), each worth ``Gamma(2, 30)``; before it they placed ``Poisson(2 * lambda)`` orders
(the CUPED covariate). So revenue per visitor rises by exactly ``L`` and the conversion rate
(visitors with an order) by ``(1 - (1 + (1 + L) 0.1)^-0.5) / (1 - 1.1^-0.5) - 1``, the gamma
Laplace transform. Each test has 20,000 visitors split 50/50.

Figures, each over ``--runs`` simulated tests (the issue's bounds in brackets):

* A/A (L = 0): share of tests with p < 0.05 per metric, plain and CUPED [3-7%];
* A/B (L = 0.10): share of 95% intervals holding the true lift, plain and CUPED [93-97%];
* sequential: A/A tests looked at daily for 30 days (visitors arrive evenly), share with
  p < 0.05 at any look, with always-valid intervals [<= 5%] and, for contrast, fixed ones;
* SRM: a 52/48 split of 20,000 visitors against a configured 50/50 [flagged] (and how often
  assigning visitors at random with 52% odds is flagged), 10,000 fair
  binomial splits [<= 0.2% flagged], and 200 experiments split by the real hash of 20,000
  visitor ids each;
* cost: reading 2M visitors from Arrow and computing the readout (fixed and sequential), all
  columns present (10M events give about 2M visitors at the demo's 5 events per visitor).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from target_personalize.engine.experiments import (
    DEFAULT_MIN_SAMPLE,
    Experiment,
    Variant,
    VisitorData,
    assign,
    build_readout,
    sample_ratio_mismatch,
)

VISITORS = 20_000
SHAPE, SCALE = 0.5, 0.1
TRUE_LIFT = 0.10
DAYS = 30
ALPHA = 0.05
IDS = ("control", "engine")


def true_conversion_lift(lift: float) -> float:
    def rate(multiplier: float) -> float:
        return 1 - (1 + multiplier * SCALE) ** -SHAPE

    return rate(1 + lift) / rate(1.0) - 1


def simulate(rng: np.random.Generator, lift: float, n: int = VISITORS) -> VisitorData:
    """One test: visitors in arrival order, half in each arm at random."""
    arm = rng.integers(0, 2, n)
    rate = rng.gamma(SHAPE, SCALE, n)
    orders = rng.poisson(rate * np.where(arm == 1, 1 + lift, 1.0))
    pre_orders = rng.poisson(rate * 2)
    revenue = np.zeros(n)
    bought = orders > 0
    revenue[bought] = rng.gamma(2.0 * orders[bought], 30.0)
    pre_revenue = np.zeros(n)
    bought = pre_orders > 0
    pre_revenue[bought] = rng.gamma(2.0 * pre_orders[bought], 30.0)
    return VisitorData(
        IDS,
        arm,
        orders.astype(float),
        revenue,
        pre_conversion_events=pre_orders.astype(float),
        pre_revenue=pre_revenue,
    )


def _prefix(data: VisitorData, n: int) -> VisitorData:
    return VisitorData(
        data.variant_ids,
        data.variant[:n],
        data.conversion_events[:n],
        data.revenue[:n],
        pre_conversion_events=None
        if data.pre_conversion_events is None
        else data.pre_conversion_events[:n],
        pre_revenue=None if data.pre_revenue is None else data.pre_revenue[:n],
    )


METRICS = ("conversion_rate", "revenue_per_visitor", "aov")


def error_rates(runs: int, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    # Order values do not change, so the average order value's true lift is 0.
    truth = {
        "conversion_rate": true_conversion_lift(TRUE_LIFT),
        "revenue_per_visitor": TRUE_LIFT,
        "aov": 0.0,
    }
    positives: dict[str, int] = {}
    covered: dict[str, int] = {}
    for _ in range(runs):
        aa = build_readout(simulate(rng, 0.0), experiment_id="aa")
        ab = build_readout(simulate(rng, TRUE_LIFT), experiment_id="ab")
        for lift in aa.lift:
            for key, e in ((lift.metric, lift.plain), (f"{lift.metric}_cuped", lift.cuped)):
                if e is not None:
                    significant = e.p_value is not None and e.p_value < ALPHA
                    positives[key] = positives.get(key, 0) + significant
        for lift in ab.lift:
            t = truth[lift.metric]
            for key, e in ((lift.metric, lift.plain), (f"{lift.metric}_cuped", lift.cuped)):
                if e is not None and e.ci_low is not None and e.ci_high is not None:
                    covered[key] = covered.get(key, 0) + (e.ci_low <= t <= e.ci_high)
    return {
        "runs": runs,
        "true_lift": truth,
        "aa_false_positive_rate": {k: v / runs for k, v in positives.items()},
        "ab_interval_coverage": {k: v / runs for k, v in covered.items()},
    }


def sequential_looks(runs: int, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    looks = [round(VISITORS * (day + 1) / DAYS) for day in range(DAYS)]
    # (sequential, minimum sample): always-valid as the readout gives it, the same without the
    # minimum sample, and fixed-horizon intervals looked at daily.
    policies = {
        "sequential": (True, DEFAULT_MIN_SAMPLE),
        "sequential_no_min_sample": (True, 0),
        "fixed_peeking": (False, DEFAULT_MIN_SAMPLE),
    }
    rejected = {p: dict.fromkeys(METRICS, 0) for p in policies}
    for _ in range(runs):
        data = simulate(rng, 0.0)
        hits: dict[str, set[str]] = {p: set() for p in policies}
        for n in looks:
            prefix = _prefix(data, n)
            for policy, (sequential, min_sample) in policies.items():
                readout = build_readout(
                    prefix, experiment_id="aa", sequential=sequential, min_sample=min_sample
                )
                hits[policy].update(
                    x.metric
                    for x in readout.lift
                    if x.plain.p_value is not None and x.plain.p_value < ALPHA
                )
        for policy, metrics in hits.items():
            for metric in metrics:
                rejected[policy][metric] += 1
    return {
        "runs": runs,
        "looks": DAYS,
        "min_sample": DEFAULT_MIN_SAMPLE,
        **{
            f"false_positive_rate_{p}": {m: v / runs for m, v in r.items()}
            for p, r in rejected.items()
        },
    }


def sample_ratio(runs: int, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    exact = sample_ratio_mismatch([VISITORS * 52 // 100, VISITORS * 48 // 100], [0.5, 0.5])
    skewed = rng.binomial(VISITORS, 0.52, runs)
    flagged_skewed = sum(
        sample_ratio_mismatch([k, VISITORS - k], [0.5, 0.5]).flagged for k in skewed
    )
    fair_runs = 10_000
    fair = rng.binomial(VISITORS, 0.5, fair_runs)
    flagged_fair = sum(sample_ratio_mismatch([k, VISITORS - k], [0.5, 0.5]).flagged for k in fair)
    hashed_runs = 200
    flagged_hashed = 0
    variants = (Variant("control", "popularity"), Variant("engine"))
    for run in range(hashed_runs):
        experiment = Experiment(f"bench-{run}", variants)
        counts = [0, 0]
        for i in range(VISITORS):
            variant = assign(experiment, f"visitor-{seed}-{i}")
            counts[variant is not None and variant.variant_id == "engine"] += 1
        flagged_hashed += sample_ratio_mismatch(counts, [0.5, 0.5]).flagged
    return {
        "exact_52_48_p_value": exact.p_value,
        "exact_52_48_flagged": exact.flagged,
        "skewed_52_48_flagged": flagged_skewed / runs,
        "skewed_runs": runs,
        "fair_flagged": flagged_fair / fair_runs,
        "fair_runs": fair_runs,
        "hashed_flagged": flagged_hashed,
        "hashed_runs": hashed_runs,
    }


def _median_seconds(work: Callable[[], object], repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def cost(visitors: int, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    data = simulate(rng, TRUE_LIFT, visitors)
    table = pa.table({
        "variant_id": pa.array(np.array(IDS)[data.variant]),
        "conversion_events": data.conversion_events,
        "revenue": data.revenue,
        "margin": data.revenue * 0.3,
        "clicks": rng.poisson(1.0, visitors).astype(float),
        "impressions": rng.poisson(3.0, visitors).astype(float) + 1,
        "pre_conversion_events": data.pre_conversion_events,
        "pre_revenue": data.pre_revenue,
        "pre_margin": data.pre_revenue * 0.3,
    })  # fmt: skip
    full = VisitorData.from_arrow(table, variant_ids=IDS)
    return {
        "visitors": visitors,
        "from_arrow_seconds": _median_seconds(
            lambda: VisitorData.from_arrow(table, variant_ids=IDS)
        ),
        "readout_seconds": _median_seconds(lambda: build_readout(full, experiment_id="cost")),
        "readout_sequential_seconds": _median_seconds(
            lambda: build_readout(full, experiment_id="cost", sequential=True)
        ),
    }


def _check(label: str, ok: bool) -> bool:
    print(f"  [{'PASS' if ok else 'FAIL'}] {label}")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=500, help="simulated tests per figure")
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--visitors", type=int, default=2_000_000, help="visitors for the cost")
    parser.add_argument("--json", help="also write every figure to this file")
    args = parser.parse_args()

    results: dict[str, Any] = {}
    ok = True
    start = time.perf_counter()
    rates = results["error_rates"] = error_rates(args.runs, args.seed)
    print(f"A/A and A/B tests: {args.runs} each, {VISITORS:,} visitors, true lift {TRUE_LIFT:+.0%} "
          f"(conversion rate {rates['true_lift']['conversion_rate']:+.2%}) "
          f"[{time.perf_counter() - start:.0f} s]")  # fmt: skip
    print(f"  {'metric':<28}{'A/A p<0.05':>12}{'A/B coverage':>14}")
    for key, fpr in rates["aa_false_positive_rate"].items():
        coverage = rates["ab_interval_coverage"][key]
        print(f"  {key:<28}{fpr:>12.1%}{coverage:>14.1%}")
        ok &= _check(f"{key}: false positives in 3-7%", 0.03 <= fpr <= 0.07)
        ok &= _check(f"{key}: coverage in 93-97%", 0.93 <= coverage <= 0.97)

    start = time.perf_counter()
    seq = results["sequential"] = sequential_looks(args.runs, args.seed + 1)
    print(f"Sequential: {args.runs} A/A tests, a look a day for {DAYS} days "
          f"[{time.perf_counter() - start:.0f} s]")  # fmt: skip
    print(f"  {'metric':<22}{'always-valid':>14}{'same, no min. sample':>22}{'fixed, peeking':>16}")
    for metric in METRICS:
        s = seq["false_positive_rate_sequential"][metric]
        bare = seq["false_positive_rate_sequential_no_min_sample"][metric]
        f = seq["false_positive_rate_fixed_peeking"][metric]
        print(f"  {metric:<22}{s:>14.1%}{bare:>22.1%}{f:>16.1%}")
        ok &= _check(f"{metric}: false positives over {DAYS} looks <= 5%", s <= 0.05)

    start = time.perf_counter()
    srm = results["srm"] = sample_ratio(args.runs, args.seed + 2)
    print(f"Sample-ratio check (p < 0.001) [{time.perf_counter() - start:.0f} s]")
    print(f"  52/48 split of {VISITORS:,} visitors: p = {srm['exact_52_48_p_value']:.1e}")
    print(f"  visitors put in at random with 52% odds, flagged: {srm['skewed_52_48_flagged']:.1%}"
          f" of {args.runs}")  # fmt: skip
    print(f"  fair binomial splits flagged: {srm['fair_flagged']:.2%} of {srm['fair_runs']:,}")
    print(f"  splits by the real hash flagged: {srm['hashed_flagged']} of {srm['hashed_runs']}")
    ok &= _check("a 52/48 split is flagged", srm["exact_52_48_flagged"])
    ok &= _check("fair splits flagged <= 0.2%", srm["fair_flagged"] <= 0.002)

    speed = results["cost"] = cost(args.visitors, args.seed + 3)
    print(f"Cost on {args.visitors:,} visitors, every column (median of 3):")
    print(f"  Arrow table -> VisitorData: {speed['from_arrow_seconds']:.2f} s")
    print(f"  readout:                    {speed['readout_seconds']:.2f} s")
    print(f"  readout, sequential:        {speed['readout_sequential_seconds']:.2f} s")

    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2), encoding="utf-8")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
