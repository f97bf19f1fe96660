// Views 2, 3, 6 and 7 for the picked models A and B (with the Original and the Retrain of A's run as references).
import { api, describe } from "/static/app.js";

const COLOURS = { A: "#1f5fbf", B: "#c46a00", Original: "#7a7a7a", Retrain: "#2e9d4a" };
const PLOT_CONFIG = { displaylogo: false, responsive: true };

export function setMessage(el, text) { el.textContent = text || ""; }

function section(name) {
  const el = document.getElementById(`view-${name}`);
  return { el, msg: el.querySelector(".msg") };
}

async function guarded(name, draw) {
  const { el, msg } = section(name);
  setMessage(msg, "");
  try {
    await draw(el, msg);
    el.dataset.rendered = "1";
  } catch (err) {
    setMessage(msg, err.message);
    el.dataset.rendered = "message";
  }
}

const runOf = (ref) => ref.split(":")[0];

// --- 2: class-wise accuracy ------------------------------------------------------------------------------------------
export function renderClasswise(a, b) {
  return guarded("classwise", async () => {
    const refs = { A: a, B: b, Original: `${runOf(a)}:original`, Retrain: `${runOf(a)}:retrain` };
    const data = {};
    for (const [k, ref] of Object.entries(refs)) data[k] = await api(`/api/models/${ref}/classwise`);
    const classes = data.A.classes;
    const forgotten = new Set(data.A.forget_classes);
    for (const split of ["train", "test"]) {
      const traces = Object.entries(data).map(([k, d]) => ({
        type: "bar", name: k === "A" || k === "B" ? `${k}: ${describe(refs[k])}` : `${k} (of A's run)`,
        x: classes, y: d[split], marker: { color: COLOURS[k], line: { width: classes.map((_, i) => forgotten.has(i) ? 2 : 0), color: "#d00" } },
      }));
      const shapes = [...forgotten].map((i) => ({ type: "rect", xref: "x", yref: "paper", x0: i - 0.5, x1: i + 0.5,
        y0: 0, y1: 1, fillcolor: "#ffd6d6", opacity: 0.5, line: { width: 0 }, layer: "below" }));
      Plotly.newPlot(`plot-classwise-${split}`, traces, {
        title: { text: `${split} accuracy per class (forgotten classes shaded)` }, barmode: "group", height: 300,
        yaxis: { range: [0, 1.02], title: { text: "accuracy" } }, xaxis: { type: "category" }, shapes, margin: { t: 40, b: 40 },
        legend: { orientation: "h", y: -0.25 } }, PLOT_CONFIG);
    }
  });
}

// --- 3: prediction matrices --------------------------------------------------------------------------------------
let predRefs = null;
export function renderPredictions(a, b) {
  predRefs = [a, b];
  const select = document.getElementById("pred-split");
  if (!select.dataset.bound) {
    select.dataset.bound = "1";
    select.addEventListener("change", () => predRefs && renderPredictions(...predRefs));
  }
  return guarded("predictions", async () => {
    const split = select.value;
    const [pa, pb] = [await api(`/api/models/${a}/predictions?split=${split}`),
      await api(`/api/models/${b}/predictions?split=${split}`)];
    const heat = (d, title, id, z, colorscale, zmin, zmax) => Plotly.newPlot(id, [{
      type: "heatmap", z, x: d.classes, y: d.classes, colorscale, zmin, zmax,
      customdata: d.confidence, hovertemplate: "true %{y} → predicted %{x}: %{z:.3f}<br>mean confidence %{customdata}<extra></extra>",
    }], { title: { text: title }, height: 320, xaxis: { title: { text: "predicted" }, type: "category" },
      yaxis: { title: { text: "true" }, type: "category", autorange: "reversed" }, margin: { t: 40 } }, PLOT_CONFIG);
    heat(pa, `A: share predicted (${split})`, "plot-pred-A", pa.share, [[0, "#ffffff"], [1, COLOURS.A]], 0, 1);
    heat(pb, `B: share predicted (${split})`, "plot-pred-B", pb.share, [[0, "#ffffff"], [1, COLOURS.B]], 0, 1);
    const diff = pa.share.map((row, i) => row.map((v, j) => v - pb.share[i][j]));
    heat({ ...pa, confidence: pa.share.map((r) => r.map(() => "")) }, "A − B", "plot-pred-diff", diff, [[0, COLOURS.B], [0.5, "#ffffff"], [1, COLOURS.A]], -1, 1);
  });
}

