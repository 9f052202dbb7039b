/* The demo shop: hash routes over /demo/catalog.json, events and lists through personalize.js. */
"use strict";
const shop = { items: [], byId: {}, cart: JSON.parse(localStorage.getItem("demo_cart") || "[]") };
const view = document.getElementById("view");
const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const nameOf = (item) => item.name || `Item ${item.item_id}`;
const price = (item) => (item.price == null ? "" : `${Number(item.price).toFixed(2)}`);

function card(item) {
  return `<a class="card" href="#/p/${encodeURIComponent(item.item_id)}">
    <div>${esc(nameOf(item))}</div>
    <div class="muted">${esc(item.category || "")}</div>
    <div class="price">${esc(price(item))}</div></a>`;
}

function attributes(item) {
  const pairs = { item: item.item_id, name: item.name, category: item.category,
    brand: item.brand, price: item.price };
  return Object.entries(pairs).filter(([, v]) => v != null)
    .map(([k, v]) => `data-personalize-${k}="${esc(v)}"`).join(" ");
}

function listing(items, title) {
  view.innerHTML = `<h1>${esc(title)}</h1><div class="grid">${items.slice(0, 48).map(card).join("")}</div>`;
}

function product(id) {
  const item = shop.byId[id] || { item_id: id };
  view.innerHTML = `<div class="product" data-personalize-view ${attributes(item)}>
    <h1>${esc(nameOf(item))}</h1>
    <p class="muted">${esc(item.category || "")} ${esc(item.brand || "")}</p>
    <p class="price">${esc(price(item))}</p>
    <button id="add" data-personalize-event="add_to_cart">Add to cart</button></div>`;
  document.getElementById("add").onclick = () => {
    shop.cart.push(item);
    saveCart();
  };
}

function cartPage() {
  const total = shop.cart.reduce((sum, item) => sum + (Number(item.price) || 0), 0);
  const items = shop.cart.map((item) => ({ item_id: item.item_id, price: item.price, quantity: 1 }));
  view.innerHTML = `<h1>Cart</h1><div class="grid">${shop.cart.map(card).join("")}</div>
    <p>Total ${total.toFixed(2)}</p>
    ${shop.cart.length ? `<button id="buy" data-personalize-event="purchase"
      data-personalize-revenue="${total}" data-personalize-order="demo-${Date.now()}"
      data-personalize-items='${esc(JSON.stringify(items))}'>Buy</button>` : ""}`;
  const buy = document.getElementById("buy");
  if (buy) buy.onclick = () => { shop.cart = []; saveCart(); setTimeout(cartPage); };
}

function saveCart() {
  localStorage.setItem("demo_cart", JSON.stringify(shop.cart));
  document.getElementById("cart-count").textContent = shop.cart.length;
}

async function refresh() {
  const old = new Set([...document.querySelectorAll("#recs li")].map((li) => li.dataset.personalizeItem));
  await personalize.recommend({
    k: 8, container: "#recs", exclude_seen: true,
    template: (it) => { const item = shop.byId[it.item_id] || it;
      return `<a href="#/p/${encodeURIComponent(it.item_id)}">${esc(nameOf(item))}</a>
        <span class="muted">${esc(price(item))}</span>`; },
  });
  for (const li of document.querySelectorAll("#recs li")) {
    if (!old.has(li.dataset.personalizeItem)) li.classList.add("fresh");
  }
}

function route() {
  const [, kind, arg] = location.hash.split("/").map(decodeURIComponent);
  if (kind === "p") product(arg);
  else if (kind === "c") listing(shop.items.filter((item) => item.category === arg), arg);
  else if (kind === "cart") cartPage();
  else listing(shop.items, "Most viewed");
  personalize.page({ page_title: document.title });
  refresh().catch((error) => { document.getElementById("recs").textContent = error.message; });
  window.scrollTo(0, 0);
}

async function start() {
  personalize.init({ pageView: false, flushMs: 500 });
  shop.items = await (await fetch("catalog.json")).json();
  for (const item of shop.items) shop.byId[item.item_id] = item;
  const categories = [...new Set(shop.items.map((item) => item.category).filter(Boolean))].slice(0, 12);
  document.getElementById("categories").innerHTML = categories
    .map((c) => `<a href="#/c/${encodeURIComponent(c)}">${esc(c)}</a>`).join("");
  saveCart();
  window.addEventListener("hashchange", route);
  route();
}

start();
