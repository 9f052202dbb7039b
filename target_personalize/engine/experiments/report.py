"""An experiment's readout from the store: JSON-ready figures and a self-contained HTML page.

The experiment comes from the store's registry when it is defined there (variants, split,
conversion, control); otherwise it is one another tool ran, known only by its exposures: its
variants are those the exposures name (in alphabetical order, the first being the control
unless told otherwise) and an even split is assumed for the sample-ratio check.
"""

from __future__ import annotations

import html
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from target_personalize.engine.experiments.errors import ExperimentError
from target_personalize.engine.experiments.readout import DEFAULT_MIN_SAMPLE, build_readout
from target_personalize.engine.experiments.registry import ExperimentRegistry
from target_personalize.engine.experiments.sql import (
    DEFAULT_ATTRIBUTION_WINDOW,
    DEFAULT_PRE_DAYS,
    exposed_variants,
    read_experiment,
)

if TYPE_CHECKING:
    from target_personalize.engine.store.event_store import EventStore

__all__ = ["readout_from_store", "readout_html"]


def readout_from_store(
    store: EventStore,
    experiment_id: str,
    *,
    conversion: str | None = None,
    control: str | None = None,
    sequential: bool = False,
    attribution_window: timedelta = DEFAULT_ATTRIBUTION_WINDOW,
    pre_days: int = DEFAULT_PRE_DAYS,
    min_sample: int = DEFAULT_MIN_SAMPLE,
) -> dict[str, Any]:
    """The readout of one experiment, in the JSON shape of docs/experiments.md.

    Each variant also gets its attribution (``attributed_click_through``,
    ``attributed_view_through``, ``attributed_conversions``, ``attributed_revenue``,
    ``attributed_margin``); the top level says where the definition came from (``defined``:
    the registry, or ``exposures`` only) and the ``attribution_window_seconds``.

    Raises:
        ExperimentError: when the experiment is neither defined nor exposed, or the control
            is not one of its variants.
    """
    try:
        experiment = ExperimentRegistry(store).get(experiment_id).experiment
        defined = True
    except ExperimentError:
        defined = False
    weights: dict[str, float] | None = None
    if defined:
        variant_ids = experiment.variant_ids
        weights = dict(zip(variant_ids, experiment.weights, strict=True))
        conversion = conversion or experiment.conversion
        control = control or experiment.control
    else:
        variant_ids = exposed_variants(store, experiment_id)
        if not variant_ids:
            raise ExperimentError(
                f"experiment {experiment_id!r}: not defined in the store and no exposure names "
                "it; check the id (`personalize experiment list`) or load its exposure events"
            )
        conversion = conversion or "purchase"
    visitors, attribution = read_experiment(
        store,
        experiment_id,
        variant_ids,
        conversion=conversion,
        attribution_window=attribution_window,
        pre_days=pre_days,
    )
    readout = build_readout(
        visitors,
        experiment_id=experiment_id,
        conversion=conversion,
        control=control,
        weights=weights,
        sequential=sequential,
        min_sample=min_sample,
    )
    result = readout.as_dict()
    result["defined"] = "registry" if defined else "exposures"
    result["attribution_window_seconds"] = int(attribution_window.total_seconds())
    for variant in result["variants"]:
        found = attribution.get(variant["variant_id"])
        variant.update(found.as_dict() if found else _no_attribution())
    return result


def _no_attribution() -> dict[str, Any]:
    return {
        "attributed_click_through": 0,
        "attributed_view_through": 0,
        "attributed_conversions": 0,
        "attributed_revenue": 0.0,
        "attributed_margin": None,
    }


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.1%}"


def readout_html(result: dict[str, Any]) -> str:
    """A self-contained HTML page of a readout: the variants, and lift bars with intervals."""
    e = html.escape
    rows = "".join(
        f"<tr><td>{e(v['variant_id'])}</td><td>{v['visitors']:,}</td>"
        f"<td>{v['conversions']:,}</td><td>{_rate(v['conversion_rate'])}</td>"
        f"<td>{_money(v['revenue_per_visitor'])}</td><td>{_money(v['margin_per_visitor'])}</td>"
        f"<td>{_rate(v['ctr'])}</td><td>{v['attributed_conversions']:,}</td></tr>"
        for v in result["variants"]
    )
    spans = [
        abs(x)
        for lift in result["lift"]
        for x in (lift["ci_low"], lift["ci_high"], lift["estimate"])
        if x is not None
    ]
    scale = max([0.05, *spans])
    bars = "".join(_bar(lift, scale) for lift in result["lift"])
    srm = result["srm"]
    warning = (
        f"<p class=warn>Sample-ratio mismatch (p = {srm['p_value']:.2g}): do not trust the "
        "lifts until assignment or exposure logging is fixed.</p>"
        if srm["flagged"]
        else ""
    )
    kind = "always-valid (sequential)" if result["sequential"] else "fixed-horizon"
    return f"""<!doctype html>
<html lang=en><meta charset=utf-8><title>Experiment {e(result["experiment_id"])}</title>
<style>body{{font:14px system-ui,sans-serif;margin:2em;max-width:60em}}
table{{border-collapse:collapse}}td,th{{padding:.3em .8em;text-align:right}}
td:first-child,th:first-child{{text-align:left}}.warn{{color:#b00;font-weight:bold}}
.bar{{position:relative;height:1.2em;background:#f3f3f3;width:30em}}
.ci{{position:absolute;height:100%;background:#9bc}}.zero{{position:absolute;left:50%;
width:1px;height:100%;background:#333}}.est{{position:absolute;width:3px;height:100%;
background:#024}}</style>
<h1>Experiment {e(result["experiment_id"])}</h1>
<p>Key conversion <b>{e(result["conversion"])}</b>, control <b>{e(result["control"])}</b>,
{kind} 95% intervals. Visitors in more than one variant, left out:
{result["excluded"]["multiple_variants"]:,}.</p>{warning}
<table><tr><th>variant<th>visitors<th>converted<th>rate<th>revenue/visitor
<th>margin/visitor<th>CTR<th>attributed</tr>{rows}</table>
<h2>Lift against the control</h2>
<table><tr><th>variant<th>metric<th>lift<th>95% interval<th>p<th></tr>{bars}</table>
</html>
"""


def _rate(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2%}"


def _money(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.2f}"


def _bar(lift: dict[str, Any], scale: float) -> str:
    e = html.escape

    def at(x: float) -> float:
        return 50 + 50 * x / scale

    low, high, estimate = lift["ci_low"], lift["ci_high"], lift["estimate"]
    interval = (
        f"<div class=ci style='left:{at(low):.1f}%;width:{at(high) - at(low):.1f}%'></div>"
        if low is not None and high is not None
        else ""
    )
    mark = f"<div class=est style='left:{at(estimate):.1f}%'></div>" if estimate is not None else ""
    shown = f"{_pct(low)} .. {_pct(high)}" if low is not None else e(lift.get("reason") or "n/a")
    p = "" if lift["p_value"] is None else f"{lift['p_value']:.3g}"
    return (
        f"<tr><td>{e(lift['variant_id'])}<td>{e(lift['metric'])}<td>{_pct(estimate)}"
        f"<td>{shown}<td>{p}<td><div class=bar><div class=zero></div>{interval}{mark}</div></tr>"
    )
