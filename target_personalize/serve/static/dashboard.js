// The dashboard: funnel chart, event weights, objective sliders over a live ranking, counter.
// Plain browser JavaScript, no build step; every number comes from the JSON API.
"use strict";

const $ = (id) => document.getElementById(id);
const keyInput = $("api-key");
keyInput.value = sessionStorage.getItem("personalize-key") || "";
keyInput.addEventListener("change", () => {
  sessionStorage.setItem("personalize-key", keyInput.value);
  refreshAll();
});

async function api(path, options = {}) {
  const headers = { ...(options.headers || {}) };
  if (keyInput.value) headers["X-API-Key"] = keyInput.value;
  const response = await fetch(path, { ...options, headers });
  if (!response.ok) {
    const body = await response.json().catch(() => ({}));
    const detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
    throw new Error(`${path}: ${response.status} ${detail || ""}`);
  }
  return response.json();
}

function showError(error) {
  $("error").textContent = error ? String(error.message || error) : "";
}

function fmt(x, digits = 3) {
  return x === null || x === undefined ? "" : Number(x).toFixed(digits);
}

function el(tag, attrs = {}, text = "") {
  const node = document.createElementNS(tag === "svg" || ["rect", "text", "g", "line", "title", "circle", "polyline"].includes(tag)
    ? "http://www.w3.org/2000/svg" : "http://www.w3.org/1999/xhtml", tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text) node.textContent = text;
  return node;
}

function drawFunnel(funnel) {
  const svg = $("funnel-chart");
  svg.replaceChildren();
  const steps = funnel.steps || [];
  $("funnel-summary").textContent =
    `${funnel.conversion}: ${funnel.converters} of ${funnel.units} ${funnel.unit}s converted (base rate ${fmt(funnel.base_rate)})`;
  if (!steps.length) {
    svg.appendChild(el("text", { x: 10, y: 20 }, "No funnel yet: the store holds no conversions."));
    return;
  }
  const width = svg.clientWidth || 900;
  const rowHeight = Math.min(40, 200 / steps.length);
  svg.setAttribute("height", rowHeight * steps.length + 10);
  const top = Math.max(...steps.map((s) => s.funnel_units || s.units || 0), 1);
  steps.forEach((step, i) => {
    const reach = step.funnel_units ?? step.units ?? 0;
    const barWidth = Math.max(2, ((width - 420) * reach) / top);
    const y = i * rowHeight + 4;
    const isConv = i === steps.length - 1;
    svg.appendChild(el("text", { x: 0, y: y + rowHeight * 0.6 }, step.event_type || step.name));
    svg.appendChild(el("rect", { x: 150, y, width: barWidth, height: rowHeight - 8, class: isConv ? "bar conv" : "bar" }));
    const drop = step.drop_off === null || step.drop_off === undefined ? "" : `, drop-off ${(100 * step.drop_off).toFixed(1)}%`;
    svg.appendChild(el("text", { x: 156 + barWidth, y: y + rowHeight * 0.6 }, `${reach} ${funnel.unit}s${drop}`));
  });
}

function drawWeights(mined, ranker) {
  const body = $("weights").querySelector("tbody");
  body.replaceChildren();
  const names = [...new Set([...Object.keys(mined || {}), ...Object.keys(ranker || {})])];
  names.sort((a, b) => ((mined || {})[b] ?? ranker[b] ?? 0) - ((mined || {})[a] ?? ranker[a] ?? 0));
  for (const name of names) {
    const tr = document.createElement("tr");
    tr.append(el("td", {}, name), el("td", { class: "num" }, fmt((mined || {})[name], 2)), el("td", { class: "num" }, fmt(ranker[name], 2)));
    body.appendChild(tr);
  }
}

let rankingSeq = 0;
async function refreshRanking() {
  const visitor = $("visitor").value.trim();
  if (!visitor) return;
  const seq = ++rankingSeq;
  const conversion = $("w-conversion").value;
  const margin = $("w-margin").value;
  $("o-conversion").textContent = conversion;
  $("o-margin").textContent = margin;
  // experiment "-": a preview, outside every experiment (not assigned, not recorded).
  const query = new URLSearchParams({ [$("who").value]: visitor, k: "10", objectives: `conversion:${conversion},margin:${margin}`, experiment: "-" });
  try {
    const answer = await api(`/v1/recommendations?${query}`);
    if (seq !== rankingSeq) return; // a newer slider position already asked
    const body = $("ranking");
    body.replaceChildren();
    answer.items.forEach((item, i) => {
      const tr = document.createElement("tr");
      tr.dataset.item = item.item_id;
      tr.append(el("td", {}, String(i + 1)), el("td", {}, item.item_id), el("td", { class: "num" }, fmt(item.score, 4)),
        el("td", { class: "num" }, fmt(item.relevance)), el("td", { class: "num" }, fmt(item.conversion)), el("td", { class: "num" }, fmt(item.value, 2)));
      body.appendChild(tr);
    });
    body.dataset.objectives = `${conversion},${margin}`;
    showError(null);
  } catch (error) {
    showError(error);
  }
}

async function refreshCounter() {
  try {
    const stats = await api("/v1/stats");
    $("counter").textContent = stats.store_events.toLocaleString();
    const refit = stats.model_refreshed_at
      ? `model refitted ${stats.model_refreshes} times, last at ${new Date(stats.model_refreshed_at * 1000).toLocaleTimeString()}`
      : "model not refitted since the server started";
    $("counter-detail").textContent =
      `events in the store; ${stats.events_last_minute} received in the last minute, ${stats.events_stored} since the server started; ${refit}`;
  } catch (error) {
    showError(error);
  }
}

async function refreshAll() {
  try {
    const model = await api("/v1/model");
    $("model").textContent = `${model.ranker} over ${model.items} items, ${model.sessions} sessions; key conversion ${model.key_conversion}`;
    if (!$("visitor").value && model.sample_session) $("visitor").value = model.sample_session;
    $("w-conversion").value = model.objectives.conversion;
    $("w-margin").value = model.objectives.margin;
    await refreshRanking();
    const funnel = await api("/v1/funnel");
    drawFunnel(funnel);
    drawWeights(funnel.event_weights, model.event_weights);
    showError(null);
  } catch (error) {
    showError(error);
  }
  refreshCounter();
}

for (const id of ["w-conversion", "w-margin"]) $(id).addEventListener("input", refreshRanking);
$("visitor").addEventListener("change", refreshRanking);
$("who").addEventListener("change", refreshRanking);
$("save-objectives").addEventListener("click", async () => {
  try {
    const saved = await api("/v1/objectives", {
      method: "PUT",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ conversion: Number($("w-conversion").value), margin: Number($("w-margin").value) }),
    });
    $("saved").textContent = `saved: conversion ${saved.conversion}, margin ${saved.margin}`;
    if (typeof refreshTradeoff === "function") refreshTradeoff(); // ring the new setting
  } catch (error) {
    showError(error);
  }
});
refreshAll();
setInterval(refreshCounter, 2000);
