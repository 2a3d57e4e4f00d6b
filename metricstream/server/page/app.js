// The event store's query page. Every value shown goes through textContent
// (or a text node): nothing from the server or the editor is parsed as HTML.
"use strict";

const EXAMPLE = {
  data: [
    {
      name: "product_view",
      filters: [{ type: "eq", key: "event_tag", value: "product_view" }],
      unique: ["user_id"],
      series: { bucket: "hour" },
    },
    {
      name: "purchase",
      filters: [{ type: "eq", key: "event_tag", value: "purchase" }],
      unique: ["user_id"],
    },
  ],
  funnel: { type: "exact_order", order: ["product_view", "purchase"], match: ["user_id"] },
};

const $ = (id) => document.getElementById(id);

function el(tag, attributes, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes || {})) node.setAttribute(name, value);
  for (const child of children) {
    // Nodes are appended as they are; anything else becomes a text node.
    node.append(child instanceof Node ? child : String(child === null || child === undefined ? "" : child));
  }
  return node;
}

function svg(tag, attributes) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [name, value] of Object.entries(attributes || {})) node.setAttribute(name, value);
  return node;
}

function shown(value) {
  if (typeof value === "number") return value.toLocaleString("en-US");
  return value === null || value === undefined ? "-" : String(value);
}

function percent(value) {
  return (value * 100).toFixed(1) + "%";
}

async function api(path, body) {
  const options = { credentials: "same-origin", headers: {} };
  if (body !== undefined) {
    options.method = "POST";
    options.headers["Content-Type"] = "application/json";
    options.body = typeof body === "string" ? body : JSON.stringify(body);
  }
  const response = await fetch(path, options);
  let answer = null;
  try {
    answer = await response.json();
  } catch (error) {
    answer = { error: "the server answered " + response.status };
  }
  return { status: response.status, body: answer };
}

// ---- validation as one types ------------------------------------------------

let validationTimer = null;
let validationRound = 0;

function setValidation(kind, text) {
  const node = $("validation");
  node.className = kind;
  node.textContent = text;
}

function scheduleValidation() {
  clearTimeout(validationTimer);
  validationTimer = setTimeout(validate, 250);
}

async function validate() {
  const round = ++validationRound;
  const text = $("editor").value;
  if (!text.trim()) return setValidation("pending", "type a query document");
  try {
    JSON.parse(text);
  } catch (error) {
    return setValidation("invalid", "not JSON: " + error.message);
  }
  const answer = await api("/query/validate", text);
  if (round !== validationRound) return;
  if (answer.status !== 200) return setValidation("invalid", answer.body.error || "cannot check it");
  if (answer.body.valid) return setValidation("valid", "valid");
  setValidation("invalid", (answer.body.path ? answer.body.path + ": " : "") + answer.body.error);
}

// ---- key and value autocomplete ---------------------------------------------

const KEY_AT = /"key"\s*:\s*"([^"\\]*)$/;
const KEY_IN_LIST = /"(?:unique|keys|match)"\s*:\s*\[[^\]]*"([^"\\]*)$/;
const VALUE_AT = /"key"\s*:\s*"((?:[^"\\]|\\.)*)"\s*,\s*(?:"type"\s*:\s*"[^"]*"\s*,\s*)?"value"\s*:\s*(?:\[[^\]]*)?"([^"\\]*)$/;

let suggestion = { items: [], chosen: 0, prefix: "", round: 0 };

function context(before) {
  let match = VALUE_AT.exec(before);
  if (match) return { kind: "value", key: JSON.parse('"' + match[1] + '"'), prefix: match[2] };
  match = KEY_AT.exec(before) || KEY_IN_LIST.exec(before);
  if (match) return { kind: "key", prefix: match[1] };
  return null;
}

