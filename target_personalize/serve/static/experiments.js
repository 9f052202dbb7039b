// The dashboard's experiments panel: the stored experiments, one's readout as a table of
// variants and lift bars with their 95% intervals (GET /v1/experiments, /v1/experiments/{id}).
// Uses api, el, fmt and $ of dashboard.js.
"use strict";

const LIFT_METRICS = ["conversion_rate", "revenue_per_visitor", "margin_per_visitor", "aov", "ctr"];

function pct(x) {
  return x === null || x === undefined ? "n/a" : `${(100 * x).toFixed(1)}%`;
}

function drawVariants(readout) {
  const body = $("variants").querySelector("tbody");
  body.replaceChildren();
  for (const v of readout.variants) {
    const tr = document.createElement("tr");
    tr.dataset.variant = v.variant_id;
    const name = v.variant_id === readout.control ? `${v.variant_id} (control)` : v.variant_id;
    tr.append(el("td", {}, name), el("td", { class: "num" }, String(v.visitors)),
      el("td", { class: "num" }, pct(v.conversion_rate)), el("td", { class: "num" }, fmt(v.revenue_per_visitor, 2)),
      el("td", { class: "num" }, fmt(v.margin_per_visitor, 2)), el("td", { class: "num" }, pct(v.ctr)));
    body.appendChild(tr);
  }
}

function drawLifts(readout) {
  const svg = $("lift-chart");
  svg.replaceChildren();
  const lifts = readout.lift.filter((l) => LIFT_METRICS.includes(l.metric));
  const rowHeight = 26;
  svg.setAttribute("height", Math.max(1, lifts.length) * rowHeight + 24);
  if (!lifts.length) {
    svg.appendChild(el("text", { x: 0, y: 18 }, "No lift yet: no variant besides the control has visitors."));
    return;
  }
  const width = svg.clientWidth || 900;
  const left = 300, right = width - 90;
  const ends = lifts.flatMap((l) => [l.ci_low, l.ci_high, l.estimate]).filter((x) => x !== null);
  const reach = Math.max(0.05, ...ends.map(Math.abs));
  const x = (value) => left + ((value + reach) / (2 * reach)) * (right - left);
  svg.appendChild(el("line", { x1: x(0), x2: x(0), y1: 0, y2: lifts.length * rowHeight, class: "zero" }));
  svg.appendChild(el("text", { x: x(-reach), y: lifts.length * rowHeight + 16 }, pct(-reach)));
  svg.appendChild(el("text", { x: x(0) - 8, y: lifts.length * rowHeight + 16 }, "0"));
  svg.appendChild(el("text", { x: x(reach) - 30, y: lifts.length * rowHeight + 16 }, `+${pct(reach)}`));
  lifts.forEach((lift, i) => {
    const y = i * rowHeight + 4;
    const row = el("g", { "data-variant": lift.variant_id, "data-metric": lift.metric });
    row.appendChild(el("text", { x: 0, y: y + 14 }, `${lift.variant_id}: ${lift.metric}`));
    if (lift.estimate !== null) {
      const significant = lift.p_value !== null && lift.p_value < readout.alpha;
      const kind = significant ? (lift.estimate > 0 ? "lift up" : "lift down") : "lift";
      const from = Math.min(x(0), x(lift.estimate));
      row.appendChild(el("rect", { x: from, y, width: Math.max(1, Math.abs(x(lift.estimate) - x(0))), height: rowHeight - 10, class: kind }));
      if (lift.ci_low !== null) {
        const mid = y + (rowHeight - 10) / 2;
        row.appendChild(el("line", { x1: x(lift.ci_low), x2: x(lift.ci_high), y1: mid, y2: mid, class: "interval" }));
      }
    }
    const detail = lift.ci_low === null
      ? `${pct(lift.estimate)} (${lift.reason || "no interval"})`
      : `${pct(lift.estimate)} [${pct(lift.ci_low)}, ${pct(lift.ci_high)}] p=${fmt(lift.p_value, 3)}`;
    row.appendChild(el("text", { x: right + 4, y: y + 14 }, detail.length > 40 ? pct(lift.estimate) : ""));
    row.appendChild(el("title", {}, detail));
    svg.appendChild(row);
  });
}

async function refreshExperiment() {
  const id = $("experiment").value;
  if (!id) return;
  try {
    const readout = await api(`/v1/experiments/${encodeURIComponent(id)}`);
    drawVariants(readout);
    drawLifts(readout);
    $("srm").textContent = readout.srm.flagged
      ? `Sample-ratio mismatch (p = ${readout.srm.p_value.toExponential(1)}): assignment or logging is broken; do not trust the lifts.`
      : `Traffic split as configured (sample-ratio p = ${fmt(readout.srm.p_value, 3)}); ${readout.excluded.multiple_variants} visitors seen in two variants left out.`;
    $("experiments").dataset.loaded = id;
  } catch (error) {
    showError(error);
  }
}

async function refreshExperiments() {
  try {
    const experiments = await api("/v1/experiments");
    const select = $("experiment");
    const chosen = select.value;
    select.replaceChildren(...experiments.map((e) => el("option", { value: e.experiment_id }, `${e.experiment_id} (${e.status})`)));
    $("experiment-summary").textContent = experiments.length ? "" : "none yet: personalize experiment create, or POST /v1/experiments";
    if (experiments.some((e) => e.experiment_id === chosen)) select.value = chosen;
    await refreshExperiment();
  } catch (error) {
    showError(error);
  }
}

$("experiment").addEventListener("change", refreshExperiment);
keyInput.addEventListener("change", refreshExperiments);
refreshExperiments();
setInterval(refreshExperiment, 10000);
