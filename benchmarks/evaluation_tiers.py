"""Evaluation-tier benchmark: cost of each metric tier, U-LiRA per method, batched vs one-by-one shadow training.

(a) Wall time of evaluating one request (digits / mlp, ``random:0.1``, seed 0, the default digits recipe: 30 epochs
    of Adam) at tier 0, tier 1 and tier 2 (every registered metric of exactly that tier), for the unlearned model and
    the Original and Retrain beside it, with ``finetune`` as the method. Tier 2 is timed cold (empty tier-2 cache:
    K shadows, their unlearning runs, N seeded runs, N − 1 extra oracles and originals) and again warm (all cached).
(b) U-LiRA with K shadows (default 16) for several methods (default ssd, finetune, retrain) on the same request. The
    shadows are trained once and reused by every method; each method pays for its K unlearning runs.
(c) Shadow-training throughput, batched (``torch.func``: ``vmap`` over stacked parameters) vs one by one (the
    project's ``fit``, and a bare PyTorch loop without the trainer's monitoring), for the MLP and the small CNN on
    digits (K models on random halves of the pool, the digits recipe) and, when the data is installed, the CNN on a
    Fashion-MNIST subset. Runs alternate (batched, one-by-one, …) and the fastest repeat counts.

Results: ``benchmarks/results/evaluation_tiers.json`` and ``.md`` (the markdown is written by
``evaluation_tiers_report.py``; ``--rewrite-md`` redoes it from the JSON). By default everything is trained in a fresh
temporary store, so tier-2 costs are cold.

    python benchmarks/evaluation_tiers.py [--threads 1] [--shadows 16] [--models 8] [--methods ssd finetune retrain]
        [--store DIR] [--parts tiers ulira throughput] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from evaluation_tiers_report import ROLES, summarise

from expunge._io import atomic_write_json, atomic_write_text
from expunge._seeds import derive_seed
from expunge.api import prepare
from expunge.data.datasets import Dataset, from_arrays, load_dataset
from expunge.errors import DatasetNotFound
from expunge.methods.base import RunContext, get_method
from expunge.metrics.base import METRICS, EvalContext, evaluate
from expunge.models import ModelSpec
from expunge.protocols.pipeline import Prepared
from expunge.protocols.runner import run_method
from expunge.shadows.batched import ModelJob, job_batches, train_batched, train_models, train_one
from expunge.shadows.pool import Pool, membership_matrix
from expunge.store import ArtifactStore
from expunge.store.artifacts import environment_info
from expunge.train.loop import TrainRecipe, make_optimizer
from expunge.train.oracle import model_spec_for

RESULTS = Path(__file__).parent / "results"
ULIRA = ["ulira_auc", "ulira_balanced_acc", "ulira_tpr_at_1pct_fpr", "ulira_tpr_at_0.1pct_fpr"]


def stamp(t0: float, msg: str) -> None:
    print(f"[{time.perf_counter() - t0:7.1f}s] {msg}", flush=True)


def method_ctx(prep: Prepared, name: str, tier2: dict[str, Any]) -> tuple[EvalContext, float]:
    m = get_method(name)
    rctx = RunContext(seed=prep.seed, model_spec=prep.spec, recipe=prep.recipe, store=prep.store)
    res = run_method(m, prep.original.model, prep.dataset, prep.splits, rctx, original_key=prep.original.key)
    ctx = prep.eval_ctx.with_model("unlearned", res.model)
    ctx.run = replace(ctx.run, method=m.name, method_params=m.params.to_dict())
    ctx.extras["tier2"] = tier2
    return ctx, res.time_s


def values(results: dict[str, Any], roles: tuple[str, ...] = ROLES) -> dict[str, dict[str, Any]]:
    return {name: {r: (v.value, v.reason) for r, v in by.items() if r in roles} for name, by in results.items()}


def timed_evaluate(ctx: EvalContext, names: list[str]) -> dict[str, Any]:
    t = time.perf_counter()
    try:
        res = evaluate(ctx, names)
        err = None
    except Exception as exc:  # another family's metric failing must not hide the other tiers' numbers
        res, err = {}, f"{type(exc).__name__}: {exc}"
    return {"wall_s": time.perf_counter() - t, "n_metrics": len(names), "metrics": names, "error": err,
            "values": values(res), "results": res}


def part_tiers(prep: Prepared, args: argparse.Namespace, t0: float) -> dict[str, Any]:
    tier2 = {"shadows": args.shadows, "models": args.models}
    out: dict[str, Any] = {"method": "finetune"}
    for tier in (0, 1, 2):
        names = [n for n, c in METRICS.items() if int(c.tier) == tier]
        ctx, unlearn_s = method_ctx(prep, "finetune", tier2)
        out["unlearn_s"] = unlearn_s
        r = timed_evaluate(ctx, names)
        if tier == 2:
            info = r["results"].get("ulira_auc", {}).get("unlearned")
            r["ulira_info"] = None if info is None else info.details.get("info")
            for name in ("neurips23_forget_score", "klom_p95_forget"):
                v = r["results"].get(name, {}).get("unlearned")
                r[f"{name}_info"] = None if v is None else v.details.get("info")
        r.pop("results")
        out[f"tier{tier}"] = r
        err = f" ERROR {r['error']}" if r["error"] else ""
        stamp(t0, f"tier {tier}: {len(names)} metrics in {r['wall_s']:.1f} s{err}")
    ctx, _ = method_ctx(prep, "finetune", tier2)
    warm = timed_evaluate(ctx, [n for n, c in METRICS.items() if int(c.tier) == 2])
    warm.pop("results")
    out["tier2_warm"] = warm
    stamp(t0, f"tier 2 again (cached): {warm['wall_s']:.1f} s")
    return out


def part_ulira(prep: Prepared, args: argparse.Namespace, t0: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in args.methods:
        ctx, unlearn_s = method_ctx(prep, name, {"shadows": args.shadows})
        t = time.perf_counter()
        res = evaluate(ctx, ULIRA)
        wall = time.perf_counter() - t
        auc = res["ulira_auc"]["unlearned"]
        out[name] = {"wall_s": wall, "unlearn_s": unlearn_s, "values": values(res),
                     "info": auc.details.get("info"), "n_forget": auc.details.get("n_forget"),
                     "n_heldout": auc.details.get("n_heldout"), "variance": auc.details.get("variance"),
                     "queries": list(auc.details.get("queries") or ()),
                     "se_auc": auc.se}
        stamp(t0, f"U-LiRA {name}: AUC {auc.value} (original {res['ulira_auc']['original'].value}, retrain "
                  f"{res['ulira_auc']['retrain'].value}) in {wall:.1f} s")
    return out


def plain_one(spec: ModelSpec, recipe: TrainRecipe, x: torch.Tensor, y: torch.Tensor, job: ModelJob) -> None:
    """The bare PyTorch loop (no monitor thread, no progress bar, no guard): the one-by-one floor."""
    model = spec.build(seed=job.init_seed)
    opt = make_optimizer(model.parameters(), recipe.optimizer, lr=recipe.lr, momentum=recipe.momentum,
                         weight_decay=recipe.weight_decay)
    batches = job_batches(x, y, job, recipe.batch_size)
    for _ in range(recipe.epochs):
        for xb, yb in batches:
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()


def throughput(ds: Dataset, arch: str, recipe: TrainRecipe, k: int, repeats: int, t0: float, group: int = 8) \
        -> dict[str, Any]:
    """K models batched in groups of ``group`` (ShadowSet's default ``group_size``) vs one by one."""
    spec = model_spec_for(ds, arch)
    pool = Pool.of(ds, "train")
    member = membership_matrix(k, len(pool), seed=0)
    jobs = [ModelJob(np.flatnonzero(member[i]), derive_seed(0, f"bench-{i}-init"), derive_seed(0, f"bench-{i}-order"))
            for i in range(k)]
    warm = replace(recipe, epochs=1)  # first calls pay one-off costs (lazy imports, kernel set-up): not timed
    train_batched(spec, warm, pool.x, pool.y, jobs[:2])
    train_one(spec, warm, pool.x, pool.y, jobs[0])
    plain_one(spec, warm, pool.x, pool.y, jobs[0])
    times: dict[str, list[float]] = {"batched": [], "one_by_one_fit": [], "one_by_one_plain": []}
    max_diff = 0.0
    for _ in range(repeats):
        t = time.perf_counter()
        fast = [t for i in range(0, k, group) for t in train_batched(spec, recipe, pool.x, pool.y, jobs[i:i + group])]
        times["batched"].append(time.perf_counter() - t)
        t = time.perf_counter()
        ref = train_models(spec, recipe, pool.x, pool.y, jobs, batched=False)  # the product's one-by-one path
        times["one_by_one_fit"].append(time.perf_counter() - t)
        t = time.perf_counter()
        for j in jobs:
            plain_one(spec, recipe, pool.x, pool.y, j)
        times["one_by_one_plain"].append(time.perf_counter() - t)
        max_diff = max(max_diff, max(float((p - q).abs().max()) for a, b in zip(fast, ref, strict=True)
                                     for p, q in zip(a.model.state_dict().values(), b.model.state_dict().values(),
                                                     strict=True)))
    best = {key: min(v) for key, v in times.items()}
    res = {"dataset": ds.name, "n_pool": len(pool), "arch": arch, "n_params": sum(p.numel() for p in
                                                                                  spec.build(seed=0).parameters()),
           "k": k, "group": group, "trainer": fast[0].log["trainer"],
           "examples_per_model": float(member.sum(1).mean()), "recipe": recipe.to_dict(),
           "repeats": repeats, "times_s": times, "best_s": best,
           "models_per_min": {key: 60.0 * k / v for key, v in best.items()},
           "speedup_vs_fit": best["one_by_one_fit"] / best["batched"],
           "speedup_vs_plain": best["one_by_one_plain"] / best["batched"], "max_abs_param_diff": max_diff}
    stamp(t0, f"throughput {ds.name}/{arch} K={k}: batched {best['batched']:.1f} s, fit {best['one_by_one_fit']:.1f} "
              f"s, plain {best['one_by_one_plain']:.1f} s -> x{res['speedup_vs_fit']:.2f} (vs plain "
              f"x{res['speedup_vs_plain']:.2f})")
    return res


def fashion_subset(n_train: int) -> Dataset | None:
    try:
        full = load_dataset("fashion-mnist")
    except DatasetNotFound:
        return None
    rng = np.random.default_rng(0)
    tr = np.sort(rng.choice(len(full.train), size=n_train, replace=False))
    return from_arrays("fashion-mnist-subset", x_train=full.train.x[tr].numpy(), y_train=full.train.fine[tr],
                       x_test=full.test.x[:1000].numpy(), y_test=full.test.fine[:1000],
                       class_names=full.class_names)


def part_throughput(args: argparse.Namespace, t0: float) -> list[dict[str, Any]]:
    digits = load_dataset("digits")
    out = []
    for threads in args.tp_threads:
        torch.set_num_threads(threads)
        recipe = TrainRecipe(epochs=args.tp_epochs, batch_size=64, optimizer="adam", lr=1e-3)
        for arch in ("mlp", "cnn"):
            res = throughput(digits, arch, recipe, args.tp_k, args.repeats, t0, args.tp_group)
            out.append({**res, "threads": threads})
    torch.set_num_threads(args.threads)
    fm = fashion_subset(args.fashion_n) if args.fashion_n > 0 else None
    if fm is not None:
        fr = TrainRecipe(epochs=1, batch_size=128, optimizer="adam", lr=1e-3)
        res = throughput(fm, "cnn", fr, args.fashion_k, args.repeats, t0, args.tp_group)
        out.append({**res, "threads": args.threads})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", default=None, help="artifact store (default: a fresh temporary folder: cold tier 2)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: the machine is shared)")
    ap.add_argument("--shadows", type=int, default=16)
    ap.add_argument("--models", type=int, default=8)
    ap.add_argument("--methods", nargs="+", default=["ssd", "finetune", "retrain"])
    ap.add_argument("--parts", nargs="+", default=["tiers", "ulira", "throughput"])
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--tp-k", type=int, default=16, help="models per throughput run (digits)")
    ap.add_argument("--tp-group", type=int, default=8, help="models per batched group (ShadowSet's group_size)")
    ap.add_argument("--tp-epochs", type=int, default=10, help="epochs per throughput run (digits)")
    ap.add_argument("--tp-threads", type=int, nargs="+", default=[1, 2], help="torch threads of throughput runs")
    ap.add_argument("--fashion-n", type=int, default=4000, help="Fashion-MNIST subset for the CNN run (0: skip)")
    ap.add_argument("--fashion-k", type=int, default=4)
    ap.add_argument("--out", default=str(RESULTS / "evaluation_tiers"))
    ap.add_argument("--rewrite-md", action="store_true", help="only rewrite the .md from the .json")
    args = ap.parse_args()
    if args.rewrite_md:
        atomic_write_text(Path(args.out + ".md"), summarise(json.loads(Path(args.out + ".json").read_text())))
        return
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    logging.getLogger("expunge.tier2").setLevel(logging.INFO)
    logging.getLogger("expunge.shadows").setLevel(logging.INFO)
    store = ArtifactStore(args.store or tempfile.mkdtemp(prefix="expunge-bench-tiers-"))
    out_json, out_md = Path(args.out + ".json"), Path(args.out + ".md")
    t0 = time.perf_counter()
    res: dict[str, Any] = {"env": environment_info(), "threads": args.threads, "store": str(store.root),
                           "loadavg_start": [round(x, 1) for x in os.getloadavg()], "shadows": args.shadows,
                           "models": args.models, "machine": platform.processor() or platform.machine(),
                           "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}

    def save() -> None:
        res["loadavg_end"] = [round(x, 1) for x in os.getloadavg()]
        res["total_s"] = time.perf_counter() - t0
        atomic_write_json(out_json, res)
        atomic_write_text(out_md, summarise(res))

    if out_json.exists() and set(args.parts) != {"tiers", "ulira", "throughput"}:
        # a partial rerun replaces only its own parts; the others (and their provenance) stay as they were
        old = json.loads(out_json.read_text())
        res = {**{k: v for k, v in old.items() if k in ("tiers", "ulira", "throughput", "request", "prepare_s")
                  and k not in args.parts}, **res}
        # provenance of what is kept: the run that measured it (which may itself be older than ``old``)
        source = old.get("kept_from_previous_run") or {"created_at": old.get("created_at"), "env": old.get("env"),
                                                       "loadavg_start": old.get("loadavg_start"),
                                                       "loadavg_end": old.get("loadavg_end")}
        res["kept_from_previous_run"] = {**source, "parts": [p for p in ("tiers", "ulira", "throughput")
                                                             if p in old and p not in args.parts]}
    if {"tiers", "ulira"} & set(args.parts):
        t = time.perf_counter()
        prep = prepare("digits", "mlp", "random:0.1", seed=0, store=store, progress=False)
        res["prepare_s"] = time.perf_counter() - t
        res["request"] = prep.splits.describe()
        stamp(t0, f"original + oracle ready ({res['prepare_s']:.1f} s)")
        if "tiers" in args.parts:
            res["tiers"] = part_tiers(prep, args, t0)
            save()
        if "ulira" in args.parts:
            res["ulira"] = part_ulira(prep, args, t0)
            save()
    if "throughput" in args.parts:
        res["throughput"] = part_throughput(args, t0)
    save()
    stamp(t0, f"wrote {out_json} and {out_md}")
    print(json.dumps({k: res[k] for k in ("total_s", "loadavg_start", "loadavg_end")}))


if __name__ == "__main__":
    main()
