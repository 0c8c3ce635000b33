// A run: live curves (server-sent events), adjustment markers and timeline, approve/reject,
// per-class recall heatmap, class counts, confusion matrix, reports, config, stop/resume.
"use strict";
(function () {
  const runId = document.getElementById("run-id").textContent;
  const base = "/api/runs/" + encodeURIComponent(runId);
  const tip = document.getElementById("marker-tip");
  let detail = null, charts = {}, cmMode = "counts", lastCards = "", lastSide = {};
  const markers = () => (detail ? detail.adjustments.filter(a => a.drawn) : []);

  function buildCharts() {
    Object.values(charts).forEach(c => c.destroy());
    ["chart-loss", "chart-acc", "chart-lr"].forEach(id => { document.getElementById(id).innerHTML = ""; });
    const o = { markers, tip, xLabel: T["run.epoch"] };
    charts = {
      loss: lineChart(document.getElementById("chart-loss"), [{ label: "train_loss" }, { label: "val_loss" }], o),
      acc: lineChart(document.getElementById("chart-acc"), [{ label: "train_accuracy" }, { label: "val_accuracy" },
        { label: "val_macro_f1", color: "--c3" }], o),
      lr: lineChart(document.getElementById("chart-lr"), [{ label: "lr", color: "--c4" }], { ...o, logY: true }),
    };
    if (detail) updateCharts();
  }

  function updateCharts() {
    const s = detail.series;
    charts.loss.setData([s.epoch, s.train_loss, s.val_loss]);
    charts.acc.setData([s.epoch, s.train_accuracy, s.val_accuracy, s.val_macro_f1]);
    charts.lr.setData([s.epoch, s.lr.map(v => (v > 0 ? v : null))]);
    const el = document.getElementById("chart-loss");
    el.dataset.points = s.epoch.length;  // for scripts and tests: what is on screen
    el.dataset.markers = markers().length;
  }

  function header() {
    const r = detail.row, st = document.getElementById("run-status");
    st.className = "badge " + detail.status; st.textContent = T["st." + detail.status] || detail.status;
    st.title = detail.reason || "";
    document.getElementById("run-meta").innerHTML = [
      [T["col.model"], r.model], [T["col.data"], r.data], [T["col.epochs"], `${r.epochs}/${r.num_epochs || "?"}`],
      [T["col.best"], r.best !== null ? `${fmt(r.best)} @${r.best_epoch} (${detail.monitor})` : "–"],
      [T["col.test"], r.test_accuracy !== null && r.test_accuracy !== undefined ? fmt(r.test_accuracy) : null],
      [T["col.scoring"], detail.scoring],
      [T["col.duration"], duration(r.duration_s)], [T["col.mode"], detail.mode]]
      .filter(x => x[1] !== null && x[1] !== undefined).map(([k, v]) => `<span>${esc(k)} <b>${esc(v)}</b></span>`).join("");
    document.getElementById("stop-btn").hidden = detail.status !== "running";
    document.getElementById("resume-btn").hidden = !(["stopped", "crashed"].includes(detail.status) &&
      detail.checkpoints.includes("last"));
  }

  function decision(a) {
    if (a.decision) {
      const d = a.decision, word = d.decision === "approve" ? T["card.approved"] : T["card.rejected_by"];
      const by = d.by || "cli";
      return `<div class="decided">✔ ${esc(T["card.decided"].replace("{decision}", word).replace("{by}", by)
        .replace("{at}", when(d.at)))}${d.note ? ` — “${esc(d.note)}”` : ""}${a.status === "proposed" ?
        ` · ${esc(T["card.picked_up"])}` : ""}</div>`;
    }
    if (a.status !== "proposed") return "";
    if (["completed", "pruned"].includes(detail.status)) return `<div class="decided">${esc(T["card.ended"])}</div>`;
    return `<div class="decide" data-adj="${esc(a.id)}"><b>${esc(T["card.waiting"])}</b>
      <input type="text" class="note" placeholder="${esc(T["card.note"])}" maxlength="500">
      <button class="btn ok small" data-decide="approve">${esc(T["card.approve"])}</button>
      <button class="btn danger small" data-decide="reject">${esc(T["card.reject"])}</button></div>`;
  }

  function card(a) {
    const changes = a.changes.length ? `<div class="label">${esc(T["card.changes"])}</div><table>` + a.changes.map(c =>
      `<tr><td><code>${esc(c.key)}</code></td><td class="old">${esc(fmt(c.old))}</td><td>→</td><td class="new">${esc(fmt(c.new))}</td>
       <td class="sub">${esc(c.reason || "")}</td></tr>`).join("") + "</table>" : "";
    const rejected = a.rejected.length ? `<div class="label">${esc(T["card.rejected"])}</div><ul>` + a.rejected.map(r =>
      `<li><code>${esc(r.key || r.parameter || "?")}</code> = ${esc(fmt(r.value !== undefined ? r.value : r.new))}: ${esc(r.reason || r.why || "")}</li>`).join("") + "</ul>" : "";
    const states = a.states.map(s => `<div><span class="state">${esc(s.state)}</span>` +
      `<ul>${s.evidence.map(e => `<li>${esc(e)}</li>`).join("")}</ul></div>`).join("");
    const o = a.outcome;
    const outcome = o ? `<div class="outcome ${esc(o.decision)}"><b>${esc(a.status_label)}</b> · ${esc(o.metric)} ${fmt(o.before)} → ${fmt(o.after)}
      (Δ ${o.delta !== null && o.delta >= 0 ? "+" : ""}${fmt(o.delta)}, ± ${fmt(o.noise_margin)}) · ${esc(T["card.window"])} ${a.window[0]}–${a.window[1]}
      <div class="sub">${esc(o.why || "")}</div></div>` : "";
    const report = a.report ? `<a href="/runs/${encodeURIComponent(runId)}/reports/${encodeURIComponent(a.report)}">${esc(T["card.report"])} →</a>` : "";
    return `<article class="card ${esc(a.tone)}" id="card-${esc(a.id)}" data-status="${esc(a.status)}">
      <header><span class="title">${esc(a.changes.length ? a.label : a.status_label)}</span>
        <span class="when">${esc(T["run.epoch"])} ${a.epoch} · <span class="badge">${esc(a.status_label)}</span></span></header>
      <div class="label">${esc(T["card.trigger"])}</div><div>${esc(a.trigger)} — ${esc(a.reason)}</div>
      ${states ? `<div class="label">${esc(T["card.diagnosis"])}</div>${states}` : ""}
      ${changes}${rejected}
      ${a.notes.length ? `<div class="label">${esc(T["card.notes"])}</div><ul class="sub notes">${a.notes.map(n => `<li>${esc(n)}</li>`).join("")}</ul>` : ""}
      ${a.analysis ? `<details><summary>${esc(T["card.advisor"])} (${esc(a.advisor)})</summary><pre>${esc(a.analysis)}</pre></details>` : ""}
      ${outcome}${decision(a)}<div class="sub" style="margin-top:.4rem">${report}</div></article>`;
  }

  const cardCache = new Map();  // adjustment id -> [its JSON, its element]: unchanged cards stay as they are

  function timeline() {
    const shown = detail.adjustments.filter(a => a.changes.length || a.rejected.length || a.status === "proposed");
    const quiet = detail.adjustments.filter(a => !shown.includes(a));
    const key = JSON.stringify([detail.adjustments, detail.status]);
    if (key === lastCards) return;
    lastCards = key;
    const el = document.getElementById("timeline");
    const wanted = shown.slice().reverse().map(a => {
      const json = JSON.stringify([a, detail.status]), hit = cardCache.get(a.id);
      if (hit && hit[0] === json) return hit[1];
      const holder = document.createElement("div");
      holder.innerHTML = card(a);
      const node = holder.firstElementChild;
      if (hit) {  // keep a note being typed
        const note = hit[1].querySelector(".note"), next = node.querySelector(".note");
        if (note && next) next.value = note.value;
      }
      cardCache.set(a.id, [json, node]);
      return node;
    });
    const current = [...el.children];
    if (wanted.length !== current.length || wanted.some((n, i) => n !== current[i])) {
      el.replaceChildren(...(wanted.length ? wanted : [Object.assign(document.createElement("p"),
        { className: "empty", textContent: T["run.no_adjustments"] })]));
    }
    const nc = document.getElementById("no-change");
    nc.hidden = !quiet.length;
    nc.querySelector(".count").textContent = `(${quiet.length})`;
    nc.querySelector("ul").innerHTML = quiet.slice().reverse().map(a =>
      `<li>${esc(T["run.epoch"])} ${a.epoch}: ${esc(a.status_label)} — ${esc(a.states.map(s => s.state).join(", ") || "healthy")}</li>`).join("");
  }

  function counts() {
    const max = Math.max(1, ...detail.train_counts);
    document.getElementById("counts").innerHTML = '<div class="bars">' + detail.classes.map((c, i) =>
      `<div class="bar"><span class="name" title="${esc(c)}">${esc(c)}</span><span class="track"><span class="fill" style="width:${
        100 * (detail.train_counts[i] || 0) / max}%"></span></span><span class="num">${detail.train_counts[i] ?? "–"}</span></div>`).join("") + "</div>";
  }

  function heatColour(v) {  // 0 red -> 0.5 amber -> 1 green
    if (v === null || v === undefined) return css("--soft");
    const stops = [[220, 38, 38], [251, 191, 36], [22, 163, 74]];
    const t = Math.max(0, Math.min(1, v)) * 2, i = Math.min(1, Math.floor(t)), f = t - i;
    const c = stops[i].map((x, k) => Math.round(x + (stops[i + 1][k] - x) * f));
    return `rgb(${c})`;
  }

  function confusion() {
    const cm = detail.confusion, el = document.getElementById("confusion");
    if (!cm) { el.innerHTML = '<p class="sub">–</p>'; return; }
    const m = cmMode === "counts" ? cm.counts : (cm.normalised || cm.counts);
    const norm = cm.normalised || cm.counts;
    el.innerHTML = `<table class="cm"><tr><th>${esc(T["run.true"])} \\ ${esc(T["run.predicted"])}</th>${cm.classes.map(c =>
      `<th title="${esc(c)}">${esc(c)}</th>`).join("")}</tr>` + m.map((row, i) => `<tr><th title="${esc(cm.classes[i])}">${esc(cm.classes[i])}</th>${row.map((v, j) => {
        const share = norm[i][j] || 0, diag = i === j;
        const bg = diag ? alpha(css("--kept"), 0.15 + 0.6 * share) : share > 0 ? alpha(css("--reverted"), 0.1 + 0.6 * share) : "transparent";
        return `<td style="background:${bg}">${cmMode === "counts" ? v : (v * 100).toFixed(0) + "%"}</td>`;
      }).join("")}</tr>`).join("") + `</table><div class="sub">${esc(cm.source)}</div>`;
  }

  function heatmap() {
    const el = document.getElementById("heatmap"), epochs = detail.series.epoch;
    if (!detail.classes.length || !epochs.length) { el.innerHTML = '<p class="sub">–</p>'; return; }
    el.innerHTML = '<div class="heat">' + detail.classes.map((c, i) =>
      `<span title="${esc(c)}">${esc(c)}</span><canvas data-row="${i}"></canvas>`).join("") +
      `<div class="axis"><span>${esc(T["run.epoch"])} ${epochs[0]}</span><span>${epochs[epochs.length - 1]}</span></div></div>` +
      '<div class="scale">0 <i></i> 1 recall</div>';
    el.querySelectorAll("canvas").forEach(cv => {
      const row = detail.recall[+cv.dataset.row], w = cv.clientWidth || 600, dpr = devicePixelRatio || 1;
      cv.width = w * dpr; cv.height = 22 * dpr;
      const ctx = cv.getContext("2d"), cw = cv.width / row.length;
      row.forEach((v, j) => { ctx.fillStyle = heatColour(v); ctx.fillRect(Math.floor(j * cw), 0, Math.ceil(cw) + 1, cv.height); });
      cv.onmousemove = e => {
        const j = Math.min(row.length - 1, Math.floor(e.offsetX / cv.clientWidth * row.length));
        cv.title = `${detail.classes[+cv.dataset.row]} · ${T["run.epoch"]} ${epochs[j]}: recall ${fmt(row[j], 3)}`;
      };
    });
  }

  function reports() {
    const rid = encodeURIComponent(runId);
    const files = detail.reports.filter(n => !n.startsWith("parameter_tuning_report_") || n.endsWith(".md"));
    document.getElementById("reports").innerHTML = files.map(n => {
      const href = n.endsWith(".md") ? `/runs/${rid}/reports/${encodeURIComponent(n)}` : `/runs/${rid}/files/reports/${encodeURIComponent(n)}`;
      const raw = n.endsWith(".md") ? ` <a class="sub" href="/runs/${rid}/files/reports/${encodeURIComponent(n)}">md</a>` +
        ` <a class="sub" href="/runs/${rid}/files/reports/${encodeURIComponent(n.slice(0, -3) + ".json")}">json</a>` : "";
      return `<li><span><a href="${href}" title="${esc(n)}">${esc(n)}</a></span><span>${raw}</span></li>`;
    }).join("") + ["config.resolved.json", "metrics.jsonl", "adjustments.jsonl", "run.json"].map(n =>
      `<li><span><a href="/runs/${rid}/files/${n}">${n}</a></span></li>`).join("");
  }

  function suspects() {
    const panel = document.getElementById("suspects-panel"), s = detail.suspects;
    panel.hidden = !s;
    if (!s) return;
    panel.querySelector(".count").textContent = `${s.shown.length} / ${s.count}`;
    document.getElementById("suspects").innerHTML = s.shown.map(r =>
      `<figure title="${esc(r.file)}">${r.thumb ? `<img src="${r.thumb}" alt="${esc(r.file)}">` : '<div class="nothumb">?</div>'}` +
      `<figcaption>${esc(r.label)} → <b>${esc(r.suggested)}</b><br><span class="sub">${esc(r.file)} · p ${esc(r.p_label)}</span></figcaption></figure>`).join("");
  }

  function config() {
    const flat = [];
    (function walk(o, p) {
      for (const [k, v] of Object.entries(o)) {
        if (v && typeof v === "object" && !Array.isArray(v) && k !== "class_weights") walk(v, p + k + ".");
        else flat.push([p + k, v]);
      }
    })(detail.config, "");
    document.getElementById("config").innerHTML = flat.map(([k, v]) => {
      const changed = Object.prototype.hasOwnProperty.call(detail.changed, k);
      return `<div class="${changed ? "changed" : ""}" ${changed ? `title="was ${esc(fmt(detail.changed[k]))}"` : ""}><span>${esc(k)}</span><span>${
        changed ? `<span class="old sub">${esc(fmt(detail.changed[k]))}</span> → ` : ""}${esc(fmt(v))}</span></div>`;
    }).join("");
  }

  function render(d) {
    if (!detail) performance.mark("trainpilot-detail");
    detail = d;
    header(); updateCharts(); timeline();
    // each panel is redrawn only when what it shows changed (a live run adds a heatmap column per epoch)
    const parts = { counts: [d.classes, d.train_counts], confusion: [d.confusion], heatmap: [d.recall],
                    reports: [d.reports], suspects: [d.suspects], config: [d.config, d.changed] };
    const draw = { counts, confusion, heatmap, reports, suspects, config };
    for (const [name, value] of Object.entries(parts)) {
      const key = JSON.stringify(value);
      if (lastSide[name] !== key) { lastSide[name] = key; draw[name](); }
    }
    Object.values(charts).forEach(c => c.redraw(false));
    if (!performance.getEntriesByName("trainpilot-rendered").length) performance.mark("trainpilot-rendered");
  }

  function flash(msg, error) {
    const f = document.getElementById("flash");
    f.textContent = msg; f.className = "flash" + (error ? " error" : ""); f.hidden = false;
    setTimeout(() => { f.hidden = true; }, 6000);
  }

  document.getElementById("timeline").addEventListener("click", async e => {
    const btn = e.target.closest("[data-decide]");
    if (!btn) return;
    const box = btn.closest(".decide"), adj = box.dataset.adj;
    box.querySelectorAll("button").forEach(b => { b.disabled = true; });
    try {
      await api(`${base}/adjustments/${encodeURIComponent(adj)}/${btn.dataset.decide}`,
        { method: "POST", json: { note: box.querySelector(".note").value } });
      lastCards = "";
      render(await api(base));
    } catch (err) { flash(err.message, true); box.querySelectorAll("button").forEach(b => { b.disabled = false; }); }
  });
  document.querySelectorAll("[data-cm]").forEach(b => b.addEventListener("click", () => {
    cmMode = b.dataset.cm;
    document.querySelectorAll("[data-cm]").forEach(x => x.classList.toggle("on", x === b));
    confusion();
  }));
  document.getElementById("stop-btn").addEventListener("click", async () => {
    if (!confirm(T["run.stop_confirm"])) return;
    try { await api(base + "/stop", { method: "POST" }); flash(T["run.stop"] + " …"); } catch (err) { flash(err.message, true); }
  });
  document.getElementById("resume-btn").addEventListener("click", async () => {
    try { await api(base + "/resume", { method: "POST" }); flash(T["run.resume"] + " …"); } catch (err) { flash(err.message, true); }
  });
  window.addEventListener("themechange", () => { buildCharts(); lastSide = {}; if (detail) render(detail); });

  buildCharts();
  window.trainpilotCharts = () => charts;
  const initial = document.getElementById("initial-detail");
  render(JSON.parse(initial.textContent));  // drawn from the page itself; the stream sends what changes next
  const source = new EventSource(base + "/events?lang=" + LANG + "&since=" + initial.dataset.since);
  source.addEventListener("detail", e => render(JSON.parse(e.data)));
  source.onerror = () => { if (detail && detail.status !== "running") source.close(); };
})();
