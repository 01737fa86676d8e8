// The try-it page: plain DOM, no build step. Every id and title from the API is put in
// the page with textContent (never innerHTML), so markup in them shows as text.
"use strict";

const state = { ratings: new Map(), titles: new Map(), scale: [1, 5], searchSeq: 0, recSeq: 0 };
const $ = (id) => document.getElementById(id);

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  return node;
}

function label(item, title) {
  return title ? title : "item " + item;
}

async function api(method, path, body) {
  const init = { method, headers: {} };
  if (body !== undefined) {
    init.headers["content-type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const answer = await fetch(path, init);
  const data = await answer.json().catch(() => ({}));
  if (!answer.ok) throw new Error(data.error || answer.status + " " + answer.statusText);
  return data;
}

function showError(error) {
  $("error").textContent = error ? String(error.message || error) : "";
}

function ratingButtons(item) {
  const span = el("span", null, "rating");
  const [low, high] = state.scale;
  for (let value = Math.ceil(low); value <= Math.floor(high) && value - low < 10; value++) {
    const button = el("button", value, "rate");
    button.type = "button";
    button.dataset.value = String(value);
    if (state.ratings.get(item) === value) button.classList.add("on");
    button.addEventListener("click", () => rate(item, value));
    span.appendChild(button);
  }
  return span;
}

function itemLine(entry, withScore) {
  const li = el("li");
  li.dataset.item = String(entry.item);
  const title = el("span", label(entry.item, entry.title), "title");
  title.title = "show similar items";
  title.addEventListener("click", () => similar(entry.item));
  li.appendChild(title);
  if (withScore) li.appendChild(el("span", entry.score.toFixed(2), "score"));
  li.appendChild(ratingButtons(entry.item));
  return li;
}

async function search() {
  const query = $("search").value.trim();
  const seq = ++state.searchSeq;
  const list = $("results");
  if (!query) { list.replaceChildren(); return; }
  try {
    const data = await api("GET", "/items?limit=15&q=" + encodeURIComponent(query));
    if (seq !== state.searchSeq) return;  // a newer search is under way
    data.items.forEach((hit) => state.titles.set(hit.item, hit.title));
    list.replaceChildren(...data.items.map((hit) => itemLine(hit, false)));
    list.dataset.query = query;
    showError(null);
  } catch (error) { showError(error); }
}

function rate(item, value) {
  state.ratings.set(item, value);
  renderRated();
  refresh(item);
}

function unrate(item) {
  state.ratings.delete(item);
  renderRated();
  refresh(null);
}

function renderRated() {
  const list = $("rated");
  list.replaceChildren(...[...state.ratings].map(([item, value]) => {
    const li = el("li");
    li.dataset.item = String(item);
    li.appendChild(el("span", label(item, state.titles.get(item)), "title"));
    li.appendChild(el("span", "rated " + value, "score"));
    const remove = el("button", "×", "remove");
    remove.type = "button";
    remove.title = "forget this rating";
    remove.addEventListener("click", () => unrate(item));
    li.appendChild(remove);
    return li;
  }));
  $("rated-empty").hidden = state.ratings.size > 0;
  // keep the buttons of search results in step
  document.querySelectorAll("#results li, #recs li, #similar li").forEach((li) => {
    const item = [...state.titles.keys()].find((key) => String(key) === li.dataset.item);
    const old = li.querySelector(".rating");
    if (old && item !== undefined) old.replaceWith(ratingButtons(item));
  });
}

async function refresh(lastRated) {
  const seq = ++state.recSeq;
  const status = $("recs-status");
  if (state.ratings.size === 0) {
    $("recs").replaceChildren();
    status.textContent = "rate an item to start";
    return;
  }
  status.textContent = "folding in " + state.ratings.size + " rating(s)…";
  const ratings = {};
  state.ratings.forEach((value, item) => { ratings[String(item)] = value; });
  try {
    const data = await api("POST", "/recommendations", { ratings, n: 10 });
    if (seq !== state.recSeq) return;
    data.items.forEach((entry) => state.titles.set(entry.item, entry.title));
    $("recs").replaceChildren(...data.items.map((entry) => itemLine(entry, true)));
    status.textContent = data.items.length + " recommendations from " + state.ratings.size +
      " rating(s)" + (data.ignored_items.length ? " (" + data.ignored_items.length +
      " unknown to the model)" : "");
    showError(null);
  } catch (error) { showError(error); status.textContent = "no recommendations"; }
  if (lastRated !== null) similar(lastRated);
}

async function similar(item) {
  try {
    const data = await api("GET", "/items/" + encodeURIComponent(String(item)) + "/similar?n=10");
    data.items.forEach((entry) => state.titles.set(entry.item, entry.title));
    $("similar-heading").textContent = "Similar to " + label(data.item, data.title);
    $("similar").replaceChildren(...data.items.map((entry) => itemLine(entry, true)));
    $("similar-status").textContent = "";
    showError(null);
  } catch (error) { showError(error); }
}

async function start() {
  try {
    const info = await api("GET", "/model");
    state.scale = info.rating_scale;
    $("model").textContent = info.model_class + " · " + info.n_users.toLocaleString() +
      " users · " + info.n_items.toLocaleString() + " items · " + info.n_factors +
      " factors · version " + info.version;
  } catch (error) { showError(error); }
  let timer = null;
  $("search").addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(search, 150);
  });
  document.body.dataset.ready = "true";
}

start();
