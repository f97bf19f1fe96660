// The dashboard's entry module: the screening table (view 1), picking models A and B, and loading the other views.
import { renderClasswise, renderPredictions, renderAttack, renderTimeline, setMessage } from "/static/views.js";
import { renderLayers, renderEmbeddings } from "/static/repr.js";
import { initBuild } from "/static/build.js";

export const state = { runs: [], metrics: [], sort: { key: "id", dir: 1 }, a: null, b: null };

export async function api(path) {
  const res = await fetch(path);
  let body;
  try { body = await res.json(); } catch { body = { error: `${res.status} ${res.statusText}` }; }
  if (!res.ok) throw new Error(body.error || `${res.status}`);
  return body;
}

const fmt = (v, d = 3) => (v === null || v === undefined ? "—" : Number(v).toFixed(d));
const signed = (v, d = 3) => (v === null || v === undefined ? "—" : (v > 0 ? "+" : "") + Number(v).toFixed(d));

function columns() {
  const cols = [["id", "id"], ["label", "method"], ["request", "request"], ["seed", "seed"], ["step", "step"],
    ["status", "status"]];
  for (const m of state.metrics) cols.push([`v:${m}`, m], [`g:${m}`, `Δ${m}`]);
  cols.push(["speed_up", "speed-up"], ["parity", "seeds at parity"]);
  return cols;
}

function cell(run, key) {
  if (key.startsWith("v:")) return run.values[key.slice(2)];
  if (key.startsWith("g:")) return run.gaps[key.slice(2)];
  return run[key];
}

export function describe(ref) {
  if (!ref) return "—";
  const [id, role] = ref.split(":");
  const run = state.runs.find((r) => String(r.id) === id);
  const what = run ? `${run.label} · ${run.request} · seed ${run.seed}${run.steps ? ` · step ${run.step + 1}` : ""}` : id;
  return role ? `${role === "retrain" ? "Retrain" : "Original"} of [${what}]` : what;
}

function renderTable() {
  const table = document.getElementById("runs-table");
  const cols = columns();
  table.tHead.innerHTML = "<tr><th>A</th><th>B</th>" + cols.map(([k, t]) =>
    `<th data-key="${k}">${t}${state.sort.key === k ? (state.sort.dir > 0 ? " ▲" : " ▼") : ""}</th>`).join("") + "</tr>";
  const needle = document.getElementById("filter").value.trim().toLowerCase();
  const rows = state.runs.filter((r) => !needle ||
    [r.label, r.method, r.request, `seed ${r.seed}`, r.status, r.dataset, r.model].join(" ").toLowerCase().includes(needle));
  const { key, dir } = state.sort;
  rows.sort((x, y) => {
    const a = cell(x, key), b = cell(y, key);
    if (a === b) return x.id - y.id;
    if (a === null || a === undefined) return 1;
    if (b === null || b === undefined) return -1;
    return (a < b ? -1 : 1) * dir;
  });
  table.tBodies[0].innerHTML = rows.map((r) => {
    const cls = [state.a === String(r.id) ? "is-a" : "", state.b === String(r.id) ? "is-b" : ""].join(" ");
    const tds = cols.map(([k]) => {
      const v = cell(r, k);
      if (k.startsWith("v:")) return `<td>${fmt(v)}</td>`;
      if (k.startsWith("g:")) return `<td>${signed(v)}</td>`;
      if (k === "speed_up") return `<td>${v ? fmt(v, 1) + "×" : "—"}</td>`;
      if (k === "parity") return `<td class="text ${r.parity_all ? "good" : ""}">${v}</td>`;
      return `<td class="${typeof v === "number" ? "" : "text"}">${v ?? "—"}</td>`;
    }).join("");
    return `<tr data-id="${r.id}" class="${cls}"><td><input type="radio" name="pick-a" data-id="${r.id}"
      ${state.a === String(r.id) ? "checked" : ""} aria-label="pick ${r.id} as A"></td><td><input type="radio"
      name="pick-b" data-id="${r.id}" ${state.b === String(r.id) ? "checked" : ""} aria-label="pick ${r.id} as B">
      </td>${tds}</tr>`;
  }).join("");
}

export function pick(which, ref) {
  state[which] = ref;
  document.getElementById("pick-a").textContent = `A: ${describe(state.a)}`;
  document.getElementById("pick-b").textContent = `B: ${describe(state.b)}`;
  document.getElementById("b-retrain").disabled = !state.a;
  document.getElementById("b-original").disabled = !state.a;
  renderTable();
  if (state.a && state.b) loadViews();
}

async function loadViews() {
  const { a, b } = state;
  document.getElementById("status").textContent = "computing the views (once per model, then cached)…";
  const jobs = [renderClasswise(a, b), renderPredictions(a, b), renderLayers(a, b), renderEmbeddings(a, b),
    renderAttack(a, b), renderTimeline(a, b)];
  const done = await Promise.allSettled(jobs);
  const failed = done.filter((d) => d.status === "rejected").length;
  document.getElementById("status").textContent = failed ? `${failed} view(s) could not be drawn (see their messages)`
    : `comparing A and B`;
  document.body.dataset.ready = `${a}|${b}`;  // the browser test waits for this
}

export async function refreshRuns() {
  const data = await api("/api/runs");
  state.runs = data.rows;
  state.metrics = data.metrics;
  renderTable();
  return data;
}

async function init() {
  document.getElementById("filter").addEventListener("input", renderTable);
  document.getElementById("runs-table").tHead.addEventListener("click", (ev) => {
    const k = ev.target.closest("th")?.dataset.key;
    if (!k) return;
    state.sort = { key: k, dir: state.sort.key === k ? -state.sort.dir : 1 };
    renderTable();
  });
  document.getElementById("runs-table").tBodies[0].addEventListener("change", (ev) => {
    const input = ev.target;
    if (input.name === "pick-a") pick("a", input.dataset.id);
    if (input.name === "pick-b") pick("b", input.dataset.id);
  });
  document.getElementById("b-retrain").addEventListener("click", () => pick("b", `${state.a.split(":")[0]}:retrain`));
  document.getElementById("b-original").addEventListener("click", () => pick("b", `${state.a.split(":")[0]}:original`));
  let data;
  try {
    data = await api("/api/runs");
  } catch (err) {
    document.getElementById("status").textContent = `cannot read the runs: ${err.message}`;
    return;
  }
  document.getElementById("title").textContent = `expunge dashboard · ${data.title}`;
  state.runs = data.rows;
  state.metrics = data.metrics;
  const msg = document.getElementById("runs-msg");
  if (!data.rows.length) {
    msg.hidden = false;
    msg.textContent = data.failed.length ? "Every run in this folder failed: nothing to compare (see below)."
      : "No runs in this folder yet: run `expunge bench CONFIG --out DIR` and reload.";
  }
  if (data.failed.length) {
    document.getElementById("failed").hidden = false;
    document.getElementById("failed-list").innerHTML = data.failed.map((f) =>
      `<li>${f.label} · ${f.request} · seed ${f.seed}: ${f.error.replace(/</g, "&lt;")}</li>`).join("");
  }
  for (const v of document.querySelectorAll(".view .msg")) if (!v.textContent) setMessage(v, "Pick models A and B in the table.");
  renderTable();
  document.getElementById("status").textContent = `${data.rows.length} run(s), ${data.failed.length} failed`;
  await initBuild(state);
  document.body.dataset.loaded = "1";
}

init();
