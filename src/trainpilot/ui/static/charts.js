// uPlot line charts with adjustment markers: a line at each change's epoch, its evaluation window
// shaded, coloured kept/reverted/pending, labelled in words; hovering a window shows the change.
"use strict";
const TONES = { kept: "--kept", reverted: "--reverted", pending: "--pending" };

function alpha(color, a) {
  if (color.startsWith("#") && color.length === 7) {
    const n = parseInt(color.slice(1), 16);
    return `rgba(${n >> 16 & 255},${n >> 8 & 255},${n & 255},${a})`;
  }
  return color;
}

function markersPlugin(getMarkers, tip) {
  function draw(u, under) {
    const ctx = u.ctx, { left, top, width, height } = u.bbox, dpr = devicePixelRatio || 1;
    ctx.save();
    ctx.beginPath(); ctx.rect(left, top, width, height); ctx.clip();
    let lastLabelEnd = -Infinity;
    for (const m of getMarkers()) {
      const color = css(TONES[m.tone] || "--muted");
      const x0 = u.valToPos(m.window[0], "x", true), x1 = u.valToPos(Math.max(m.window[1], m.window[0] + 0.5), "x", true);
      if (under) {
        ctx.fillStyle = alpha(color, 0.12);
        ctx.fillRect(x0, top, Math.max(2, x1 - x0), height);
        continue;
      }
      ctx.strokeStyle = color; ctx.lineWidth = 1.5 * dpr; ctx.setLineDash([5 * dpr, 3 * dpr]);
      ctx.beginPath(); ctx.moveTo(x0, top); ctx.lineTo(x0, top + height); ctx.stroke();
      ctx.setLineDash([]);
      ctx.font = `${600} ${11 * dpr}px system-ui, sans-serif`;
      const w = ctx.measureText(m.label).width + 8 * dpr;
      if (x0 + 3 * dpr > lastLabelEnd && x0 + w < left + width + 40 * dpr) {  // no overlapping labels
        ctx.fillStyle = alpha(css("--panel"), 0.9);
        ctx.fillRect(x0 + 3 * dpr, top + 3 * dpr, w, 16 * dpr);
        ctx.fillStyle = color; ctx.textBaseline = "middle"; ctx.textAlign = "left";
        ctx.fillText(m.label, x0 + 7 * dpr, top + 11 * dpr);
        lastLabelEnd = x0 + 3 * dpr + w;
      }
    }
    ctx.restore();
  }
  return {
    hooks: {
      drawClear: [u => draw(u, true)],
      draw: [u => draw(u, false)],
      setCursor: [u => {
        if (!tip) return;
        const { left, top, idx } = u.cursor;
        if (left === undefined || left < 0 || idx === null || idx === undefined) { tip.hidden = true; return; }
        const epoch = u.posToVal(left, "x");
        const hit = getMarkers().filter(m => epoch >= m.window[0] - 0.35 && epoch <= Math.max(m.window[1], m.window[0] + 0.35));
        if (!hit.length) { tip.hidden = true; return; }
        tip.innerHTML = hit.map(m => `<div class="t" style="color:${css(TONES[m.tone] || "--muted")}">${esc(m.label)}</div>` +
          `<div>${T["run.epoch"]} ${m.epoch} → ${m.window[1]}</div>` +
          m.changes.map(c => `<div><code>${esc(c.key)}</code> ${esc(fmt(c.old))} → <b>${esc(fmt(c.new))}</b></div>`).join("") +
          (m.outcome && m.outcome.delta !== null && m.outcome.delta !== undefined ?
            `<div>${esc(m.outcome.metric)} Δ ${m.outcome.delta >= 0 ? "+" : ""}${fmt(m.outcome.delta)}</div>` : "")).join("<hr>");
        const r = u.over.getBoundingClientRect();
        tip.style.left = Math.min(r.left + left + 14, innerWidth - 360) + "px";
        tip.style.top = (r.top + top + 14) + "px";
        tip.hidden = false;
      }],
    },
  };
}

function lineChart(el, series, { logY = false, markers = () => [], tip = null, xLabel = "epoch" } = {}) {
  const colors = ["--c1", "--c2", "--c3", "--c4", "--c5", "--c6"];
  const opts = {
    width: Math.max(200, el.clientWidth), height: 230,
    plugins: [markersPlugin(markers, tip)],
    cursor: { points: { size: 6 }, drag: { x: true, y: false } },
    legend: { live: false },
    scales: { x: { time: false }, y: logY ? { distr: 3 } : { auto: true } },
    axes: [
      { stroke: css("--muted"), grid: { stroke: css("--line"), width: 1 }, ticks: { stroke: css("--line") }, label: xLabel,
        labelSize: 18, size: 36 },
      { stroke: css("--muted"), grid: { stroke: css("--line"), width: 1 }, ticks: { stroke: css("--line") }, size: 56,
        values: (u, vals) => vals.map(v => v === null || v === undefined ? "" : logY ? v.toExponential(0) : +v.toFixed(4)) },
    ],
    series: [{ label: xLabel }, ...series.map((s, i) => ({
      label: s.label, stroke: css(s.color || colors[i % colors.length]), width: 2, dash: s.dash,
      points: { show: (u, si, i0, i1) => i1 - i0 < 60, fill: css("--panel") }, spanGaps: true,
      value: (u, v) => v === null || v === undefined ? "–" : fmt(v),
    }))],
  };
  const chart = new uPlot(opts, [[]].concat(series.map(() => [])), el);
  let width = opts.width;  // follow the width only: a size that feeds back into the element would grow forever
  new ResizeObserver(() => {
    const w = Math.max(200, el.clientWidth);
    if (w !== width) { width = w; chart.setSize({ width: w, height: 230 }); }
  }).observe(el);
  return chart;
}
