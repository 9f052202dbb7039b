/* personalize.js: the browser tracker of `personalize serve`, see docs/browser.md */
(() => {
"use strict";
const w = window, d = document, P = "pz_";
const origin = d.currentScript ? new URL(d.currentScript.src).origin : location.origin;
const FIELDS = new Set(["user_id", "page_url", "page_path", "page_title", "referrer",
  "search_query", "filters", "items", "order_id", "revenue", "currency", "engagement_ms",
  "scroll_depth_pct", "media_progress_pct", "event_type", "rec_id"]);
const TYPES = { page_ping: "engagement", scroll_depth: "engagement" };
const ACTIVITY = ["mousemove", "pointerdown", "keydown", "scroll"];
let cfg = null, consent = "granted", buf = [], held = [], mem = [], timer = 0, retry = 0;
let backoff = 0, aid = null, sid = null, uid = null, lastAct = 0, lastTick = 0, active = 0;
let maxScroll = 0, sentScroll = 0;
const media = new WeakMap();

const hex = (n) => Array.from(crypto.getRandomValues(new Uint8Array(n)),
  (b) => b.toString(16).padStart(2, "0")).join("");
const now = () => Date.now();
const store = (() => { try { return w.localStorage; } catch { return null; } })();
const optedOut = () => { try { return !!store?.getItem(P + "optout"); } catch { return false; } };
const may = () => consent === "granted" && !optedOut();
const get = (k) => { try { return store?.getItem(P + k) ?? null; } catch { return null; } };
const put = (k, v) => { /* full or blocked: the value lives in memory */
  try { if (v == null) store?.removeItem(P + k); else if (may()) store?.setItem(P + k, v); } catch {}
};
const cookie = (k) => (d.cookie.match(new RegExp("(?:^|; )" + P + k + "=([^;]*)")) || [])[1];
const setCookie = (k, v, age) => {
  d.cookie = `${P}${k}=${v}; Max-Age=${age}; Path=/; SameSite=Lax${location.protocol === "https:" ? "; Secure" : ""}`;
};
const num = (v) => (v && !isNaN(v) ? +v : undefined);

function anonymousId() {
  aid = aid || cookie("aid") || get("aid") || hex(16);
  if (may()) { put("aid", aid); setCookie("aid", aid, 31536000); }
  return aid;
}

function sessionId() {
  let s = sid;
  if (!s) { try { s = JSON.parse(get("sid")); } catch { s = null; } }
  if (!s || now() - s.t > cfg.sessionMinutes * 60000) s = { id: hex(16), t: 0 };
  s.t = now();
  sid = s;
  put("sid", JSON.stringify(s));
  return s.id;
}

/* rec_id of the list an item was clicked in (sessionStorage, for the next page's events). */
function recOf(itemId, recId) {
  let recs = {};
  try { recs = JSON.parse(sessionStorage.getItem(P + "rec")) || {}; } catch {}
  if (recId === undefined) return recs[itemId];
  recs[itemId] = recId;
  if (Object.keys(recs).length > 50) delete recs[Object.keys(recs)[0]];
  try { if (may()) sessionStorage.setItem(P + "rec", JSON.stringify(recs)); } catch {}
}

function build(name, props) {
  const q = new URLSearchParams(location.search);
  const e = {
    source: "browser", event_id: hex(16), event_name: name, event_type: TYPES[name] || name,
    event_ts: new Date().toISOString(), anonymous_id: anonymousId(), session_id: sessionId(),
    page_url: location.href, page_path: location.pathname, page_title: d.title || null,
    referrer: d.referrer || null, properties: {},
  };
  if (uid) e.user_id = uid;
  for (const k of ["source", "medium", "campaign", "term", "content"]) {
    if (q.get("utm_" + k)) e["utm_" + k] = q.get("utm_" + k);
  }
  for (const [k, v] of Object.entries(props || {})) {
    if (v === undefined) continue;
    if (FIELDS.has(k)) e[k] = v; else e.properties[k] = v;
  }
  const first = e.items?.[0]?.item_id;
  if (first && e.rec_id === undefined && recOf(first)) e.rec_id = recOf(first);
  return e;
}

function track(name, props) {
  if (!cfg || optedOut() || consent === "denied") return null;
  const e = build(name, props);
  if (consent !== "granted") { if (held.length < 100) held.push(e); return e; }
  buf.push(e);
  if (buf.length >= cfg.batchSize) flush();
  else if (!timer) timer = setTimeout(flush, cfg.flushMs);
  return e;
}

const url = (path) => cfg.endpoint + path +
  (cfg.writeKey ? "&writeKey=" + encodeURIComponent(cfg.writeKey) : "");
const EVENTS = "/v1/events?partial=true";

/* The retry queue: localStorage when allowed (it outlives the page), else memory. */
function queued() { try { return JSON.parse(get("q")) || []; } catch { return []; } }
function save(batch) {
  const all = (store && may() ? queued() : mem).concat(batch).slice(-cfg.queueMax);
  if (store && may()) {
    try { store.setItem(P + "q", JSON.stringify(all)); mem = []; } catch { mem = all; }
  } else mem = all;
  backoff = Math.min((backoff || cfg.retrySeconds * 500) * 2, 300000);
  clearTimeout(retry);
  retry = setTimeout(resend, backoff);
}
function resend() {
  if (!may() || (navigator.onLine === false)) return;
  const all = queued().concat(mem);
  put("q", null);
  mem = [];
  for (let i = 0; i < all.length; i += cfg.batchSize) post(all.slice(i, i + cfg.batchSize));
}

async function post(batch) {
  try {
    const r = await fetch(url(EVENTS), {
      method: "POST", body: JSON.stringify(batch), keepalive: true, credentials: "omit",
      headers: { "content-type": "text/plain" },
    });
    if (r.status === 429 || r.status >= 500) throw new Error(r.status);
    if (!r.ok) console.warn("personalize: events refused", r.status, await r.text());
    backoff = 0;
  } catch { save(batch); }
}

/* On page hide (leaving) by sendBeacon, else (or if the beacon is refused) by fetch. */
function flush(leaving) {
  clearTimeout(timer);
  timer = 0;
  const posts = [];
  while (may() && buf.length) {
    const batch = buf.splice(0, cfg.batchSize);
    const blob = new Blob([JSON.stringify(batch)], { type: "text/plain" });
    if (!(leaving === true && navigator.sendBeacon?.(url(EVENTS), blob))) posts.push(post(batch));
  }
  return Promise.all(posts);
}
function hide() {
  if (maxScroll > sentScroll) track("scroll_depth", { scroll_depth_pct: (sentScroll = maxScroll) });
  flush(true);
}

function scrolled() {
  const h = Math.max(d.documentElement.scrollHeight, d.body?.scrollHeight || 0);
  const pct = h ? Math.min(100, Math.round(((w.scrollY + w.innerHeight) / h) * 100)) : 100;
  if (pct > maxScroll) maxScroll = pct;
}

/* Snowplow's page pings: the first after minVisit seconds, then every heartbeat seconds,
   each only if the page is visible and the visitor was active since the previous one. */
function tick() {
  const t = now(), span = t - lastTick;
  lastTick = t;
  if (d.visibilityState === "visible" && lastAct >= t - span) {
    active += span;
    sentScroll = maxScroll;
    track("page_ping", { engagement_ms: span, scroll_depth_pct: maxScroll, active_ms: active });
  }
  setTimeout(tick, cfg.heartbeat * 1000);
}

function onMedia(ev) {
  const m = ev.target;
  if (!(m instanceof HTMLMediaElement && m.duration > 0 && isFinite(m.duration))) return;
  const pct = ev.type === "ended" ? 100 : (m.currentTime / m.duration) * 100;
  const done = media.get(m) || new Set();
  media.set(m, done);
  for (const step of [25, 50, 75, 100]) {
    if (pct >= step - (step === 100 ? 0.5 : 0) && !done.has(step)) {
      done.add(step);
      track("media_progress", { media_progress_pct: step, items: itemsOf(m), media_src: m.currentSrc.slice(0, 200) });
    }
  }
}

/* Items from data-personalize-* attributes of an element or its nearest item ancestor. */
function itemsOf(el) {
  const list = el.closest?.("[data-personalize-items]")?.dataset.personalizeItems;
  if (list) { try { return JSON.parse(list); } catch { return []; } }
  const at = el.closest?.("[data-personalize-item]");
  if (!at) return undefined;
  const a = at.dataset, item = { item_id: a.personalizeItem };
  for (const k of ["name", "category", "brand", "variant", "price", "quantity", "position"]) {
    const v = a["personalize" + k[0].toUpperCase() + k.slice(1)];
    if (v) item[k] = k[0] === "p" ? num(v) : v;
  }
  return [item];
}

function onClick(ev) {
  const el = ev.target instanceof Element ? ev.target : null;
  const list = el?.closest("[data-personalize-rec-id]");
  const at = el?.closest("[data-personalize-item]");
  if (list && at && list.contains(at)) {
    const rec = list.dataset.personalizeRecId;
    recOf(at.dataset.personalizeItem, rec);
    track("recommendation_click", { rec_id: rec, items: itemsOf(at) });
  }
  const tagged = el?.closest("[data-personalize-event]");
  if (tagged) {
    const a = tagged.dataset;
    track(a.personalizeEvent, {
      items: itemsOf(tagged), order_id: a.personalizeOrder,
      revenue: num(a.personalizeRevenue), currency: a.personalizeCurrency,
    });
  }
}

function page(props) {
  const e = track("page_view", props);
  for (const el of d.querySelectorAll("[data-personalize-view]")) {
    track(el.dataset.personalizeView || "product_view", { items: itemsOf(el) });
  }
  return e;
}

function init(options) {
  if (cfg) return api;
  cfg = Object.assign({
    endpoint: origin, writeKey: null, consent: "granted", batchSize: 20, flushMs: 2000,
    minVisit: 10, heartbeat: 10, sessionMinutes: 30, queueMax: 500, retrySeconds: 5,
    pageView: true,
  }, options);
  cfg.endpoint = (cfg.endpoint || origin).replace(/\/$/, "");
  consent = cfg.consent;
  uid = get("uid");
  const mark = () => { lastAct = now(); };
  for (const t of ACTIVITY) w.addEventListener(t, mark, { passive: true, capture: true });
  w.addEventListener("scroll", scrolled, { passive: true });
  for (const [t, f] of [["timeupdate", onMedia], ["ended", onMedia], ["click", onClick]]) {
    d.addEventListener(t, f, true);
  }
  d.addEventListener("visibilitychange", () => { if (d.visibilityState === "hidden") hide(); });
  w.addEventListener("pagehide", hide);
  w.addEventListener("online", resend);
  scrolled();
  lastTick = now();
  setTimeout(tick, cfg.minVisit * 1000);
  if (cfg.pageView) page();
  resend();
  return api;
}

function setConsent(state) {
  consent = state;
  if (consent === "granted") { buf.push(...held); held = []; anonymousId(); flush(); }
  if (consent === "denied") { held = []; buf = []; }
}

function optOut() {
  try { store?.setItem(P + "optout", "1"); } catch {}
  buf = []; held = []; mem = [];
  put("q", null);
  forget();
}
function forget() {
  for (const k of ["aid", "sid", "uid"]) put(k, null);
  setCookie("aid", "", 0);
  try { sessionStorage.removeItem(P + "rec"); } catch {}
  aid = sid = uid = null;
}

/* A list from /v1/recommendations, rendered into container; views and clicks tracked. */
async function recommend(o = {}) {
  await flush(); /* the list reflects the events so far */
  const q = new URLSearchParams({ session_id: sessionId(), anonymous_id: anonymousId(), k: o.k || 8 });
  for (const k of ["category", "brand", "objectives", "experiment"]) if (o[k]) q.set(k, o[k]);
  if (o.exclude_seen) q.set("exclude_seen", "true");
  const r = await fetch(url("/v1/recommendations?" + q), { credentials: "omit" });
  if (!r.ok) throw new Error(`personalize: recommendations answered ${r.status}`);
  const body = await r.json(), items = body.items || [], recId = body.rec_id || hex(16);
  const box = typeof o.container === "string" ? d.querySelector(o.container) : o.container;
  if (box) {
    box.dataset.personalizeRecId = recId;
    box.replaceChildren(...items.map((it, i) => {
      const el = d.createElement(o.tag || "li");
      el.dataset.personalizeItem = it.item_id;
      el.dataset.personalizePosition = i + 1;
      if (o.template) el.innerHTML = o.template(it, i);
      else el.textContent = it.item_id;
      return el;
    }));
  }
  track("recommendation_view", {
    rec_id: recId, item_ids: items.map((it) => it.item_id), experiment: o.experiment,
  });
  return { rec_id: recId, items };
}

const api = {
  init, track, page, flush, recommend, optOut, consent: setConsent,
  identify(id) { uid = id == null ? null : "" + id; put("uid", uid); },
  reset() { forget(); },
  optIn() { try { store?.removeItem(P + "optout"); } catch {} },
  ids: () => ({ anonymous_id: aid, session_id: sid?.id ?? null, user_id: uid }),
};
w.personalize = api;
})();
