// Views 4 (layer-wise linear CKA) and 5 (embeddings, one example highlighted in both models on hover).
import { api } from "/static/app.js";
import { setMessage } from "/static/views.js";

const PLOT_CONFIG = { displaylogo: false, responsive: true };
const PAIR_STYLE = {
  "A|Original": { color: "#1f5fbf", dash: "dot" }, "A|Retrain": { color: "#1f5fbf", dash: "solid" },
  "B|Original": { color: "#c46a00", dash: "dot" }, "B|Retrain": { color: "#c46a00", dash: "solid" },
};
const GROUP_COLOURS = { forget: "#d62728", retain: "#9e9e9e", test: "#1f77b4" };

async function guarded(name, draw) {
  const el = document.getElementById(`view-${name}`);
  const msg = el.querySelector(".msg");
  setMessage(msg, "");
  try {
    await draw(el, msg);
    el.dataset.rendered = "1";
  } catch (err) {
    setMessage(msg, err.message);
    el.dataset.rendered = "message";
  }
}

export function renderLayers(a, b) {
  return guarded("layers", async () => {
    const d = await api(`/api/cka?a=${encodeURIComponent(a)}&b=${encodeURIComponent(b)}`);
    for (const group of ["forget", "retain"]) {
      const traces = d.pairs.filter((p) => p.group === group).map((p) => ({
        x: p.layers, y: p.cka, mode: "lines+markers", name: `${p.model} vs ${p.reference}`,
        line: PAIR_STYLE[`${p.model}|${p.reference}`],
      }));
      Plotly.newPlot(`plot-cka-${group}`, traces, { title: { text: `${group} examples` }, height: 300,
        yaxis: { range: [0, 1.02], title: { text: "linear CKA" } }, xaxis: { title: { text: "layer" }, type: "category" },
        margin: { t: 40 }, legend: { orientation: "h", y: -0.3 } }, PLOT_CONFIG);
    }
  });
}

let embRefs = null;
let hoverTimer = null;
let syncing = 0;  // time of the last programmatic hover: its own plotly_hover event must not bounce back

function drawDetail(d) {
  const box = document.getElementById("emb-detail");
  box.innerHTML = "";
  if (d.image) {
    const c = document.createElement("canvas");
    c.width = d.image.width; c.height = d.image.height;
    c.style.width = "112px"; c.style.height = "112px"; c.style.imageRendering = "pixelated";
    const ctx = c.getContext("2d");
    const img = ctx.createImageData(c.width, c.height);
    for (let p = 0; p < c.width * c.height; p++) {
      for (let j = 0; j < 3; j++) img.data[4 * p + j] = d.image.pixels[d.image.channels === 1 ? p : 3 * p + j];
      img.data[4 * p + 3] = 255;
    }
    ctx.putImageData(img, 0, 0);
    box.appendChild(c);
  }
  const p = document.createElement("p");
  p.id = "emb-detail-text";
  p.textContent = `example #${d.id} (${d.group}), label ${d.label}: A predicts ${d.A}, B predicts ${d.B}`;
  box.appendChild(p);
}

export function renderEmbeddings(a, b) {
  embRefs = [a, b];
  const select = document.getElementById("emb-method");
  if (!select.dataset.bound) {
    select.dataset.bound = "1";
    select.addEventListener("change", () => embRefs && renderEmbeddings(...embRefs));
  }
  return guarded("embeddings", async () => {
    const d = await api(`/api/embeddings?a=${encodeURIComponent(a)}&b=${encodeURIComponent(b)}&method=${select.value}`);
    const groups = ["forget", "retain", "test"];
    for (const k of ["A", "B"]) {
      const m = d.models[k];
      const traces = groups.map((g) => {
        const idx = d.group.map((x, i) => (x === g ? i : -1)).filter((i) => i >= 0);
        return { type: "scatter", mode: "markers", name: g, x: idx.map((i) => m.x[i]), y: idx.map((i) => m.y[i]),
          customdata: idx.map((i) => [d.index[i], d.label[i], m.prediction[i]]),
          hovertemplate: `${g} #%{customdata[0]}: label %{customdata[1]}, ${k} predicts %{customdata[2]}<extra></extra>`,
          marker: { color: GROUP_COLOURS[g], size: 5, opacity: 0.7 } };
      });
      await Plotly.newPlot(`plot-emb-${k}`, traces, { title: { text: `${k} (${d.method})` }, height: 340,
        margin: { t: 40 }, xaxis: { showticklabels: false }, yaxis: { showticklabels: false },
        legend: { orientation: "h", y: -0.1 } }, PLOT_CONFIG);
    }
    for (const [from, to] of [["A", "B"], ["B", "A"]]) {
      const el = document.getElementById(`plot-emb-${from}`);
      el.on("plotly_hover", (ev) => {
        const pt = ev.points[0];
        if (Date.now() - syncing < 100) return;
        syncing = Date.now();
        Plotly.Fx.hover(`plot-emb-${to}`, [{ curveNumber: pt.curveNumber, pointNumber: pt.pointNumber }]);
        clearTimeout(hoverTimer);
        hoverTimer = setTimeout(async () => {
          try {
            drawDetail(await api(`/api/example?a=${encodeURIComponent(a)}&b=${encodeURIComponent(b)}` +
              `&group=${groups[pt.curveNumber]}&index=${pt.customdata[0]}`));
          } catch (err) { document.getElementById("emb-detail").textContent = err.message; }
        }, 80);
      });
    }
  });
}
