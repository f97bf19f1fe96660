"""Method-zoo benchmark: every registered method on every scenario, several seeds, against the retrain oracle.

For each (scenario, seed) the scenario is prepared once (Original + retrain oracle(s), cached) and every method runs
on it with its tuned preset for (dataset, model, scenario) when one exists (``expunge tune``; sub-class falls back to
the full-class preset, owners and sequential to the random one) and its paper defaults otherwise. Each method row
reports forget / retain / test accuracy, the loss-MIA AUC, gaps to the oracle, unlearning time / oracle time and
peak memory as mean ± 95% Student-t half-width over seeds (steps of the sequential scenario are averaged within a
seed first), and whether it reaches **retrain parity**: |Δ forget acc| ≤ 0.02, |Δ test acc| ≤ 0.02 and
|Δ MIA AUC| ≤ 0.05 (on the mean over seeds).

Results are written after every (seed, scenario) and a rerun resumes: (seed, scenario, method) rows already in the
JSON are kept and not recomputed (``--redo`` reruns them and replaces them in place). ``--set SCENARIO:NAME=VALUE``
sets a scenario parameter (e.g. ``full-class:classes=Sandal``); ``--param METHOD:NAME=VALUE`` overrides a method's
hyperparameter (shown in the row); ``--no-presets`` ignores tuned presets; ``--tag T`` names rows ``METHOD [T]`` so a
tuned variant sits beside the paper-default row of the same method. Each table's MIA AUC is the one its scenario's
tuning objective uses (sub-class: ``mia_loss_auc_matched``).

    python benchmarks/method_zoo.py --data digits --model mlp --seeds 0 1 2
    python benchmarks/method_zoo.py --data fashion-mnist --model cnn --seeds 1 2 --scenarios full-class random \
        --set full-class:classes=Sandal --threads 2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from expunge._io import atomic_write_json, atomic_write_text
from expunge.errors import ExpungeError
from expunge.methods.base import METHODS
from expunge.metrics.aggregate import format_mean_ci, gap_closed
from expunge.scenarios.base import SCENARIOS as SCENARIO_REGISTRY
from expunge.scenarios.base import get_scenario

RESULTS = Path(__file__).parent / "results"
SCENARIOS = ["full-class", "sub-class", "random", "owners", "sequential"]
PARITY = {"forget_acc": 0.02, "test_acc": 0.02, "mia_loss_auc": 0.05}
# A run whose Original and Retrain forget accuracies differ by less than this has no gap to close: its share is left out
GAP_FLOOR = 0.01
# Rows measured since the monitor hands freed memory back to the OS before a method starts carry this tag; older
# rows' peak deltas could hide allocations the allocator served from memory it had kept (see expunge.train.monitor).
MEMORY_PROBE = "hwm, release-first"


def mia_of(scenario: str) -> str:
    """The MIA AUC a scenario's table shows and its parity judges: the one its tuning objective uses (sub-class:
    ``mia_loss_auc_matched``, see :mod:`expunge.scenarios.sub_class`), so tuning and parity cannot disagree."""
    return next(m for m in SCENARIO_REGISTRY.get(scenario).objective_metrics if m.startswith("mia_"))


def parity_tolerances(scenario: str) -> dict[str, float]:
    """The parity criteria of a scenario: forget / test accuracy and its MIA AUC."""
    return {"forget_acc": PARITY["forget_acc"], "test_acc": PARITY["test_acc"],
            mia_of(scenario): PARITY["mia_loss_auc"]}


def peak_delta_mb(mr: list[dict[str, Any]]) -> str:
    """Mean ± CI over the rows measured with the release-first probe; otherwise '≥ mean' of the older rows (their
    deltas can only be too low: memory the allocator kept was reused without raising the RSS)."""
    trusted = [r for r in mr if r.get("memory_probe") == MEMORY_PROBE]
    if trusted:
        return ci(trusted, lambda r: r["peak_delta_bytes"] / 2**20, 1)
    old = mean(per_seed(mr, lambda r: r["peak_delta_bytes"] / 2**20))
    return "—" if old is None else f"≥ {old:.0f}"


def preset_params(data: str, model: str, scenario: str, method: str) -> tuple[dict[str, Any] | None, str]:
    found = SCENARIO_REGISTRY.get(scenario).preset_for(data, model, method)
    return (None, "paper defaults") if found is None else (found[1], found[0])


def row_label(r: dict[str, Any]) -> str:
    """A row's method label: ``label`` (records since the typed RunRecord); rows written before it kept the label
    (``"ssd [tuned]"``) in ``method``."""
    return str(r.get("label") or r["method"])


def mean(values: list[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return statistics.fmean(vals) if vals else None


def fmt(v: float | None, digits: int = 3) -> str:
    return "—" if v is None else f"{v:.{digits}f}"


def per_seed(recs: list[dict[str, Any]], get: Any) -> list[float]:
    """One value per seed (the mean over a sequential scenario's steps within the seed)."""
    by_seed: dict[int, list[float | None]] = {}
    for r in recs:
        by_seed.setdefault(r["seed"], []).append(get(r))
    return [m for m in (mean(v) for v in by_seed.values()) if m is not None]


def ci(recs: list[dict[str, Any]], get: Any, digits: int = 3) -> str:
    """mean ± 95% t half-width over seeds (just the mean with one seed)."""
    return format_mean_ci(per_seed(recs, get), digits)


def method_threads(r: dict[str, Any]) -> Any:
    return r["env"].get("torch_threads")


def method_timing(r: dict[str, Any]) -> tuple[Any, Any]:
    """(torch threads, machine image) the method ran under: its time is only compared with oracles trained under
    both (sessions on different VM images — the ``platform`` string — ran at different speeds: the same 54k-example
    oracle took 505 s on one and 374 s on another, both idle)."""
    return r["env"].get("torch_threads"), r["env"].get("platform")


def reference_retrain_times(records: list[dict[str, Any]]) -> dict[tuple[int, Any, Any], float]:
    """(retain-set size, torch threads, machine image) -> the fastest oracle training time measured there.

    Every oracle of one benchmark file trains the same recipe on its retain set, so oracles with equal retain-set size
    do the same work; on one machine image their times differ only by the machine's load when they ran. A method's
    speed-up is taken against the fastest such oracle trained at the method's own thread count on the method's machine
    image (the least-loaded, i.e. the most conservative, measurement) — not against its own seed's oracle, which may
    have shared the machine with another job."""
    out: dict[tuple[int, Any, Any], float] = {}
    seen: set[str] = set()
    for r in records:
        if "env" not in r or r.get("oracle_key") in seen or "oracle_env" not in r:
            continue
        seen.add(r["oracle_key"])
        key = (r["request"]["n_retain"], r["oracle_env"].get("torch_threads"), r["oracle_env"].get("platform"))
        out[key] = min(out.get(key, float("inf")), r["retrain_time_s"])
    return out


def speed_up(r: dict[str, Any], ref: dict[tuple[int, Any], float]) -> float | None:
    """Like-for-like retrain time / unlearning time (see :func:`reference_retrain_times`); against the record's own
    oracle when no oracle of its retain-set size is known to have trained at the method's thread count."""
    if not r.get("time_ratio_to_retrain"):
        return None
    method_s = r["time_ratio_to_retrain"] * r["retrain_time_s"]
    base = ref.get((r["request"]["n_retain"], *method_timing(r)), r["retrain_time_s"])
    return None if method_s <= 0 else base / method_s


def collapsed_runs(mr: list[dict[str, Any]]) -> int:
    """Runs (seeds, or sequential steps) whose model gave non-finite outputs: the metric suite reports None with the
    reason for them, so the means over the rest must not pass for the whole method (no parity with any collapse)."""
    return sum(1 for r in mr if r["metrics"].get("test_acc") is None)


def why_not_parity(mr: list[dict[str, Any]], mia: str = "mia_loss_auc") -> str:
    """Which parity criteria a method misses, and in which direction (means over seeds of signed differences)."""
    def signed(metric: str, role: str = "retrain") -> float | None:
        return mean(per_seed(mr, lambda r: None if r["metrics"].get(metric) is None or r[role].get(metric) is None
                             else r["metrics"][metric] - r[role][metric]))

    if mean(per_seed(mr, lambda r: r["metrics"]["test_acc"])) is None:
        return "collapsed (non-finite outputs)"
    n_bad = collapsed_runs(mr)
    out = [f"collapsed (non-finite outputs) in {n_bad} of {len(mr)} runs, values over the rest"] if n_bad else []
    d_forget, d_orig = signed("forget_acc"), signed("forget_acc", "original")
    if d_forget is not None and abs(d_forget) > PARITY["forget_acc"]:
        if d_forget > 0 and d_orig is not None and d_orig >= -PARITY["forget_acc"]:
            out.append("forgets nothing")
        else:
            out.append(f"{'under' if d_forget > 0 else 'over'}-forgets ({d_forget:+.3f})")
    d_test = signed("test_acc")
    if d_test is not None and abs(d_test) > PARITY["test_acc"]:
        out.append(f"test {d_test:+.3f}")
    d_mia = signed(mia)
    if d_mia is None:
        out.append(f"{mia} not measured")
    elif abs(d_mia) > PARITY["mia_loss_auc"]:
        out.append(f"MIA AUC {d_mia:+.3f}")
    # all signed means within tolerance but a mean |gap| is not: the seeds miss on opposite sides
    return "no: " + ", ".join(out) if out else "no: seeds miss on opposite sides (mean |gap| over tolerance)"


def instance_note(recs: list[dict[str, Any]], mia: str = "mia_loss_auc") -> list[str]:
    """A warning when rows of one seed were measured against different trainings of that seed's Original and oracle.

    The store keys a model by its inputs (data, recipe, seed), but training is not bit-reproducible across machine
    images, so a store rebuilt elsewhere retrains different weights under the same key. Each row stays consistent (its
    gaps are to its own oracle); the Original / Retrain rows then average the instances, and how far two retrains of
    one seed lie apart is the oracle's own noise floor, against which the parity tolerances must be read."""
    by_seed: dict[tuple[int, Any], dict[tuple[Any, ...], dict[str, Any]]] = {}
    for r in recs:  # an instance is told apart by metrics every row has (a newer metric may be missing in older rows)
        ident = tuple(r["retrain"].get(m) for m in ("forget_acc", "retain_acc", "test_acc", "mia_loss_auc"))
        by_seed.setdefault((r["seed"], r.get("step")), {})[ident] = r["retrain"]
    multi = [list(v.values()) for v in by_seed.values() if len(v) > 1]
    if not multi:
        return []

    def spread(metric: str) -> str:
        gaps = [max(vals) - min(vals) for inst in multi
                if len(vals := [x[metric] for x in inst if x.get(metric) is not None]) > 1]
        return f"{max(gaps):.3f}" if gaps else "(not measured on two)"

    f, t, m = spread("forget_acc"), spread("test_acc"), spread(mia)
    seeds = sorted({k[0] for k, v in by_seed.items() if len(v) > 1})
    return [f"Seed(s) {seeds}: rows were measured against several trainings of the seed's Original and oracle (the "
            "store was rebuilt on another machine image: training is not bit-reproducible across images). Each row's "
            "Δ and parity are to its own oracle; the Original / Retrain rows average the instances. Two retrains of "
            f"one seed differ by up to {f} forget accuracy, {t} test accuracy and {m} MIA AUC: the "
            "oracle's own noise floor.", ""]


def mia_note(scenario: str) -> list[str]:
    if (mia := mia_of(scenario)) == "mia_loss_auc":
        return []
    return [f"MIA AUC here is `{mia}`: the loss-LR attack against the test examples of the forgotten "
            "fine class only. Against the whole test set (`mia_loss_auc`) nearly every loss of this coarse-label "
            "model is ~0, the logistic regression's sign follows the means and can contradict the ranking: two "
            "retrains of one seed scored 0.29 and 0.70, so no method could be judged on it.", ""]


def summarise(records: list[dict[str, Any]], data: str, model: str) -> str:
    lines = [f"# Method zoo: {data} / {model}", ""]
    if not records:
        return "\n".join([*lines, "(no results yet)"])
    ok = [r for r in records if "env" in r]
    if not ok:
        return "\n".join([*lines, "(no successful runs yet)"])
    env = ok[0]["env"]
    seeds = sorted({r["seed"] for r in records})
    lines += [f"Seeds {seeds}; torch {env['torch']}, {env['cpu_count']} CPU cores. Values are mean ± 95% Student-t "
              "half-width over seeds (one value: one seed or no spread; `sequential`: steps averaged within each "
              "seed first). Parity (on the means): |Δforget| ≤ 0.02, |Δtest| ≤ 0.02, |ΔMIA AUC| ≤ 0.05 to the "
              "retrain oracle; where a method misses it, the parity column says which criterion, with the signed "
              "mean difference to the oracle ('forgets nothing': forget accuracy still at the Original's). Forget gap "
              "closed = (Original − method) / (Original − Retrain) forget accuracy, per run (1: at the Retrain's, 0: "
              "still at the Original's, > 1: past it; left out where the two differ by < 0.01). "
              "Speed-up = retrain time / unlearning time (one-off cached statistics excluded), like for like: the "
              "retrain time is the fastest oracle of the same retain-set size trained at the method's thread count "
              "on the method's machine image (see Timing conditions). Peak Δmem is the rise of the process's peak "
              "RSS during the method, over the rows measured since the monitor hands freed memory back to the OS "
              "first; '≥ x': only older rows, whose deltas are lower bounds (allocations served from memory the "
              "allocator had kept did not raise the RSS). 'collapsed (non-finite outputs) in k of n runs': k runs "
              "(seeds; `sequential`: seed × step) gave NaN/inf outputs, which the metrics report as missing, not as "
              "a value; the row's values are over the other runs and such a method is never at parity.", ""]
    parity_rows = []
    ref = reference_retrain_times(records)
    for scen in dict.fromkeys(r["scenario"] for r in records):
        everything = [r for r in records if r["scenario"] == scen]
        recs = [r for r in everything if "env" in r]
        if not recs:
            continue
        n_seeds, mia, tolerances = len({r["seed"] for r in recs}), mia_of(scen), parity_tolerances(scen)
        cols = ("forget_acc", "retain_acc", "test_acc", mia)
        lines += [f"## {scen}", "", f"{n_seeds} seed(s); {recs[0]['request']['n_forget']} forget examples "
                  f"(`{recs[0]['forget']}`{', steps: ' + str(recs[0]['k']) if 'k' in recs[0] else ''}).", "",
                  *mia_note(scen), *instance_note(recs, mia),
                  "| method | params | forget | retain | test | MIA AUC | Δforget | Δtest | ΔMIA | forget gap closed | "
                  "speed-up | peak Δmem (MB) | parity |", "|" + "---|" * 13]
        for role in ("original", "retrain"):
            lines.append(f"| {role.capitalize()} | | " + " | ".join(
                ci(recs, lambda r, c=c, role=role: r[role].get(c)) for c in cols)
                + " | | | | " + ("1 | 1 | | |" if role == "retrain" else "0 | | | |"))
        for method in sorted({row_label(r) for r in everything}):  # "X [tuned]" sorts right after X
            mr = [r for r in everything if row_label(r) == method]
            if any(r.get("error") for r in mr):
                lines.append(f"| {method} | | not applicable: {mr[0]['error'][:80]} |" + " |" * 10)
                continue
            gaps = {m: mean(per_seed(mr, lambda r, m=m: r["gap_to_retrain"].get(m))) for m in tolerances}
            speed = mean(per_seed(mr, lambda r: speed_up(r, ref)))
            parity = not collapsed_runs(mr) and all(g is not None and g <= tolerances[m] for m, g in gaps.items())
            if parity:
                parity_rows.append((scen, method, speed))
            lines.append(
                f"| {method} | {mr[0]['preset']} | "
                + " | ".join(ci(mr, lambda r, c=c: r["metrics"].get(c)) for c in cols)
                + " | " + " | ".join(ci(mr, lambda r, m=m: r["gap_to_retrain"].get(m)) for m in tolerances)
                + f" | {ci(mr, lambda r: gap_closed(r, 'forget_acc', min_gap=GAP_FLOOR), 2)}"
                + f" | {ci(mr, lambda r: speed_up(r, ref), 1)}×"
                f" | {peak_delta_mb(mr)} | "
                f"{'**yes**' if parity else why_not_parity(mr, mia)} |")
        lines.append("")
    lines += ["## Timing conditions", "", "Each seed's oracle and the threads it and the methods ran at. Oracles of "
              "equal retain-set size do the same work, so on one machine image (VM build, env `platform`) their times "
              "differ only by machine load (some shared the 2 cores with another benchmark job); sessions on "
              "different images ran at different speeds. Speed-ups above divide the reference retrain time — the "
              "fastest oracle at the method's thread count on the method's image — by the method's time ('own "
              "oracle': no such oracle is known, the row's own oracle is used).", "",
              "| seed | scenario | oracle time (s) | oracle torch threads | method torch threads | reference retrain "
              "time (s) | methods |", "|---|---|---|---|---|---|---|"]
    groups: dict[tuple[int, str], list[dict[str, Any]]] = {}
    for r in records:
        if "env" in r:
            groups.setdefault((r["seed"], r["scenario"]), []).append(r)
    for (seed, scen), recs in sorted(groups.items()):
        threads = sorted({method_threads(r) for r in recs})
        refs = sorted({f"{ref[k]:.0f}" if (k := (recs[0]['request']['n_retain'], *t)) in ref else "own oracle"
                       for t in {method_timing(r) for r in recs}})
        lines.append(f"| {seed} | {scen} | {recs[0]['retrain_time_s']:.0f} | "
                     f"{recs[0].get('oracle_env', {}).get('torch_threads', '?')} | {', '.join(map(str, threads))} | "
                     f"{', '.join(refs) or '—'} | {len({r['method'] for r in recs})} |")
    lines += ["", "## Retrain parity", ""]
    lines += [f"- {scen}: `{m}` at {fmt(s, 1)}× speed-up" for scen, m, s in parity_rows] or ["- none"]
    return "\n".join(lines) + "\n"


def parse_kv(items: list[str], what: str) -> dict[str, dict[str, str]]:
    """``["full-class:classes=Sandal", ...]`` → ``{"full-class": {"classes": "Sandal"}}``."""
    out: dict[str, dict[str, str]] = {}
    for item in items:
        owner, _, kv = item.partition(":")
        name, sep, value = kv.partition("=")
        if not sep:
            raise SystemExit(f"{what} expects OWNER:NAME=VALUE, got {item!r}")
        out.setdefault(owner, {})[name] = value
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="digits")
    ap.add_argument("--model", default="mlp")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--scenarios", nargs="+", default=SCENARIOS)
    ap.add_argument("--methods", nargs="+", default=None, help="default: every registered method")
    ap.add_argument("--set", dest="sets", nargs="*", default=[], help="SCENARIO:NAME=VALUE scenario parameter")
    ap.add_argument("--param", dest="params", nargs="*", default=[], help="METHOD:NAME=VALUE override")
    ap.add_argument("--store", default=str(Path(".bench-store").resolve()))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-presets", action="store_true", help="paper defaults (plus --param) even where a tuned "
                                                             "preset exists")
    ap.add_argument("--tag", default="", help="rows are named 'METHOD [TAG]' (e.g. tuned variants beside the "
                                              "paper-default rows)")
    ap.add_argument("--fresh", action="store_true", help="ignore (and overwrite) earlier results")
    ap.add_argument("--redo", action="store_true", help="rerun the selected (seed, scenario, method) rows and "
                                                       "replace them (e.g. after a metric was added)")
    ap.add_argument("--report-only", action="store_true", help="rewrite the markdown from the JSON and stop")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    methods = args.methods or METHODS.names()
    scen_params, overrides = parse_kv(args.sets, "--set"), parse_kv(args.params, "--param")
    out = RESULTS / f"method_zoo_{args.data}_{args.model}"
    records: list[dict[str, Any]] = []
    if out.with_suffix(".json").exists() and not args.fresh:
        records = json.loads(out.with_suffix(".json").read_text())
    row_name = (lambda m: f"{m} [{args.tag}]") if args.tag else (lambda m: m)
    done = {(r["seed"], r["scenario"], row_label(r)) for r in records}
    if args.redo:  # an old row is replaced only once its rerun has finished, so a crash loses nothing
        done -= {(s, sc, row_name(m)) for s in args.seeds for sc in args.scenarios for m in methods}
    from expunge.store import ArtifactStore

    store = ArtifactStore(args.store)

    def write() -> None:
        for r in records:  # the oracle's training threads: the like-for-like speed-ups and the timing table use them
            if "oracle_key" in r and "oracle_env" not in r:
                r["oracle_env"] = (store.read_manifest("oracle", r["oracle_key"]) or {}).get("env", {})
        atomic_write_json(out.with_suffix(".json"), records)
        atomic_write_text(out.with_suffix(".md"), summarise(records, args.data, args.model))

    if args.report_only:
        write()
        return
    t0 = time.perf_counter()
    for seed in args.seeds:
        for scen_name in args.scenarios:
            todo = [m for m in methods if (seed, scen_name, row_name(m)) not in done]
            if not todo:
                continue
            scenario = get_scenario(scen_name, scen_params.get(scen_name))
            setting = scenario.prepare(args.data, args.model, seed=seed, store=store, progress=False)
            for method in todo:
                params, source = ((None, "paper defaults") if args.no_presets
                                  else preset_params(args.data, args.model, scen_name, method))
                if method in overrides:
                    params = {**(params or {}), **overrides[method]}
                    source = f"{source} + " + ", ".join(f"{k}={v}" for k, v in overrides[method].items())
                try:
                    recs = [r.to_json() for r in scenario.run(setting, method, params, save=False,
                                                              label=row_name(method), params_source=source)]
                except ExpungeError as exc:  # e.g. a class-only method on a random request
                    recs = [{"scenario": scen_name, "method": method, "label": row_name(method), "seed": seed,
                             "error": str(exc)}]
                for r in recs:
                    r["preset"] = source
                    r["load_avg"] = os.getloadavg()
                    r["memory_probe"] = MEMORY_PROBE
                key = (seed, scen_name, row_name(method))  # --redo: the new rows take the old ones' place
                pos = next((i for i, r in enumerate(records) if (r["seed"], r["scenario"], row_label(r)) == key),
                           len(records))  # no earlier row matches, so dropping the old rows leaves pos in place
                records[:] = [r for r in records if (r["seed"], r["scenario"], row_label(r)) != key]
                records[pos:pos] = recs
                gaps = {} if recs[0].get("error") else recs[-1]["gap_to_retrain"]
                print(f"[{time.perf_counter() - t0:6.0f}s] seed {seed} {scen_name:10s} {method:17s} "
                      + ("error" if recs[0].get("error") else
                         f"Δforget {fmt(gaps.get('forget_acc'))} Δtest {fmt(gaps.get('test_acc'))} "
                         f"speed-up {1 / max(recs[-1]['time_ratio_to_retrain'] or 1e-9, 1e-9):.1f}"), flush=True)
                write()


if __name__ == "__main__":
    main()
