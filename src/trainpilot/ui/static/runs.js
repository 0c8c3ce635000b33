// Runs page: the table, sorted and filtered here, refreshed every few seconds.
"use strict";
(function () {
  let rows = [], sortKey = "started", asc = false;
  const selected = new Set();
  const tbody = document.querySelector("#runs tbody");
  const fText = document.getElementById("f-text"), fStatus = document.getElementById("f-status"),
        fModel = document.getElementById("f-model"), compareBtn = document.getElementById("compare-btn");

  function render() {
    const text = fText.value.toLowerCase(), st = fStatus.value, model = fModel.value;
    const shown = rows.filter(r => (!st || r.status === st) && (!model || r.model === model) &&
      (!text || [r.run, r.model, r.data].join(" ").toLowerCase().includes(text)));
    shown.sort((a, b) => {
      const x = a[sortKey], y = b[sortKey];
      const c = x === y ? 0 : x === null || x === undefined ? 1 : y === null || y === undefined ? -1 : x < y ? -1 : 1;
      return asc ? c : -c;
    });
    tbody.innerHTML = shown.map(r => `<tr data-run="${esc(r.run)}">
      <td class="sel"><input type="checkbox" ${selected.has(r.run) ? "checked" : ""} aria-label="select"></td>
      <td class="runname"><a href="/runs/${encodeURIComponent(r.run)}">${esc(r.run)}</a></td>
      <td title="${esc(r.reason)}">${statusBadge(r.status)}</td>
      <td>${esc(r.model)}</td><td>${esc(r.data)}</td>
      <td class="num">${r.epochs}/${r.num_epochs || "?"}</td>
      <td class="num" title="${esc(r.monitor)}">${fmt(r.best)}${r.best_epoch ? ` <span class="sub">@${r.best_epoch}</span>` : ""}</td>
      <td class="num">${fmt(r.last)}</td>
      <td class="num">${r.test_accuracy !== null && r.test_accuracy !== undefined ? fmt(r.test_accuracy) +
        ` <span class="sub">F1 ${fmt(r.test_macro_f1, 3)}</span>` : "–"}</td>
      <td class="num">${adjustmentPills(r)}</td>
      <td class="num">${when(r.started)}</td><td class="num">${duration(r.duration_s)}</td></tr>`).join("");
    document.getElementById("runs-empty").hidden = rows.length > 0;
    document.getElementById("run-count").textContent = rows.length ? `${shown.length}/${rows.length}` : "";
    compareBtn.disabled = selected.size < 2;
    if (rows.length && !performance.getEntriesByName("trainpilot-rendered").length) performance.mark("trainpilot-rendered");
  }

  async function load() {
    try {
      rows = (await api("/api/runs")).runs;
      const models = [...new Set(rows.map(r => r.model))].sort(), current = fModel.value;
      fModel.innerHTML = `<option value="">${esc(T["runs.all_models"])}</option>` +
        models.map(m => `<option ${m === current ? "selected" : ""}>${esc(m)}</option>`).join("");
      render();
    } catch (e) { console.error(e); }
    setTimeout(load, rows.some(r => r.status === "running") ? 2000 : 5000);
  }

  document.querySelectorAll("#runs th[data-sort]").forEach(th => th.addEventListener("click", () => {
    asc = sortKey === th.dataset.sort ? !asc : true;
    sortKey = th.dataset.sort;
    document.querySelectorAll("#runs th").forEach(h => h.classList.remove("sorted", "asc"));
    th.classList.add("sorted"); if (asc) th.classList.add("asc");
    render();
  }));
  tbody.addEventListener("change", e => {
    const run = e.target.closest("tr").dataset.run;
    e.target.checked ? selected.add(run) : selected.delete(run);
    compareBtn.disabled = selected.size < 2;
  });
  compareBtn.addEventListener("click", () => {
    location.href = "/compare?" + [...selected].map(r => "run=" + encodeURIComponent(r)).join("&");
  });
  [fText, fStatus, fModel].forEach(el => el.addEventListener("input", render));
  load();
})();
