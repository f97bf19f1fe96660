"""Method-zoo benchmark: every registered method on every scenario, several seeds, against the retrain oracle.

For each (scenario, seed) the scenario is prepared once (Original + retrain oracle(s), cached) and every method runs
on it with its tuned preset for (dataset, model, scenario) when one exists (``expunge tune``; sub-class falls back to
the full-class preset, owners and sequential to the random one) and its paper defaults otherwise. Each method row
reports forget / retain / test accuracy, the loss-MIA AUC, gaps to the oracle, signed gap closure, speed-up,
precompute and amortised speed-up and peak memory as mean ± 95% Student-t half-width over seeds (steps of the
sequential scenario are averaged within a seed first), and on how many seeds it reaches **retrain parity**. The
verdict rules are the library's (:mod:`expunge.harness.rules`); ``--report-only`` regenerates the markdown from the
JSON.

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
from expunge.harness.rules import GAP_FLOOR, GridRules, SeedParity, gap_closure, reference_time, seed_parity
from expunge.methods.base import METHODS
from expunge.metrics.aggregate import format_mean_ci
from expunge.record import RunRecord
from expunge.scenarios.base import SCENARIOS as SCENARIO_REGISTRY
from expunge.scenarios.base import get_scenario

RESULTS = Path(__file__).parent / "results"
SCENARIOS = ["full-class", "sub-class", "random", "owners", "sequential"]
PARITY = {"forget_acc": 0.02, "test_acc": 0.02, "mia_loss_auc": 0.05}
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


def typed(records: list[dict[str, Any]]) -> dict[int, RunRecord]:
    """The typed record of each successful JSON row, by the row's id (what expunge.harness.rules reads)."""
    return {id(r): RunRecord.from_json(r) for r in records if "env" in r}


def collapsed_runs(mr: list[dict[str, Any]]) -> int:
    """Runs (seeds, or sequential steps) whose model gave non-finite outputs: the metric suite reports None with the
    reason for them, so the means over the rest must not pass for the whole method (no parity with any collapse)."""
    return sum(1 for r in mr if r["metrics"].get("test_acc") is None)


def why_not_parity(mr: list[dict[str, Any]], sp: SeedParity, mia: str = "mia_loss_auc") -> str:
    """Why a method is not at parity on every seed: per-seed counts (:func:`expunge.harness.rules.seed_parity`) and,
    for the criteria it misses, the direction (means over seeds of signed differences)."""
    def signed(metric: str, role: str = "retrain") -> float | None:
        return mean(per_seed(mr, lambda r: None if r["metrics"].get(metric) is None or r[role].get(metric) is None
                             else r["metrics"][metric] - r[role][metric]))

    head = f"no ({sp.label})"
    if mean(per_seed(mr, lambda r: r["metrics"]["test_acc"])) is None:
        return f"{head}: collapsed (non-finite outputs)"
    n_bad = collapsed_runs(mr)
    out = [f"collapsed (non-finite outputs) in {n_bad} of {len(mr)} runs, values over the rest"] if n_bad else []
    if sp.failed:
        out.append(f"nothing unlearned (status no change / diverged) on {sp.failed}/{sp.n_seeds} seeds")
    missed, said = sp.seeds_with("missed"), set()  # said: criteria whose mean already shows the miss
    d_forget, d_orig = signed("forget_acc"), signed("forget_acc", "original")
    if "forget_acc" in missed and d_forget is not None and abs(d_forget) > PARITY["forget_acc"]:
        nothing = d_forget > 0 and d_orig is not None and d_orig >= -PARITY["forget_acc"]
        out.append("forgets nothing" if nothing else f"{'under' if d_forget > 0 else 'over'}-forgets ({d_forget:+.3f})")
        said.add("forget_acc")
    for metric, label, tol in (("test_acc", "test", PARITY["test_acc"]), (mia, "MIA AUC", PARITY["mia_loss_auc"])):
        if (d := signed(metric)) is None and metric == mia:
            out.append(f"{mia} not measured")
        elif metric in missed and d is not None and abs(d) > tol:
            out.append(f"{label} {d:+.3f}")
            said.add(metric)
    # missed on some seeds, but the mean is within tolerance (seeds on opposite sides, or one bad seed)
    out += [f"{m} missed on {n}/{sp.n_seeds} seeds" for m, n in missed.items() if m not in said]
    if not out and sp.no_power:
        out.append(f"no criterion has power on {sp.no_power}/{sp.n_seeds} seeds (doing nothing would pass)")
    return f"{head}: " + ", ".join(out) if out else head


def times(cell: str) -> str:
    """'12.5 ± 1.0×'; a missing value stays '—' ('— (n=1/3)')."""
    return cell if cell.startswith("—") else f"{cell}×"


def closure_cell(mr: list[dict[str, Any]], rr: Any, metric: str) -> str:
    """Signed gap closure over seeds (:func:`expunge.harness.rules.gap_closure`); 'no power' where undefined."""
    cell = ci(mr, lambda r: gap_closure(rr(r), metric, min_gap=GAP_FLOOR), 2)
    return "no power" if cell.startswith("—") else cell