// --- 6: membership-inference attack --------------------------------------------------------------------------------
const attackState = { data: null, sorted: null };

function rates(sorted, t, memberIf) {
  // share of values on the member side of threshold t (binary search in the sorted values)
  const lower = (arr, x, strict) => { let lo = 0, hi = arr.length;
    while (lo < hi) { const m = (lo + hi) >> 1; if (strict ? arr[m] < x : arr[m] <= x) lo = m + 1; else hi = m; } return lo; };
  const f = sorted.forget, s = sorted.test;
  if (memberIf === "below") return [lower(f, t, false) / Math.max(f.length, 1), lower(s, t, false) / Math.max(s.length, 1)];
  return [1 - lower(f, t, true) / Math.max(f.length, 1), 1 - lower(s, t, true) / Math.max(s.length, 1)];
}

const logScale = (feature) => feature !== "confidence";
const tx = (feature, v) => (logScale(feature) ? Math.log10(Math.max(v, 1e-12)) : v);

function drawAttack() {
  const d = attackState.data;
  const slider = document.getElementById("attack-threshold");
  const strategy = document.getElementById("attack-strategy").value;
  const lo = Number(slider.dataset.lo), hi = Number(slider.dataset.hi);
  const sliderT = lo + (hi - lo) * Number(slider.value) / 1000;
  const thresholds = {};
  for (const k of ["A", "B"]) {
    const m = d.models[k];
    thresholds[k] = strategy === "custom" ? (logScale(d.feature) ? 10 ** sliderT : sliderT)
      : strategy === "common" ? d.common_threshold : m[strategy].threshold;
  }
  document.getElementById("attack-threshold-value").textContent =
    Object.entries(thresholds).map(([k, t]) => `${k}: ${Number(t).toPrecision(3)}`).join("  ");
  const rows = [];
  for (const k of ["A", "B"]) {
    const m = d.models[k];
    const [tpr, fpr] = rates(attackState.sorted[k], thresholds[k], d.member_if);
    rows.push(`<tr><td>${k}: ${describe(k === "A" ? attackState.refs[0] : attackState.refs[1])}</td>
      <td>${((tpr + 1 - fpr) / 2).toFixed(3)}</td><td>${tpr.toFixed(3)}</td><td>${fpr.toFixed(3)}</td>
      <td>${m.max_success.accuracy.toFixed(3)}</td><td>${m.max_attack_score.f1.toFixed(3)}</td>
      <td>${m.tpr_at_fpr["0.01"] === null ? "—" : m.tpr_at_fpr["0.01"].toFixed(3)}</td>
      <td>${m.tpr_at_fpr["0.001"] === null ? "—" : m.tpr_at_fpr["0.001"].toFixed(3)}</td>
      <td>${m.n_forget} / ${m.n_test}</td></tr>`);
    const x = (vals) => vals.filter((v) => v !== null).map((v) => tx(d.feature, v));
    const line = tx(d.feature, thresholds[k]);
    Plotly.react(`plot-attack-${k}`, [
      { type: "histogram", name: "forget", x: x(m.forget_values), histnorm: "probability", opacity: 0.6, marker: { color: "#d62728" } },
      { type: "histogram", name: "test", x: x(m.test_values), histnorm: "probability", opacity: 0.6, marker: { color: "#7f7f7f" } },
    ], { title: { text: `${k}: ${d.feature}, forget vs test` }, barmode: "overlay", height: 280, margin: { t: 40 },
      xaxis: { title: { text: logScale(d.feature) ? `log10 ${d.feature}` : d.feature } },
      shapes: [{ type: "line", x0: line, x1: line, yref: "paper", y0: 0, y1: 1, line: { color: COLOURS[k], width: 2 } }] },
    PLOT_CONFIG);
  }
  document.getElementById("attack-table").innerHTML = `<tr><th>model</th><th>attack accuracy</th><th>TPR</th>
    <th>FPR</th><th>max success</th><th>max attack score</th><th>TPR @ 1% FPR</th><th>TPR @ 0.1% FPR</th>
    <th>forget / test</th></tr>` + rows.join("");
}

