// New run: values read from the schema-generated form, checked by the server with the CLI's
// messages (shown next to each field), a dataset preview, and Start.
"use strict";
(function () {
  const form = document.getElementById("new-run");
  let timer = null;

  function values() {
    const out = {};
    form.querySelectorAll(".field[data-kind]").forEach(f => {
      const key = f.dataset.key, kind = f.dataset.kind;
      if (kind === "bool") out[key] = f.querySelector("input").checked;
      else if (kind === "multi") out[key] = [...f.querySelectorAll("input:checked")].map(i => i.value);
      else out[key] = f.querySelector("input, select").value;
    });
    return out;
  }

  function showErrors(errors) {
    form.querySelectorAll(".field").forEach(f => {
      const msg = errors[f.dataset.key];
      f.classList.toggle("invalid", !!msg);
      f.querySelector(".err").textContent = msg || "";
      if (msg) f.closest("details") && (f.closest("details").open = true);
    });
    const other = errors._form || "";
    document.getElementById("form-msg").textContent = other || (Object.keys(errors).length ? T["new.fix"] : "");
  }

  async function check() {
    const data = await api("/api/validate", { method: "POST", json: { values: values(), data_dir: document.getElementById("f-data_dir").value } });
    const errors = { ...data.errors };
    delete errors.data_dir;  // the dataset is checked by Preview and Start
    if (!document.getElementById("f-data_dir").value) delete errors._form;
    showErrors(errors);
    return errors;
  }

  form.addEventListener("input", e => {
    if (e.target.id === "f-data_dir" || e.target.id === "f-name") return;
    clearTimeout(timer); timer = setTimeout(check, 250);
  });
  form.addEventListener("change", () => { clearTimeout(timer); timer = setTimeout(check, 50); });

  document.getElementById("preview-btn").addEventListener("click", async () => {
    const box = document.getElementById("preview"), field = form.querySelector('[data-key="data_dir"]');
    box.hidden = false; box.innerHTML = `<p class="sub">${esc(T["common.loading"])}</p>`;
    field.classList.remove("invalid"); field.querySelector(".err").textContent = "";
    try {
      const p = await api("/api/preview", { method: "POST", json: { values: values(), data_dir: document.getElementById("f-data_dir").value } });
      box.innerHTML = `<p><b>${esc(p.root)}</b> · ${esc(p.layout)} · ${esc(p.profile)}</p>
        <div class="label"><b>${esc(T["new.classes"])}</b></div>
        <div class="classes">${p.classes.map(c => `<div class="cls"><b>${esc(c.name)}</b>
          <span class="sub">${p.splits.map(s => `${s} ${c.counts[s]}`).join(" · ")}</span>
          <div class="thumbs">${c.thumbs.map(t => `<img src="${t}" alt="">`).join("")}</div></div>`).join("")}</div>
        <p><b>${esc(T["new.skipped"])}</b>: ${p.skipped_total ? `${p.skipped_total}<ul class="sub">${p.skipped.map(s =>
          `<li>${esc(s.path)} — ${esc(s.why)}</li>`).join("")}</ul>` : esc(T["new.none_skipped"])}</p>
        ${p.recipe.length ? `<p><b>${esc(T["new.recipe"])}</b></p><ul class="recipe">${p.recipe.map(c =>
          `<li><code>${esc(c.key)} = ${esc(fmt(c.value))}</code>: ${esc(c.reason)}</li>`).join("")}</ul>` : ""}`;
    } catch (e) {
      box.hidden = true;
      field.classList.add("invalid"); field.querySelector(".err").textContent = e.message;
    }
  });

  form.addEventListener("submit", async e => {
    e.preventDefault();
    const btn = document.getElementById("start-btn");
    btn.disabled = true;
    try {
      const data = await api("/api/start", { method: "POST", json: { values: values(), data_dir: document.getElementById("f-data_dir").value,
        name: document.getElementById("f-name").value } });
      if (data.errors) { showErrors(data.errors); btn.disabled = false; return; }
      location.href = data.url;
    } catch (err) {
      const field = form.querySelector('[data-key="data_dir"]');
      field.classList.add("invalid"); field.querySelector(".err").textContent = err.message;
      document.getElementById("form-msg").textContent = err.message;
      btn.disabled = false;
    }
  });
})();
