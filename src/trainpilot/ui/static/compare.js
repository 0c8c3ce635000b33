// Compare: the selected runs' val curves overlaid, and the config keys that differ.
"use strict";
(async function () {
  const ids = JSON.parse(document.getElementById("compare").dataset.runs);
  const diffEl = document.getElementById("cmp-diff");
  if (ids.length < 2) { diffEl.innerHTML = `<p class="empty">${esc(T["compare.none"])}</p>`; return; }
  let data;
  try { data = await api("/api/compare?" + ids.map(i => "run=" + encodeURIComponent(i)).join("&")); }
  catch (e) { diffEl.innerHTML = `<p class="error">${esc(e.message)}</p>`; return; }
  const monitor = data.runs[0].monitor === "val_loss" ? "val_accuracy" : data.runs[0].monitor;
  document.getElementById("cmp-metric-title").textContent = monitor;
  const epochs = [...new Set(data.runs.flatMap(r => r.epoch))].sort((a, b) => a - b);
  const aligned = key => data.runs.map(r => { const m = new Map(r.epoch.map((e, i) => [e, r[key][i]])); return epochs.map(e => m.has(e) ? m.get(e) : null); });
  function draw() {
    ["cmp-loss", "cmp-metric"].forEach(id => { document.getElementById(id).innerHTML = ""; });
    const spec = data.runs.map(r => ({ label: r.id }));
    lineChart(document.getElementById("cmp-loss"), spec, { xLabel: T["run.epoch"] }).setData([epochs, ...aligned("val_loss")]);
    lineChart(document.getElementById("cmp-metric"), spec, { xLabel: T["run.epoch"] }).setData([epochs, ...aligned(monitor)]);
  }
  draw();
  window.addEventListener("themechange", draw);
  diffEl.innerHTML = data.diff.length ? `<div class="table-wrap"><table class="grid"><thead><tr><th>${esc(T["compare.key"])}</th>${
    data.runs.map(r => `<th><a href="/runs/${encodeURIComponent(r.id)}">${esc(r.id)}</a></th>`).join("")}</tr></thead><tbody>${
    data.diff.map(d => `<tr><td><code>${esc(d.key)}</code></td>${d.values.map(v => `<td>${esc(fmt(v, 6))}</td>`).join("")}</tr>`).join("")
  }</tbody></table></div>` : `<p class="empty">${esc(T["compare.same"])}</p>`;
})();
