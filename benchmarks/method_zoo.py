"""Method-zoo benchmark: every registered method on every scenario, several seeds, against the retrain oracle.

For each (scenario, seed) the scenario is prepared once (Original + retrain oracle(s), cached) and every method runs
on it with its tuned preset for (dataset, model, scenario) when one exists (``expunge tune``; sub-class falls back to
the full-class preset, owners and sequential to the random one) and its paper defaults otherwise. Each method row
reports forget / retain / test accuracy, the loss-MIA AUC, gaps to the oracle, unlearning time / oracle time and
peak memory, averaged over seeds (and over steps for the sequential scenario), and whether it reaches
**retrain parity**: |Δ forget acc| ≤ 0.02, |Δ test acc| ≤ 0.02 and |Δ MIA AUC| ≤ 0.05 (on the mean over seeds).

    python benchmarks/method_zoo.py --data digits --model mlp --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from expunge import presets
from expunge._io import atomic_write_json, atomic_write_text
from expunge.errors import ExpungeError
from expunge.methods.base import METHODS
from expunge.scenarios.base import get_scenario

RESULTS = Path(__file__).parent / "results"
SCENARIOS = ["full-class", "sub-class", "random", "owners", "sequential"]
PRESET_FALLBACK = {"sub-class": "full-class", "owners": "random", "sequential": "random"}
PARITY = {"forget_acc": 0.02, "test_acc": 0.02, "mia_loss_auc": 0.05}


def preset_params(data: str, model: str, scenario: str, method: str) -> tuple[dict[str, Any] | None, str]:
    for scen in (scenario, PRESET_FALLBACK.get(scenario)):
        if scen is None:
            continue
        name = f"{data}/{model}/{scen}"
        try:
            return presets.method_values(name, method), name
        except ExpungeError:
            continue
    return None, "paper defaults"


def mean(values: list[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return statistics.fmean(vals) if vals else None


def fmt(v: float | None, digits: int = 3) -> str:
    return "—" if v is None else f"{v:.{digits}f}"


def summarise(records: list[dict[str, Any]], data: str, model: str) -> str:
    lines = [f"# Method zoo: {data} / {model}", ""]
    if not records:
        return "\n".join([*lines, "(no results yet)"])
    ok = [r for r in records if "env" in r]
    if not ok:
        return "\n".join([*lines, "(no successful runs yet)"])
    env = ok[0]["env"]
    seeds = sorted({r["seed"] for r in records})
    lines += [f"Seeds {seeds}; torch {env['torch']}, {env['cpu_count']} CPU cores. Values are means over seeds (and "
              "steps for `sequential`). Parity: |Δforget| ≤ 0.02, |Δtest| ≤ 0.02, |ΔMIA AUC| ≤ 0.05 to the retrain "
              "oracle. Speed-up = oracle training time / unlearning time (one-off cached statistics excluded).", ""]
    parity_rows = []
    for scen in dict.fromkeys(r["scenario"] for r in records):
        everything = [r for r in records if r["scenario"] == scen]
        recs = [r for r in everything if "env" in r]
        if not recs:
            continue
        lines += [f"## {scen}", "", "| method | params | forget | retain | test | MIA AUC | Δforget | Δtest | ΔMIA | "
                  "speed-up | peak Δmem (MB) | parity |", "|" + "---|" * 12]
        lines.append(f"| Original | | {fmt(mean([r['original']['forget_acc'] for r in recs]))} | "
                     f"{fmt(mean([r['original']['retain_acc'] for r in recs]))} | "
                     f"{fmt(mean([r['original']['test_acc'] for r in recs]))} | "
                     f"{fmt(mean([r['original']['mia_loss_auc'] for r in recs]))} | | | | | | |")
        lines.append(f"| Retrain | | {fmt(mean([r['retrain']['forget_acc'] for r in recs]))} | "
                     f"{fmt(mean([r['retrain']['retain_acc'] for r in recs]))} | "
                     f"{fmt(mean([r['retrain']['test_acc'] for r in recs]))} | "
                     f"{fmt(mean([r['retrain']['mia_loss_auc'] for r in recs]))} | | | | | 1 | | |")
        for method in dict.fromkeys(r["method"] for r in everything):
            mr = [r for r in everything if r["method"] == method]
            if any(r.get("error") for r in mr):
                lines.append(f"| {method} | | not applicable: {mr[0]['error'][:80]} |" + " |" * 9)
                continue
            gaps = {m: mean([r["gap_to_retrain"][m] for r in mr]) for m in PARITY}
            ratio = mean([r["time_ratio_to_retrain"] for r in mr])
            speed = None if not ratio else 1.0 / ratio
            parity = all(gaps[m] is not None and gaps[m] <= tol for m, tol in PARITY.items())
            if parity:
                parity_rows.append((scen, method, speed))
            lines.append(
                f"| {method} | {mr[0]['preset']} | {fmt(mean([r['metrics']['forget_acc'] for r in mr]))} | "
                f"{fmt(mean([r['metrics']['retain_acc'] for r in mr]))} | "
                f"{fmt(mean([r['metrics']['test_acc'] for r in mr]))} | "
                f"{fmt(mean([r['metrics']['mia_loss_auc'] for r in mr]))} | {fmt(gaps['forget_acc'])} | "
                f"{fmt(gaps['test_acc'])} | {fmt(gaps['mia_loss_auc'])} | {fmt(speed, 1)}× | "
                f"{fmt(mean([r['peak_delta_bytes'] / 2**20 for r in mr]), 1)} | {'**yes**' if parity else 'no'} |")
        lines.append("")
    lines += ["## Retrain parity", ""]
    lines += [f"- {scen}: `{m}` at {fmt(s, 1)}× speed-up" for scen, m, s in parity_rows] or ["- none"]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="digits")
    ap.add_argument("--model", default="mlp")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--scenarios", nargs="+", default=SCENARIOS)
    ap.add_argument("--methods", nargs="+", default=None, help="default: every registered method")
    ap.add_argument("--store", default=str(Path(".bench-store").resolve()))
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    methods = args.methods or METHODS.names()
    out = RESULTS / f"method_zoo_{args.data}_{args.model}"
    records: list[dict[str, Any]] = []
    from expunge.store import ArtifactStore

    store = ArtifactStore(args.store)
    t0 = time.perf_counter()
    for seed in args.seeds:
        for scen_name in args.scenarios:
            scenario = get_scenario(scen_name)
            setting = scenario.prepare(args.data, args.model, seed=seed, store=store, progress=False)
            for method in methods:
                params, source = preset_params(args.data, args.model, scen_name, method)
                try:
                    recs = scenario.run(setting, method, params, save=False)
                except ExpungeError as exc:  # e.g. a class-only method on a random request
                    recs = [{"scenario": scen_name, "method": method, "seed": seed, "error": str(exc)}]
                for r in recs:
                    r["preset"], r["method"] = source, method
                records.extend(recs)
                print(f"[{time.perf_counter() - t0:6.0f}s] seed {seed} {scen_name:10s} {method:17s} "
                      + ("error" if recs[0].get("error") else
                         f"Δforget {recs[-1]['gap_to_retrain']['forget_acc']:.3f} "
                         f"Δtest {recs[-1]['gap_to_retrain']['test_acc']:.3f}"), flush=True)
            atomic_write_json(out.with_suffix(".json"), records)
            atomic_write_text(out.with_suffix(".md"), summarise(records, args.data, args.model))


if __name__ == "__main__":
    main()
