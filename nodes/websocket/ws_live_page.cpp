// The live page served by ws_sink at `/`: embedded, so the binary needs no web root.
// Plain HTML + JS, no build step and no CDN: it must work on a machine without Internet.
// Data is written with textContent only (a symbol or message never becomes markup).
#include <cstdio>
#include <string>

#include "nodes/websocket/ws_server.hpp"

namespace predflow::ws {

namespace {
constexpr const char* kPage = R"PAGE(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>predflow — live predictions</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5rem; color: #222; }
  h1 { font-size: 1.3rem; margin: 0 0 .5rem; }
  #bar { display: flex; gap: 1rem; align-items: center; flex-wrap: wrap; margin-bottom: .8rem; }
  #status { font-weight: 600; }
  #status.live { color: #1a7f37; } #status.closed, #status.error { color: #b42318; }
  #error { color: #b42318; }
  table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
  th, td { padding: .2rem .6rem; border-bottom: 1px solid #eee; text-align: right; white-space: nowrap; }
  th:first-child, td:first-child, td.c-model { text-align: left; }
  thead th { position: sticky; top: 0; background: #fafafa; }
  .up { color: #1a7f37; } .down { color: #b42318; }
  .band { position: relative; width: 140px; height: 10px; background: #f0f0f0; display: inline-block; }
  .band .range { position: absolute; top: 0; bottom: 0; background: #8cb4ff; }
  .band .mid { position: absolute; top: -2px; bottom: -2px; width: 2px; background: #1d4ed8; }
  .band .zero { position: absolute; top: -3px; bottom: -3px; left: 50%; width: 1px; background: #999; }
</style>
</head>
<body>
<h1>predflow — live predictions</h1>
<div id="bar">
  <span>status: <span id="status">connecting</span></span>
  <form id="subscribe"><label>symbols <input id="symbols" size="30" value="*"></label>
    <button type="submit">subscribe</button></form>
  <span>subscribed: <span id="subscribed">—</span></span>
  <span><span id="count">0</span> symbols, <span id="frames">0</span> frames</span>
  <span id="error"></span>
</div>
<table id="predictions">
  <thead><tr>
    <th>symbol</th><th>model</th><th>price</th><th>predicted price</th><th>predicted return</th>
    <th>p10</th><th>p50</th><th>p90</th><th>std</th><th>price band (p10 – p90)</th><th>band</th>
    <th>samples</th><th>timestamp</th>
  </tr></thead>
  <tbody id="rows"></tbody>
</table>
<script>
"use strict";
const WS_PATH = "__WS_PATH__";
const params = new URLSearchParams(location.search);
const token = params.get("token");
const initial = (params.get("symbols") || "*").split(",").map(s => s.trim()).filter(s => s);
document.getElementById("symbols").value = initial.join(",");

const latest = new Map();   // symbol → newest prediction
const rowOf = new Map();    // symbol → <tr>
const order = [];           // symbols in table order (sorted)
const changed = new Set();
// What this page asked for last (resent on reconnect). Not the server's list: a `subscribed`
// reply lists at most 1,000 entries of a larger set.
let frames = 0, scale = 0.001, renderQueued = false, ws = null, current = initial;

const $ = id => document.getElementById(id);
const pct = v => (v === null || v === undefined) ? "—" : (v * 100).toFixed(3) + "%";
const num = (v, d) => (v === null || v === undefined) ? "—" : Number(v).toFixed(d);

function setStatus(text, cls) { const s = $("status"); s.textContent = text; s.className = cls; }

function connect() {
  const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + WS_PATH +
              (token ? "?token=" + encodeURIComponent(token) : "");
  ws = new WebSocket(url);
  ws.onopen = () => { setStatus("live", "live"); if (current.length) send("subscribe", current); };
  ws.onclose = () => { setStatus("closed — reconnecting", "closed"); setTimeout(connect, 2000); };
  ws.onerror = () => setStatus("error", "error");
  ws.onmessage = ev => {
    let msg; try { msg = JSON.parse(ev.data); } catch (e) { return; }
    if (msg.type === "predictions") {
      frames++;
      for (const p of msg.data) { latest.set(p.symbol, p); changed.add(p.symbol); }
      queueRender();
    } else if (msg.type === "subscribed") {
      const more = msg.truncated ? " … (" + msg.count + " in all)" : "";
      $("subscribed").textContent = (msg.symbols.join(", ") || "nothing") + more; $("error").textContent = "";
    } else if (msg.type === "error") {
      $("error").textContent = "server: " + msg.message;
    }
  };
}

function send(action, symbols) {
  if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({action, symbols}));
}

$("subscribe").addEventListener("submit", ev => {
  ev.preventDefault();
  const wanted = $("symbols").value.split(",").map(s => s.trim()).filter(s => s);
  const drop = current.filter(s => !wanted.includes(s));
  if (drop.length) send("unsubscribe", drop);
  if (wanted.length) send("subscribe", wanted);
  current = wanted;
  for (const s of [...latest.keys()]) if (!wanted.includes("*") && !wanted.includes(s)) removeRow(s);
});

function queueRender() {
  if (renderQueued) return;
  renderQueued = true;
  (document.hidden ? setTimeout : requestAnimationFrame)(() => { renderQueued = false; render(); });
}

function cell(tr, cls) { const td = document.createElement("td"); td.className = cls; tr.appendChild(td); return td; }

function makeRow(symbol) {
  const tr = document.createElement("tr");
  tr.dataset.symbol = symbol;
  for (const c of ["c-symbol", "c-model", "c-price", "c-predicted-price", "c-return", "c-p10", "c-p50", "c-p90",
                   "c-std", "c-price-band", "c-band", "c-samples", "c-timestamp"]) cell(tr, c);
  tr.querySelector(".c-symbol").textContent = symbol;
  const band = document.createElement("span"); band.className = "band";
  for (const c of ["range", "mid", "zero"]) { const s = document.createElement("span"); s.className = c; band.appendChild(s); }
  tr.querySelector(".c-band").appendChild(band);
  // Sorted insert: binary search for the first symbol after this one.
  let lo = 0, hi = order.length;
  while (lo < hi) { const m = (lo + hi) >> 1; if (order[m] < symbol) lo = m + 1; else hi = m; }
  $("rows").insertBefore(tr, lo < order.length ? rowOf.get(order[lo]) : null);
  order.splice(lo, 0, symbol);
  rowOf.set(symbol, tr);
  return tr;
}

function removeRow(symbol) {
  const tr = rowOf.get(symbol); if (!tr) return;
  tr.remove(); rowOf.delete(symbol); latest.delete(symbol);
  order.splice(order.indexOf(symbol), 1);
  $("count").textContent = order.length;
}

function render() {
  for (const s of changed) {
    const p = latest.get(s); if (!p) continue;
    const u = p.uncertainty || {};
    scale = Math.max(scale, Math.abs(u.p10 || 0), Math.abs(u.p90 || 0));
  }
  for (const s of changed) {
    const p = latest.get(s); if (!p) continue;
    const tr = rowOf.get(s) || makeRow(s);
    const u = p.uncertainty || {};
    const q = c => tr.querySelector("." + c);
    q("c-model").textContent = p.model_type + " " + p.model_version;
    q("c-price").textContent = num(p.current_price, 2);
    q("c-predicted-price").textContent = num(p.predicted_price, 3);
    const r = q("c-return"); r.textContent = pct(p.predicted_return);
    r.className = "c-return " + (p.predicted_return >= 0 ? "up" : "down");
    q("c-p10").textContent = pct(u.p10); q("c-p50").textContent = pct(u.p50); q("c-p90").textContent = pct(u.p90);
    q("c-std").textContent = pct(u.std);
    q("c-price-band").textContent = p.current_price == null ? "—"
        : num(p.current_price * (1 + u.p10), 3) + " – " + num(p.current_price * (1 + u.p90), 3);
    const x = v => (50 + 50 * v / scale).toFixed(1) + "%";
    const band = q("c-band").firstChild;
    band.children[0].style.left = x(u.p10); band.children[0].style.right = (100 - parseFloat(x(u.p90))).toFixed(1) + "%";
    band.children[1].style.left = x(p.predicted_return);
    band.title = "p10 " + pct(u.p10) + " · mean " + pct(p.predicted_return) + " · p90 " + pct(u.p90);
    q("c-samples").textContent = u.samples;
    q("c-timestamp").textContent = p.timestamp;
  }
  changed.clear();
  $("count").textContent = order.length;
  $("frames").textContent = frames;
}

connect();
</script>
</body>
</html>
)PAGE";
}  // namespace

std::string live_page(const std::string& ws_path) {
  std::string page = kPage;
  // The path is configuration, not client input; escaped anyway for a JS string literal.
  std::string escaped;
  for (char c : ws_path) {
    if (c == '"' || c == '\\' || c == '<' || c == '>') {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", static_cast<unsigned char>(c));
      escaped += buf;
    } else {
      escaped += c;
    }
  }
  const std::string placeholder = "__WS_PATH__";
  page.replace(page.find(placeholder), placeholder.size(), escaped);
  return page;
}

}  // namespace predflow::ws