async function suggest() {
  const editor = $("editor");
  const found = context(editor.value.slice(0, editor.selectionStart));
  const round = ++suggestion.round;
  if (!found) return hideSuggestions();
  const query = "prefix=" + encodeURIComponent(found.prefix) + "&limit=20";
  const answer = found.kind === "key"
    ? await api("/keys?" + query)
    : await api("/keys/" + encodeURIComponent(found.key) + "/values?" + query);
  if (round !== suggestion.round || answer.status !== 200) return;
  const items = found.kind === "key"
    ? answer.body.keys.map((item) => ({ text: item.key, count: item.count }))
    : answer.body.values
        .filter((item) => typeof item.value === "string")
        .map((item) => ({ text: item.value, count: item.count }));
  suggestion = { items, chosen: 0, prefix: found.prefix, round };
  renderSuggestions();
}

function renderSuggestions() {
  const list = $("suggestions");
  list.replaceChildren();
  suggestion.items.forEach((item, index) => {
    const row = el("li", { role: "option", "aria-selected": String(index === suggestion.chosen) },
      el("span", { class: "text" }, item.text), el("span", { class: "count" }, shown(item.count)));
    row.addEventListener("mousedown", (event) => { event.preventDefault(); accept(index); });
    list.append(row);
  });
  list.hidden = suggestion.items.length === 0;
}

function hideSuggestions() {
  suggestion.items = [];
  $("suggestions").hidden = true;
}

function accept(index) {
  const editor = $("editor");
  const item = suggestion.items[index];
  if (!item) return;
  const at = editor.selectionStart;
  const text = JSON.stringify(item.text).slice(1, -1);
  const start = at - suggestion.prefix.length;
  editor.setRangeText(text, start, at, "end");
  hideSuggestions();
  scheduleValidation();
}

function onKey(event) {
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
    event.preventDefault();
    return run();
  }
  if ($("suggestions").hidden) return;
  if (event.key === "ArrowDown" || event.key === "ArrowUp") {
    event.preventDefault();
    const step = event.key === "ArrowDown" ? 1 : -1;
    suggestion.chosen = (suggestion.chosen + step + suggestion.items.length) % suggestion.items.length;
    renderSuggestions();
  } else if (event.key === "Tab" || event.key === "Enter") {
    event.preventDefault();
    accept(suggestion.chosen);
  } else if (event.key === "Escape") {
    hideSuggestions();
  }
}

// ---- the answer ---------------------------------------------------------------

function renderSets(data) {
  const keys = [];
  for (const item of Object.values(data)) {
    for (const key of Object.keys(item.unique)) if (!keys.includes(key)) keys.push(key);
  }
  const head = $("sets-head");
  head.replaceChildren(el("th", {}, "set"), el("th", { class: "num" }, "count"),
    el("th", { class: "num" }, "weighted count"),
    ...keys.map((key) => el("th", { class: "num" }, "unique " + key)));
  const body = $("sets-body");
  body.replaceChildren();
  for (const [name, item] of Object.entries(data)) {
    const row = el("tr", { "data-set": name }, el("td", { "data-column": "set" }, name));
    row.append(el("td", { class: "num", "data-column": "count" }, shown(item.count)));
    row.append(el("td", { class: "num", "data-column": "weighted_count" }, shown(item.weighted_count)));
    for (const key of keys) {
      const value = key in item.unique ? shown(item.unique[key]) : "";
      row.append(el("td", { class: "num", "data-column": "unique:" + key }, value));
    }
    body.append(row);
  }
  $("sets").hidden = false;
}

function renderBreakdowns(data) {
  const holder = $("breakdowns");
  holder.replaceChildren();
  for (const [name, item] of Object.entries(data)) {
    if (!item.breakdown) continue;
    const table = el("table", { class: "breakdown", "data-set": name });
    table.append(el("caption", {}, name + " by value"));
    for (const row of item.breakdown) {
      const line = el("tr");
      line.append(el("td", { "data-column": "values" }, row.values.map(String).join(", ")));
      line.append(el("td", { class: "num", "data-column": "count" }, shown(row.count)));
      table.append(line);
    }
    holder.append(table);
  }
}

