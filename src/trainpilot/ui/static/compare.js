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
  // the Runs page's row of each run, the best value of each score in bold
  const cols = [["best", T["col.best"]], ["test_accuracy", T["compare.test_acc"]], ["test_macro_f1", T["compare.test_f1"]]];
  const sameMonitor = new Set(data.results.map(r => r.monitor)).size === 1;
  const lower = k => k === "best" && data.results[0].monitor === "val_loss";  // the one score where less is better
  const top = Object.fromEntries(cols.map(([k]) => [k, (lower(k) ? Math.min : Math.max)(
    ...data.results.map(r => r[k] ?? (lower(k) ? Infinity : -Infinity)))]));
  const score = (r, k) => r[k] === null || r[k] === undefined ? "–" :
    (r[k] === top[k] && (k !== "best" || sameMonitor) ? `<b>${fmt(r[k])}</b>` : fmt(r[k]));
  document.getElementById("cmp-results").innerHTML = `<div class="table-wrap"><table class="grid"><thead><tr>
    <th>${esc(T["col.run"])}</th><th>${esc(T["col.status"])}</th><th>${esc(T["col.model"])}</th><th class="num">${esc(T["col.epochs"])}</th>
    ${cols.map(([, label]) => `<th class="num">${esc(label)}</th>`).join("")}
    <th class="num">${esc(T["col.adjustments"])}</th><th class="num">${esc(T["col.duration"])}</th></tr></thead><tbody>${
    data.results.map(r => `<tr data-run="${esc(r.run)}"><td><a href="/runs/${encodeURIComponent(r.run)}">${esc(r.run)}</a></td>
      <td>${statusBadge(r.status)}</td><td>${esc(r.model)}</td><td class="num">${r.epochs}/${r.num_epochs || "?"}</td>
      <td class="num" title="${esc(r.monitor)}">${score(r, "best")}${r.best_epoch ? ` <span class="sub">@${r.best_epoch} ${esc(r.monitor)}</span>` : ""}</td>
      <td class="num">${score(r, "test_accuracy")}</td><td class="num">${score(r, "test_macro_f1")}</td>
      <td class="num">${adjustmentPills(r)}</td><td class="num">${duration(r.duration_s)}</td></tr>`).join("")}</tbody></table></div>`;
  diffEl.innerHTML = data.diff.length ? `<div class="table-wrap"><table class="grid"><thead><tr><th>${esc(T["compare.key"])}</th>${
    data.runs.map(r => `<th><a href="/runs/${encodeURIComponent(r.id)}">${esc(r.id)}</a></th>`).join("")}</tr></thead><tbody>${
    data.diff.map(d => `<tr><td><code>${esc(d.key)}</code></td>${d.values.map(v => `<td>${esc(fmt(v, 6))}</td>`).join("")}</tr>`).join("")
  }</tbody></table></div>` : `<p class="empty">${esc(T["compare.same"])}</p>`;
})();
