// The dashboard's trade-off panel: the served model's frontier of dial settings
// (GET /v1/tradeoff): conversion hit against realized value per setting, with their 90%
// intervals, the frontier line, and a ring round the server's current setting.
// Uses api, el, fmt and $ of dashboard.js.
"use strict";

let tradeoffShown = "";

function drawTradeoff(report) {
  const svg = $("tradeoff-chart");
  svg.replaceChildren();
  const points = report.points.filter((p) => p.conversion_hit_rate.value !== null && p.realized_value.value !== null);
  if (!points.length) {
    svg.appendChild(el("text", { x: 10, y: 20 }, "No later conversions in the held-out sessions: nothing to plot."));
    return;
  }
  const width = svg.clientWidth || 900, height = 300, pad = 56;
  const xs = points.flatMap((p) => [p.conversion_hit_rate.low, p.conversion_hit_rate.high]);
  const ys = points.flatMap((p) => [p.realized_value.low, p.realized_value.high]);
  const span = (v) => [Math.min(...v), Math.max(...v) > Math.min(...v) ? Math.max(...v) : Math.min(...v) + 0.01];
  const [x0, x1] = span(xs), [y0, y1] = span(ys);
  const sx = (v) => pad + ((v - x0) / (x1 - x0)) * (width - 2 * pad);
  const sy = (v) => height - pad - ((v - y0) / (y1 - y0)) * (height - 2 * pad);
  svg.append(
    el("line", { x1: pad, y1: height - pad, x2: width - pad, y2: height - pad, class: "axis" }),
    el("line", { x1: pad, y1: pad / 2, x2: pad, y2: height - pad, class: "axis" }),
    el("text", { x: width / 2, y: height - 18, "text-anchor": "middle" }, `conversion hit@${report.k} (${fmt(x0)} to ${fmt(x1)})`),
    el("text", { x: 14, y: height / 2, transform: `rotate(-90 14 ${height / 2})`, "text-anchor": "middle" }, `realized value@${report.k} (${fmt(y0)} to ${fmt(y1)})`),
  );
  const frontier = points.filter((p) => p.on_frontier).sort((a, b) => a.conversion_hit_rate.value - b.conversion_hit_rate.value);
  if (frontier.length > 1) {
    const path = frontier.map((p) => `${sx(p.conversion_hit_rate.value).toFixed(1)},${sy(p.realized_value.value).toFixed(1)}`).join(" ");
    svg.appendChild(el("polyline", { points: path, class: "frontier-line" }));
  }
  const labels = new Map(); // settings on the same spot share one label
  for (const p of points) {
    const x = sx(p.conversion_hit_rate.value), y = sy(p.realized_value.value);
    const spot = `${x.toFixed(0)},${y.toFixed(0)}`;
    labels.set(spot, [...(labels.get(spot) || []), p.label]);
    const g = el("g", { class: "point", "data-label": p.label, "data-frontier": String(p.on_frontier), "data-current": String(p.current) });
    g.append(
      el("line", { x1: sx(p.conversion_hit_rate.low), y1: y, x2: sx(p.conversion_hit_rate.high), y2: y, class: "whisker" }),
      el("line", { x1: x, y1: sy(p.realized_value.low), x2: x, y2: sy(p.realized_value.high), class: "whisker" }),
      el("circle", { cx: x, cy: y, r: 4, class: p.on_frontier ? "dot on" : "dot" }),
      el("title", {}, `${p.label}: conversion hit ${fmt(p.conversion_hit_rate.value)} [${fmt(p.conversion_hit_rate.low)}, ${fmt(p.conversion_hit_rate.high)}], realized value ${fmt(p.realized_value.value)} [${fmt(p.realized_value.low)}, ${fmt(p.realized_value.high)}], HR ${fmt(p.hit_rate.value)}`),
    );
    if (p.current) g.appendChild(el("circle", { cx: x, cy: y, r: 10, class: "ring", "data-label": p.label }));
    svg.appendChild(g);
  }
  for (const [spot, names] of labels) {
    const [x, y] = spot.split(",").map(Number);
    svg.appendChild(el("text", { x: x + 8, y: y - 8, class: "point-label" }, names.join(" / ")));
  }
}

let tradeoffTimer = null;
async function refreshTradeoff() {
  clearTimeout(tradeoffTimer);
  const svg = $("tradeoff-chart");
  try {
    const report = await api("/v1/tradeoff");
    svg.dataset.status = report.status;
    if (report.status !== "ready") {
      $("tradeoff-summary").textContent = report.detail || report.status;
      tradeoffShown = "";
      svg.replaceChildren();
      if (report.status === "computing") tradeoffTimer = setTimeout(refreshTradeoff, 2000);
      return;
    }
    const value = report.value_kind === "price" ? "value = price (the catalog has no margin or cost)" : `value = ${report.value_kind}`;
    const current = report.points.some((p) => p.current) ? `current setting: ${report.current_label}` : `current setting ${report.current_label} is being added to the grid`;
    $("tradeoff-summary").textContent =
      `${report.predictions} predictions in ${report.sessions} held-out sessions, ${report.conversion_predictions} with a later conversion; ${value}; ${current}` +
      (report.too_small ? "; too few predictions to tell close settings apart" : "");
    // Redraw only when something changed, so the chart does not flicker under a reader.
    const shown = `${report.computed_at}|${report.current_label}`;
    if (shown !== tradeoffShown) {
      drawTradeoff(report);
      tradeoffShown = shown;
    }
    svg.dataset.current = report.current_label;
    if (!report.points.some((p) => p.current)) tradeoffTimer = setTimeout(refreshTradeoff, 2000);
  } catch (error) {
    showError(error);
  }
}

refreshTradeoff();
setInterval(refreshTradeoff, 30000); // a model refresh brings a new frontier
