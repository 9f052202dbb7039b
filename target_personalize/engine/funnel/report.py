"""A self-contained HTML report of a discovered funnel: one page, inline SVG and CSS, no assets.

The page shows the key numbers, the funnel as a bar chart with the drop-off between steps, the
per-step statistics, the most frequent converting and non-converting paths, each event type's
contribution and weight, the time-to-convert distribution and the implicit signals. A few lines
of inline script check that every chart laid out (``data-charts-rendered`` on ``<html>``), which
is what the headless-browser test reads; the page is complete without it.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from target_personalize.engine.funnel.discovery import (
        DiscoveredFunnel,
        ImplicitSignal,
        PathStat,
    )
    from target_personalize.engine.funnel.explicit import Funnel
    from target_personalize.engine.funnel.shared import TimeToConvert

__all__ = ["render_report", "write_report"]

_BAR = "#2f6fde"
_DROP = "#d9534f"
_MUTED = "#8a94a6"

_STYLE = """
:root { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
        color: #1d2433; background: #f6f7fb; }
body { margin: 0; padding: 24px 32px 48px; max-width: 1100px; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 32px 0 8px; }
p.meta, p.note { color: #5b6578; margin: 4px 0 12px; font-size: 13px; }
section { background: #fff; border-radius: 8px; padding: 16px 20px; margin-top: 16px;
          box-shadow: 0 1px 2px rgba(16, 24, 40, .08); }
.cards { display: flex; gap: 12px; flex-wrap: wrap; margin-top: 16px; }
.card { background: #fff; border-radius: 8px; padding: 12px 16px; min-width: 150px;
        box-shadow: 0 1px 2px rgba(16, 24, 40, .08); }
.card .value { font-size: 22px; font-weight: 600; }
.card .label { font-size: 12px; color: #5b6578; text-transform: uppercase; letter-spacing: .04em; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td { text-align: right; padding: 5px 8px; border-bottom: 1px solid #eceef3; }
th:first-child, td:first-child { text-align: left; }
th { color: #5b6578; font-weight: 600; }
td.path { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 12px; }
span.meter { display: inline-block; height: 8px; background: #2f6fde; border-radius: 2px;
             vertical-align: middle; }
svg text { font-size: 12px; fill: #1d2433; }
svg text.muted { fill: #8a94a6; }
svg text.drop { fill: #d9534f; }
"""

_SCRIPT = """
(function () {
  var charts = document.querySelectorAll("svg.chart"), drawn = 0;
  charts.forEach(function (chart) {
    var bars = chart.querySelectorAll("rect.bar"), ok = bars.length > 0;
    bars.forEach(function (bar) { var box = bar.getBBox(); if (!(box.height > 0)) ok = false; });
    if (ok && chart.getBoundingClientRect().width > 0) drawn += 1;
  });
  document.documentElement.setAttribute("data-charts-rendered", String(drawn));
})();
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _pct(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value * 100:.{digits}f}%"


def _num(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def _duration(seconds: float | None) -> str:
    """A short human form: ``45 s``, ``2.5 min``, ``3.1 h``, ``2.0 d``."""
    if seconds is None:
        return "n/a"
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    if seconds < 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def _funnel_chart(steps: Sequence[tuple[str, int]], caption: str) -> str:
    """Horizontal bars, one per step, with the drop-off between consecutive steps."""
    width, label_w, bar_h, gap = 860, 170, 26, 22
    top = max((units for _, units in steps), default=0) or 1
    first = steps[0][1] if steps else 0
    height = len(steps) * (bar_h + gap) + 10
    span = width - label_w - 190
    parts = [
        f'<svg class="chart funnel-chart" role="img" aria-label="{_e(caption)}" '
        f'viewBox="0 0 {width} {height}" width="100%">'
    ]
    for i, (name, units) in enumerate(steps):
        y = 5 + i * (bar_h + gap)
        w = max(2.0, span * units / top)
        share = _pct(units / first) if first else "n/a"
        parts.append(
            f'<text x="{label_w - 10}" y="{y + bar_h * 0.68:.1f}" text-anchor="end">{_e(name)}</text>'
            f'<rect class="bar" x="{label_w}" y="{y}" width="{w:.1f}" height="{bar_h}" rx="3" '
            f'fill="{_BAR}"><title>{_e(name)}: {units:,} ({share} of step 1)</title></rect>'
            f'<text x="{label_w + w + 8:.1f}" y="{y + bar_h * 0.68:.1f}">'
            f"{units:,} · {share}</text>"
        )
        if i + 1 < len(steps):
            nxt = steps[i + 1][1]
            lost = units - nxt
            rate = _pct(lost / units) if units else "n/a"
            parts.append(
                f'<text class="drop" x="{label_w + 6}" y="{y + bar_h + gap * 0.72:.1f}">'
                f"▼ drop-off {rate} ({lost:,})</text>"
            )
    parts.append("</svg>")
    return "".join(parts)


def _histogram_chart(ttc: TimeToConvert) -> str:
    """Vertical bars: converters per time-to-convert bin."""
    width, height, left, bottom = 860, 230, 40, 40
    bins = ttc.histogram
    top = max((b.units for b in bins), default=0) or 1
    slot = (width - left - 10) / max(1, len(bins))
    plot = height - bottom - 20
    parts = [
        '<svg class="chart time-chart" role="img" aria-label="Time to convert" '
        f'viewBox="0 0 {width} {height}" width="100%">',
        f'<line x1="{left}" y1="{height - bottom}" x2="{width - 10}" y2="{height - bottom}" '
        f'stroke="{_MUTED}"/>',
    ]
    for i, b in enumerate(bins):
        h = max(1.0, plot * b.units / top) if b.units else 1.0
        x = left + i * slot + slot * 0.15
        y = height - bottom - h
        parts.append(
            f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" width="{slot * 0.7:.1f}" height="{h:.1f}" '
            f'fill="{_BAR if b.units else _MUTED}"><title>{_e(b.label)}: {b.units:,}</title></rect>'
            f'<text x="{x + slot * 0.35:.1f}" y="{y - 5:.1f}" text-anchor="middle">{b.units:,}</text>'
            f'<text class="muted" x="{x + slot * 0.35:.1f}" y="{height - bottom + 16}" '
            f'text-anchor="middle">{_e(b.label)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _weights_chart(funnel: DiscoveredFunnel) -> str:
    """Horizontal bars of the event weights the ranker reads."""
    items = sorted(funnel.event_weights.items(), key=lambda kv: (-kv[1], kv[0]))
    width, label_w, bar_h, gap = 860, 170, 16, 8
    height = max(1, len(items)) * (bar_h + gap) + 6
    span = width - label_w - 80
    parts = [
        '<svg class="chart weights-chart" role="img" aria-label="Event weights" '
        f'viewBox="0 0 {width} {height}" width="100%">'
    ]
    for i, (event_type, weight) in enumerate(items):
        y = 3 + i * (bar_h + gap)
        w = max(1.0, span * weight)
        parts.append(
            f'<text x="{label_w - 10}" y="{y + bar_h * 0.8:.1f}" text-anchor="end">'
            f"{_e(event_type)}</text>"
            f'<rect class="bar" x="{label_w}" y="{y}" width="{w:.1f}" height="{bar_h}" rx="2" '
            f'fill="{_BAR}"><title>{_e(event_type)}: {weight:.4f}</title></rect>'
            f'<text x="{label_w + w + 6:.1f}" y="{y + bar_h * 0.8:.1f}">{weight:.2f}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _paths_table(paths: Sequence[PathStat], conversion: str, converting: bool) -> str:
    if not paths:
        return '<p class="note">No journeys.</p>'
    rows = []
    for p in paths:
        steps = " → ".join(_e(s) for s in p.path) or "(nothing before)"
        if converting:
            steps += f" → <b>{_e(conversion)}</b>"
        rows.append(
            f'<tr><td class="path">{steps}</td><td>{p.units:,}</td>'
            f'<td><span class="meter" style="width:{max(1, round(p.support * 80))}px"></span> '
            f"{_pct(p.support)}</td><td>{_pct(p.conversion_rate)}</td></tr>"
        )
    return (
        "<table><thead><tr><th>path</th><th>units</th><th>support</th>"
        "<th>conversion rate of the path</th></tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table>"
    )


def _signal_rows(signals: Sequence[ImplicitSignal]) -> str:
    rows = []
    for s in signals:
        if not s.units:
            rows.append(f"<tr><td>{_e(s.name)}</td><td>0</td><td colspan='5'>no data</td></tr>")
            continue
        buckets = ", ".join(
            f"{_e(b.label)}: {_pct(b.conversion_rate)} of {b.units:,}" for b in s.buckets if b.units
        )
        rows.append(
            f"<tr><td>{_e(s.name)} ({_e(s.aggregate)}, {_e(s.unit)})</td><td>{s.units:,}</td>"
            f"<td>{_num(s.median_converters, 1)}</td><td>{_num(s.median_others, 1)}</td>"
            f"<td>{_num(s.correlation, 3)}</td><td style='text-align:left'>{buckets}</td></tr>"
        )
    return (
        "<table><thead><tr><th>signal</th><th>units</th><th>median, converters</th>"
        "<th>median, others</th><th>correlation</th><th style='text-align:left'>"
        "conversion rate by value</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
    )


def _cards(funnel: DiscoveredFunnel) -> str:
    ttc = funnel.time_to_convert
    cards = [
        (f"{funnel.units:,}", f"{funnel.unit}s"),
        (f"{funnel.converters:,}", "converted"),
        (_pct(funnel.base_rate, 2), "conversion rate"),
        (_duration(ttc.median_seconds), "median time to convert"),
        (_duration(ttc.p90_seconds), "p90 time to convert"),
    ]
    return "".join(
        f'<div class="card"><div class="value">{_e(v)}</div><div class="label">{_e(k)}</div></div>'
        for v, k in cards
    )


def _step_rows(funnel: DiscoveredFunnel) -> str:
    return "".join(
        f"<tr><td>{_e(s.event_type)}</td><td>{s.funnel_units:,}</td><td>{s.units:,}</td>"
        f"<td>{_pct(s.converter_share)}</td><td>{_pct(s.conversion_rate)}</td>"
        f"<td>{_num(s.lift)}</td><td>{_duration(s.median_seconds_to_conversion)}</td>"
        f"<td>{_duration(s.p90_seconds_to_conversion)}</td><td>{_pct(s.drop_off)}</td></tr>"
        for s in funnel.steps
    )


def _contribution_rows(funnel: DiscoveredFunnel) -> str:
    return "".join(
        f"<tr><td>{_e(c.event_type)}</td><td>{c.units:,}</td><td>{_pct(c.converter_share)}</td>"
        f"<td>{_pct(c.conversion_rate)}</td><td>{_num(c.lift)}</td>"
        f"<td>{_num(c.removal_effect, 3)}</td><td>{c.weight:.4f}</td></tr>"
        for c in funnel.contributions
    )


def _explicit_section(explicit: Funnel) -> str:
    named = [(s.name, s.units) for s in explicit.steps]
    window = _duration(explicit.window_seconds) if explicit.window_seconds else "none"
    return (
        "<section><h2>Your funnel</h2>"
        f'<p class="note">{_e(explicit.order)} order, conversion window {window}, '
        f"per {_e(explicit.unit)}; completed {explicit.completed:,} of {explicit.entered:,} "
        f"({_pct(explicit.overall_conversion)}), median time to convert "
        f"{_duration(explicit.time_to_convert.median_seconds)}.</p>"
        f"{_funnel_chart(named, 'Explicit funnel')}</section>"
    )


def render_report(
    funnel: DiscoveredFunnel,
    *,
    explicit: Funnel | None = None,
    title: str | None = None,
    generated_at: datetime | None = None,
) -> str:
    """Render the report as one HTML page with no external assets.

    Args:
        funnel: the discovered funnel.
        explicit: an explicit funnel to chart as well (the steps the user named).
        title: the page title; by default names the conversion.
        generated_at: shown on the page; defaults to now (UTC).

    Returns:
        The HTML text.
    """
    moment = generated_at or datetime.now(UTC).replace(tzinfo=None)
    heading = title or f"Funnel toward {funnel.conversion}"
    span = " to ".join(d.isoformat(sep=" ") if d else "open" for d in (funnel.since, funnel.until))
    ttc = funnel.time_to_convert
    card_html = _cards(funnel)
    step_rows = _step_rows(funnel)
    contribution_rows = _contribution_rows(funnel)
    explicit_section = "" if explicit is None else _explicit_section(explicit)
    body = f"""
<h1>{_e(heading)}</h1>
<p class="meta">Key conversion <b>{_e(funnel.conversion)}</b> · per {_e(funnel.unit)} ·
range {_e(span)} · generated {_e(moment.isoformat(sep=" ", timespec="seconds"))} UTC</p>
<div class="cards">{card_html}</div>
<section><h2>Discovered funnel</h2>
<p class="note">Steps that at least the chosen share of converting journeys pass through, in their
typical order; bars count the {_e(funnel.unit)}s that went through them in that order.</p>
{_funnel_chart([(s.event_type, s.funnel_units) for s in funnel.steps], "Discovered funnel")}
<table><thead><tr><th>step</th><th>in order</th><th>units with it</th><th>share of converters</th>
<th>conversion rate</th><th>lift</th><th>median to conversion</th><th>p90 to conversion</th>
<th>drop-off to next</th></tr></thead><tbody>{step_rows}</tbody></table></section>
{explicit_section}
<section><h2>Top converting paths</h2>{_paths_table(funnel.converting_paths, funnel.conversion, True)}</section>
<section><h2>Top non-converting paths</h2>{_paths_table(funnel.non_converting_paths, funnel.conversion, False)}</section>
<section><h2>Event-type contributions</h2>
<p class="note">Lift: conversion rate of journeys with the type over the base rate. Removal
effect: relative drop of the Markov chain's conversion probability without the type. The
weights (what the ranker reads) blend both; the conversion weighs 1.</p>
{_weights_chart(funnel)}
<table><thead><tr><th>event type</th><th>units</th><th>share of converters</th>
<th>conversion rate</th><th>lift</th><th>removal effect</th><th>weight</th></tr></thead>
<tbody>{contribution_rows}</tbody></table></section>
<section><h2>Time to convert</h2>
<p class="note">From a {_e(funnel.unit)}'s first event to its first conversion:
median {_duration(ttc.median_seconds)}, mean {_duration(ttc.mean_seconds)},
p90 {_duration(ttc.p90_seconds)} over {ttc.converters:,} converters.</p>
{_histogram_chart(ttc)}</section>
<section><h2>Implicit signals</h2>
<p class="note">Aggregated over each journey before the conversion.</p>
{_signal_rows(funnel.signals)}</section>
"""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(heading)}</title><style>{_STYLE}</style></head>"
        f"<body>{body}<script>{_SCRIPT}</script></body></html>\n"
    )


def write_report(
    path: str | Path,
    funnel: DiscoveredFunnel,
    *,
    explicit: Funnel | None = None,
    title: str | None = None,
) -> Path:
    """Render the report and write it to ``path`` (UTF-8); return the path."""
    target = Path(path)
    target.write_text(render_report(funnel, explicit=explicit, title=title), encoding="utf-8")
    return target