function drawExposed(k, items) {
  const box = document.getElementById(`exposed-${k}`);
  box.innerHTML = `<div style="width:100%"><b>${k}</b></div>`;
  for (const it of items) {
    const fig = document.createElement("figure");
    if (it.image) {
      const c = document.createElement("canvas");
      c.width = it.image.width; c.height = it.image.height;
      const ctx = c.getContext("2d");
      const img = ctx.createImageData(c.width, c.height);
      const ch = it.image.channels;
      for (let p = 0; p < c.width * c.height; p++) {
        for (let j = 0; j < 3; j++) img.data[4 * p + j] = it.image.pixels[ch === 1 ? p : 3 * p + j];
        img.data[4 * p + 3] = 255;
      }
      ctx.putImageData(img, 0, 0);
      fig.appendChild(c);
    }
    const cap = document.createElement("figcaption");
    cap.textContent = `#${it.id} ${it.label}${it.prediction !== undefined ? `→${it.prediction}` : ""} (${Number(it.value).toPrecision(2)})`;
    fig.appendChild(cap);
    box.appendChild(fig);
  }
}

let attackRefs = null;
export function renderAttack(a, b) {
  attackRefs = [a, b];
  const controls = ["attack-feature", "attack-strategy", "attack-threshold"].map((id) => document.getElementById(id));
  if (!controls[0].dataset.bound) {
    controls[0].dataset.bound = "1";
    controls[0].addEventListener("change", () => attackRefs && renderAttack(...attackRefs));
    controls[1].addEventListener("change", () => attackState.data && drawAttack());
    controls[2].addEventListener("input", () => {
      if (!attackState.data) return;
      document.getElementById("attack-strategy").value = "custom";
      drawAttack();
    });
  }
  return guarded("attack", async () => {
    const feature = controls[0].value;
    const d = await api(`/api/attack?a=${encodeURIComponent(a)}&b=${encodeURIComponent(b)}&feature=${feature}`);
    attackState.data = d;
    attackState.refs = [a, b];
    attackState.sorted = {};
    let lo = Infinity, hi = -Infinity;
    for (const k of ["A", "B"]) {
      const m = d.models[k];
      const num = (arr) => arr.filter((v) => v !== null).sort((p, q) => p - q);
      attackState.sorted[k] = { forget: num(m.forget_values), test: num(m.test_values) };
      for (const v of [...attackState.sorted[k].forget, ...attackState.sorted[k].test]) {
        const t = tx(feature, v); if (t < lo) lo = t; if (t > hi) hi = t;
      }
    }
    const slider = controls[2];
    slider.dataset.lo = String(lo); slider.dataset.hi = String(hi);
    drawAttack();
    drawExposed("A", d.models.A.exposed);
    drawExposed("B", d.models.B.exposed);
  });
}

// --- 7: sequential timeline ----------------------------------------------------------------------------------------
let timelineRefs = null;
export function renderTimeline(a, b) {
  timelineRefs = [a, b];
  const select = document.getElementById("timeline-metric");
  if (!select.dataset.bound) {
    select.dataset.bound = "1";
    select.addEventListener("change", () => timelineRefs && renderTimeline(...timelineRefs));
  }
  return guarded("timeline", async (el, msg) => {
    const runs = [...new Set([runOf(a), runOf(b)])];
    const traces = [];
    let steps = 0;
    for (const [i, run] of runs.entries()) {
      const t = await api(`/api/runs/${run}/timeline`);
      if (!select.options.length) select.innerHTML = t.metrics.map((m) => `<option>${m}</option>`).join("");
      const metric = select.value || t.metrics[0];
      steps = Math.max(steps, t.steps.length);
      const x = t.steps.map((s) => s.step + 1);
      const who = runs.length === 1 ? "A and B" : i === 0 ? "A" : "B";
      const dash = i ? "dot" : "solid";
      traces.push({ x, y: t.steps.map((s) => s.unlearned[metric]), name: `${who}'s run: unlearned`,
        mode: "lines+markers", line: { color: COLOURS[i ? "B" : "A"] } });
      traces.push({ x, y: t.steps.map((s) => s.retrain[metric]), name: `${who}'s run: Retrain`,
        mode: "lines+markers", line: { color: COLOURS.Retrain, dash } });
      traces.push({ x, y: t.steps.map((s) => s.original[metric]), name: `${who}'s run: Original`,
        mode: "lines+markers", line: { color: COLOURS.Original, dash } });
    }
    if (steps < 2) setMessage(msg, "A single request (one step): the timeline has more than one point for sequential runs only.");
    Plotly.newPlot("plot-timeline", traces, { title: { text: `${select.value} after each request` }, height: 300,
      margin: { t: 40 }, xaxis: { title: { text: "request" }, dtick: 1 }, legend: { orientation: "h", y: -0.3 } },
    PLOT_CONFIG);
  });
}