function renderFunnel(steps) {
  const box = $("funnel");
  const list = $("funnel-steps");
  list.replaceChildren();
  if (!steps) { box.hidden = true; return; }
  const first = steps.length ? steps[0].count : 0;
  for (const step of steps) {
    const bar = el("div", { class: "bar" });
    bar.style.width = (first ? (100 * step.count) / first : 0) + "%";
    const label = shown(step.count) + " (" + percent(step.conversion) + ")";
    list.append(el("li", { "data-step": step.step }, el("span", { class: "step-name" }, step.step)));
    list.lastChild.append(el("div", { class: "track" }), el("span", { class: "conversion" }, label));
    list.lastChild.children[1].append(bar);
  }
  box.hidden = false;
}

function renderSeries(data) {
  const holder = $("series");
  holder.replaceChildren();
  for (const [name, item] of Object.entries(data)) {
    if (!item.series || !item.series.length) continue;
    const width = 600, height = 160, pad = 24;
    const top = Math.max(...item.series.map((point) => point.count), 1);
    const chart = svg("svg", { class: "chart", viewBox: `0 0 ${width} ${height}`, "data-set": name });
    const step = item.series.length > 1 ? (width - 2 * pad) / (item.series.length - 1) : 0;
    const points = item.series.map((point, index) =>
      `${pad + index * step},${height - pad - ((height - 2 * pad) * point.count) / top}`);
    chart.append(svg("polyline", { points: points.join(" ") }));
    const caption = svg("text", { x: pad, y: 14 });
    caption.textContent = name + ": events per bucket (max " + shown(top) + ")";
    const start = svg("text", { x: pad, y: height - 6 });
    start.textContent = item.series[0].start;
    chart.append(caption, start);
    holder.append(el("h3", {}, name + " over time"), chart);
  }
}

async function run() {
  const status = $("run-status");
  let documentText = $("editor").value;
  try {
    JSON.parse(documentText);
  } catch (error) {
    status.className = "error";
    status.textContent = "not JSON: " + error.message;
    return;
  }
  status.className = "";
  status.textContent = "running…";
  const started = performance.now();
  const answer = await api("/query", documentText);
  if (answer.status !== 200) {
    status.className = "error";
    status.textContent = (answer.body.path ? answer.body.path + ": " : "") + answer.body.error;
    return;
  }
  renderSets(answer.body.data);
  renderBreakdowns(answer.body.data);
  renderFunnel(answer.body.funnel);
  renderSeries(answer.body.data);
  const skipped = answer.body.skipped.regions.length;
  status.textContent = "answered in " + Math.round(performance.now() - started) + " ms"
    + (skipped ? "; " + skipped + " damaged regions skipped" : "");
  status.dataset.done = String(Date.now());
}

// ---- stats -------------------------------------------------------------------

function bytes(value) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let index = 0;
  while (value >= 1024 && index < units.length - 1) { value /= 1024; index += 1; }
  return value.toFixed(index ? 1 : 0) + " " + units[index];
}

async function refreshStats() {
  const answer = await api("/stats");
  if (answer.status === 200) {
    for (const node of document.querySelectorAll("[data-stat]")) {
      const value = answer.body[node.dataset.stat];
      node.textContent = node.dataset.stat === "archive_bytes" ? bytes(value) : shown(value);
    }
  }
  setTimeout(refreshStats, 5000);
}

window.addEventListener("DOMContentLoaded", () => {
  const editor = $("editor");
  editor.addEventListener("input", () => { scheduleValidation(); suggest(); });
  editor.addEventListener("keydown", onKey);
  editor.addEventListener("click", suggest);
  editor.addEventListener("blur", () => setTimeout(hideSuggestions, 150));
  $("run").addEventListener("click", run);
  $("example").addEventListener("click", () => {
    editor.value = JSON.stringify(EXAMPLE, null, 2);
    scheduleValidation();
  });
  refreshStats();
});
