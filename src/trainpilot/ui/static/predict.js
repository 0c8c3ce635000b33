// Predict: dropped images or a server folder, a run and checkpoint; top-k with thumbnails.
"use strict";
(function () {
  const form = document.getElementById("predict");
  if (!form) return;
  const runSel = document.getElementById("p-run"), ckpt = document.getElementById("p-ckpt"),
        files = document.getElementById("p-files"), drop = document.getElementById("drop");
  let dropped = [];
  function checkpoints() {
    const list = JSON.parse(runSel.selectedOptions[0].dataset.ckpts);
    ckpt.innerHTML = list.map(c => `<option>${esc(c)}</option>`).join("");
  }
  runSel.addEventListener("change", checkpoints); checkpoints();
  function label() { drop.querySelector("span").textContent = dropped.length ? dropped.map(f => f.name).join(", ") : T["predict.drop"]; }
  files.addEventListener("change", () => { dropped = [...files.files]; label(); });
  ["dragenter", "dragover"].forEach(ev => drop.addEventListener(ev, e => { e.preventDefault(); drop.classList.add("over"); }));
  ["dragleave", "drop"].forEach(ev => drop.addEventListener(ev, e => { e.preventDefault(); drop.classList.remove("over"); }));
  drop.addEventListener("drop", e => { dropped = [...e.dataTransfer.files]; label(); });
  form.addEventListener("submit", async e => {
    e.preventDefault();
    const fd = new FormData(form);
    fd.delete("files");
    dropped.forEach(f => fd.append("files", f, f.name));
    const err = document.getElementById("p-error"), out = document.getElementById("p-results");
    err.textContent = ""; out.innerHTML = `<p class="sub">${esc(T["common.loading"])}</p>`;
    try {
      const data = await api("/api/predict", { method: "POST", body: fd });
      out.innerHTML = data.predictions.map(p => `<div class="result">${p.thumb ? `<img src="${p.thumb}" alt="">` : ""}
        <div class="top"><div class="path" title="${esc(p.path)}">${esc(p.path)}</div>${p.error ? `<div class="error">${esc(p.error)}</div>` :
        p.top.map(t => `<div class="prob"><span>${esc(t.label)}</span><span class="num">${(t.prob * 100).toFixed(1)}%</span>
          <span class="track"><i style="width:${t.prob * 100}%"></i></span></div>`).join("")}</div></div>`).join("");
    } catch (e2) { out.innerHTML = ""; err.textContent = e2.message; }
  });
})();
