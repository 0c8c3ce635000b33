// Shared helpers: the token for POSTs, JSON calls with one-line errors, escaping, number formats, theme.
"use strict";
const TOKEN = document.querySelector('meta[name="token"]').content;
const LANG = document.body.dataset.lang;

async function api(url, options = {}) {
  const opts = { ...options, headers: { ...(options.headers || {}) } };
  if (opts.method === "POST") opts.headers["X-Token"] = TOKEN;
  if (opts.json !== undefined) {
    opts.body = JSON.stringify(opts.json);
    opts.headers["Content-Type"] = "application/json";
    delete opts.json;
  }
  const sep = url.includes("?") ? "&" : "?";
  const res = await fetch(url + sep + "lang=" + LANG, opts);
  let data;
  try { data = await res.json(); } catch (e) { data = { error: res.status + " " + res.statusText }; }
  if (!res.ok && !data.errors) throw new Error(data.error || res.statusText);
  return data;
}

function esc(v) {
  return String(v === null || v === undefined ? "" : v).replace(/[&<>"']/g,
    c => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}

function fmt(v, digits = 4) {
  if (v === null || v === undefined || v === "") return "–";
  if (typeof v === "number") {
    if (!isFinite(v)) return String(v);
    if (Number.isInteger(v)) return String(v);
    const a = Math.abs(v);
    return a !== 0 && (a < 1e-3 || a >= 1e5) ? v.toExponential(2) : String(+v.toFixed(digits));
  }
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
}

function duration(s) {
  if (s === null || s === undefined) return "–";
  s = Math.round(s);
  if (s >= 3600) return Math.floor(s / 3600) + "h " + String(Math.floor(s % 3600 / 60)).padStart(2, "0") + "m";
  if (s >= 60) return Math.floor(s / 60) + "m " + String(s % 60).padStart(2, "0") + "s";
  return s + "s";
}

function when(ts) {
  if (!ts) return "–";
  const d = new Date(ts * 1000), p = n => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}`;
}

function statusBadge(state) {
  return `<span class="badge ${esc(state)}">${esc(T["st." + state] || state)}</span>`;
}

function adjustmentPills(r) {  // a run row's kept / reverted / pending adjustments
  const parts = [];
  if (r.kept) parts.push(`<span class="pill kept" title="${esc(T["adj.kept"])}">${r.kept} ✓</span>`);
  if (r.reverted) parts.push(`<span class="pill reverted" title="${esc(T["adj.reverted"])}">${r.reverted} ↩</span>`);
  if (r.pending) parts.push(`<span class="pill pending" title="${esc(T["adj.pending"])}">${r.pending} …</span>`);
  return parts.join("") || '<span class="sub">–</span>';
}

function css(name) { return getComputedStyle(document.documentElement).getPropertyValue(name).trim(); }

document.getElementById("theme-switch").addEventListener("click", () => {
  const next = document.documentElement.dataset.theme === "dark" ? "light" : "dark";
  document.documentElement.dataset.theme = next;
  localStorage.setItem("theme", next);
  window.dispatchEvent(new Event("themechange"));
});