def precompute_cell(rows: list[RunRecord], rules: GridRules) -> str:
    """Mean precompute seconds over seeds and its scope ('one-off' per Original, 'per request'); '?' when a cache hit
    hid it and no source knows the cost; empty when the method caches nothing."""
    pre = [rules.precompute(r) for r in rows]
    scopes = sorted({p.scope for p in pre if p.scope != "none"})
    if not scopes:
        return ""
    by_seed: dict[int, list[float | None]] = {}
    for r, p in zip(rows, pre, strict=True):
        by_seed.setdefault(r.seed, []).append(p.seconds)
    vals = [None if None in v else mean(v) for v in by_seed.values()]
    known = [v for v in vals if v is not None]
    cell = format_mean_ci(vals, 1 if max(known, default=0) >= 1 else 2) if known else "?"
    return f"{cell} {'/'.join(scopes)}"


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
              "seed first). Rules (`expunge.harness.rules`, see the Benchmarks page): **parity per seed** — each run "
              "within |Δforget| ≤ 0.02, |Δtest| ≤ 0.02, |ΔMIA AUC| ≤ 0.05 of its oracle on every criterion with "
              "power ('k/n seeds'; a miss names the criterion and the signed mean difference; 'forgets nothing': "
              "forget accuracy still at the Original's); a criterion the Original itself passes has **no power** and "
              "never counts as met. **Gap closed** = (method − Original) / (Retrain − Original), signed (> 1: past "
              "the Retrain). **Speed-up** = fastest oracle training of the same retain-set size, threads and machine "
              "image / unlearning time. **Precompute**: cached statistics, 'one-off' (per Original) or "
              "'per-request' (per forget set; '?': hidden by a cache hit, cost unknown). **Amortised speed-up** = "
              "retrain / (unlearn + one-off / N + per-request), N = the grid's requests on that Original. Peak Δmem: "
              "rise of the peak RSS during the method ('≥ x': older rows, lower bounds). 'collapsed in k of n "
              "runs': NaN/inf outputs, values over the other runs, never at parity.", ""]
    parity_rows = []
    typed_rows = typed(records)
    rules = GridRules(list(typed_rows.values()))

    def rr(r: dict[str, Any]) -> RunRecord:
        return typed_rows[id(r)]
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
                  "| method | params | forget | retain | test | MIA AUC | Δforget | Δtest | ΔMIA | gap closed "
                  "(forget) | gap closed (MIA) | speed-up | precompute (s) | amortised speed-up | peak Δmem (MB) | "
                  "parity |",
                  "|" + "---|" * 16]
        for role in ("original", "retrain"):
            lines.append(f"| {role.capitalize()} | | " + " | ".join(
                ci(recs, lambda r, c=c, role=role: r[role].get(c)) for c in cols)
                + " | | | | " + ("1 | 1 | 1 | | 1 | | |" if role == "retrain" else "0 | 0 | | | | | |"))
        for method in sorted({row_label(r) for r in everything}):  # "X [tuned]" sorts right after X
            mr = [r for r in everything if row_label(r) == method]
            if any(r.get("error") for r in mr):
                lines.append(f"| {method} | | not applicable: {mr[0]['error'][:80]} |" + " |" * 13)
                continue
            sp = seed_parity([rr(r) for r in mr], tolerances)
            speed = mean(per_seed(mr, lambda r: rules.speed_up(rr(r))))
            amortised = mean(per_seed(mr, lambda r: rules.amortised_speed_up(rr(r))))
            if sp.all_seeds:
                parity_rows.append((scen, method, speed, amortised, sp))

            lines.append(
                f"| {method} | {mr[0]['preset']} | "
                + " | ".join(ci(mr, lambda r, c=c: r["metrics"].get(c)) for c in cols)
                + " | " + " | ".join(ci(mr, lambda r, m=m: r["gap_to_retrain"].get(m)) for m in tolerances)
                + "".join(f" | {closure_cell(mr, rr, m)}" for m in ("forget_acc", mia))
                + f" | {times(ci(mr, lambda r: rules.speed_up(rr(r)), 1))}"
                + f" | {precompute_cell([rr(r) for r in mr], rules)}"
                + f" | {times(ci(mr, lambda r: rules.amortised_speed_up(rr(r)), 1))}"
                f" | {peak_delta_mb(mr)} | "
                + (f"**yes** ({sp.label}{sp.power_note})" if sp.all_seeds else why_not_parity(mr, sp, mia)) + " |")
        lines.append("")
    lines += ["## Timing conditions", "", "Each seed's oracle, its threads and the methods'. Oracles of (nearly) "
              "equal retain-set size do the same work, so on one machine image (env `platform`) their times differ "
              "only by machine load; every training counts, also of one oracle key retrained on another image. "
              "Reference: the fastest such oracle at the method's threads on its image ('own oracle': none known).", "",
              "| seed | scenario | oracle time (s) | oracle torch threads | method torch threads | reference retrain "
              "time (s) | methods |", "|---|---|---|---|---|---|---|"]
    groups: dict[tuple[int, str], list[dict[str, Any]]] = {}
    for r in records:
        if "env" in r:
            groups.setdefault((r["seed"], r["scenario"]), []).append(r)
    for (seed, scen), recs in sorted(groups.items()):
        threads = sorted({r["env"].get("torch_threads") for r in recs})
        refs = sorted({f"{base:.0f}" if like else "own oracle"
                       for base, like in (reference_time(rr(r), rules.reference) for r in recs)})
        lines.append(f"| {seed} | {scen} | {recs[0]['retrain_time_s']:.0f} | "
                     f"{recs[0].get('oracle_env', {}).get('torch_threads', '?')} | {', '.join(map(str, threads))} | "
                     f"{', '.join(refs) or '—'} | {len({r['method'] for r in recs})} |")
    lines += ["", "## Retrain parity", ""]
    lines += [f"- {scen}: `{m}` ({sp.label}{sp.power_note}) at {fmt(s, 1)}× speed-up, {fmt(a, 1)}× amortised"
              for scen, m, s, a, sp in parity_rows] or ["- none"]
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

    if args.report_only:  # the markdown only: the committed JSON (which holds NaNs of older rows) stays as it is
        atomic_write_text(out.with_suffix(".md"), summarise(records, args.data, args.model))
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
