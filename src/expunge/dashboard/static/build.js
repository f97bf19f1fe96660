// View 8: start a build (a new unlearning run) in the background, watch its progress, cancel it.
import { api, refreshRuns } from "/static/app.js";

let methods = [];
let polling = null;

async function post(path, body) {
  const res = await fetch(path, { method: "POST", headers: { "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body) });
  const data = await res.json().catch(() => ({ error: `${res.status}` }));
  if (!res.ok) throw new Error(data.error || `${res.status}`);
  return data;
}

function renderParams() {
  const m = methods.find((x) => x.name === document.getElementById("build-method").value);
  const box = document.getElementById("build-params");
  box.innerHTML = "";
  for (const p of m ? m.params : []) {
    const label = document.createElement("label");
    label.title = p.help || "";
    const literal = /^Literal\[(.*)\]$/.exec(p.type || "");
    let input;
    if (literal) {
      input = document.createElement("select");
      for (const opt of literal[1].split(",").map((o) => o.trim().replace(/^'|'$/g, ""))) {
        input.add(new Option(opt, opt, false, opt === String(p.default)));
      }
    } else {
      input = document.createElement("input");
      input.value = p.default === null ? "None" : String(p.default);
    }
    input.dataset.name = p.name;
    input.dataset.type = p.type;
    input.dataset.default = input.value;
    label.append(`${p.name}`, input);
    box.appendChild(label);
  }
}

function typed(el) {
  const v = el.value.trim();
  const t = el.dataset.type || "";
  if (v === "None" && t.includes("None")) return null;
  if (t.startsWith("bool")) return v === "true" || v === "True";
  if (t.startsWith("int") && /^-?\d+$/.test(v)) return Number(v);
  if ((t.startsWith("float") || t.startsWith("int")) && v !== "" && !Number.isNaN(Number(v))) return Number(v);
  return v;  // anything else goes as typed: the server's dataclass validation names what is wrong
}

function renderJobs(jobs) {
  const table = document.getElementById("build-jobs");
  if (!jobs.length) { table.innerHTML = ""; return; }
  table.innerHTML = "<tr><th>job</th><th>state</th><th>progress</th><th>cells</th><th>time</th><th></th></tr>" +
    jobs.map((j) => `<tr data-job="${j.id}" data-state="${j.state}"><td>${j.id}: ${j.label}</td><td>${j.state}` +
      `${j.error ? `: ${j.error.replace(/</g, "&lt;")}` : ""}</td><td><progress max="1" value="${j.progress}"></progress></td>` +
      `<td>${j.stored}/${j.cells}</td><td>${j.elapsed_s} s</td><td>${j.state === "running"
        ? `<button type="button" data-cancel="${j.id}">Cancel</button>` : ""}</td></tr>`).join("");
}

async function poll() {
  const jobs = await api("/api/jobs");
  renderJobs(jobs);
  const running = jobs.some((j) => j.state === "running");
  const known = Number(document.getElementById("build-jobs").dataset.finished || 0);
  const finished = jobs.filter((j) => j.state !== "running").length;
  if (finished !== known) {
    document.getElementById("build-jobs").dataset.finished = String(finished);
    await refreshRuns();  // a finished build joins the screening table
  }
  if (!running && polling) { clearInterval(polling); polling = null; }
}

export async function initBuild(state) {
  const template = document.getElementById("build-template");
  template.innerHTML = state.runs.map((r) => `<option value="${r.id}">${r.id}: ${r.dataset}/${r.model} · ${r.label} · ` +
    `${r.request} · seed ${r.seed}</option>`).join("");
  const setForget = () => {
    const run = state.runs.find((r) => String(r.id) === template.value);
    document.getElementById("build-forget").value = run ? run.forget : "";
  };
  template.addEventListener("change", setForget);
  setForget();
  const task = state.runs[0] ? state.runs[0].task : undefined;
  methods = state.runs.length ? await api(`/api/methods${task ? `?task=${task}` : ""}`) : [];
  const select = document.getElementById("build-method");
  select.innerHTML = methods.map((m) => `<option title="${m.summary.replace(/"/g, "&quot;")}">${m.name}</option>`).join("");
  select.addEventListener("change", renderParams);
  renderParams();
  document.getElementById("build-start").disabled = !state.runs.length;
  document.getElementById("build-start").addEventListener("click", async () => {
    const msg = document.getElementById("build-msg");
    msg.textContent = "";
    const params = {};
    for (const el of document.querySelectorAll("#build-params [data-name]")) {
      if (el.value !== el.dataset.default) params[el.dataset.name] = typed(el);  // unchanged: the preset decides
    }
    const seeds = document.getElementById("build-seeds").value.split(",").map((s) => s.trim()).filter(Boolean)
      .map((s) => (/^\d+$/.test(s) ? Number(s) : s));
    try {
      const job = await post("/api/build", { template: Number(template.value), method: select.value, params,
        forget: document.getElementById("build-forget").value, seeds,
        label: document.getElementById("build-label").value || null });
      msg.textContent = `build ${job.id} started: ${job.label}, ${job.cells} cell(s)`;
      if (!polling) polling = setInterval(() => poll().catch((e) => { msg.textContent = e.message; }), 1000);
      await poll();
    } catch (err) {
      msg.textContent = `refused: ${err.message}`;
    }
  });
  document.getElementById("build-jobs").addEventListener("click", async (ev) => {
    const id = ev.target.dataset.cancel;
    if (!id) return;
    await post(`/api/jobs/${id}/cancel`);
    await poll();
  });
}
