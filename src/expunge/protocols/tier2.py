"""The tier-2 pipelines: U-LiRA's shadows trained and unlearned by the method, the privacy onion's calibration, and
N seeded unlearning runs beside N oracles (ε-score, KLoM).

They re-run the unlearning method, so they live above the methods and metrics layers; the tier-2 metrics in
:mod:`expunge.metrics` only judge what these compute. A context built by :func:`expunge.protocols.pipeline.eval_context`
carries them as :data:`PROVIDERS` (``ctx.provided("ulira", cfg)``); each runs once per context and configuration.

Everything trained is cached (shadows, their unlearning runs, seeded unlearning runs, extra originals and oracles),
so an interrupted evaluation resumes and a repeated one trains nothing. Before training, a cost estimate is logged
(logger ``expunge.tier2``, INFO) and returned in the metric's details: the number of models to train × this store's
measured recipe time per training example (from the original's manifest), plus the number of unlearning runs.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch
from torch import nn

from expunge._io import stable_hash
from expunge._seeds import derive_seed
from expunge.data.request import Splits
from expunge.methods.base import UnlearningMethod, get_method
from expunge.metrics._common import phi, training_queries
from expunge.metrics._tier2 import OnionInputs, SeededOutputs, Tier2Config, ULiraInputs
from expunge.metrics.base import EvalContext
from expunge.models.inference import accuracy
from expunge.protocols import repeated
from expunge.shadows.pool import Pool, ShadowSet
from expunge.train.oracle import retrain_oracle, train_original

log = logging.getLogger("expunge.tier2")


def method_of(ctx: EvalContext) -> UnlearningMethod[Any]:
    return get_method(str(ctx.run.method), dict(ctx.run.method_params or {}))


def announce(what: str, ctx: EvalContext, *, train_examples: list[int], n_unlearn: int,
             method: str) -> dict[str, Any]:
    """Log and return the cost estimate: models to train × this store's recipe time per training example."""
    spe = repeated.train_seconds_per_example(ctx.run.store, ctx.run.original_key)
    est = None if spe is None else spe * float(sum(train_examples))
    if method == "retrain" and spe is not None and est is not None:
        est += spe * ctx.splits.retain.size * n_unlearn  # each run is a training (upper bound for shadows)
    cost = {"models_to_train": len(train_examples), "unlearning_runs": n_unlearn, "method": method,
            "recipe_s_per_example": spe, "estimated_train_s": est}
    when = "unknown (no timed original in the store)" if est is None else f"≈ {est:.0f} s one by one"
    log.info("tier 2 %s: %d model(s) to train (%s), %d unlearning run(s) of %s", what, len(train_examples), when,
             n_unlearn, method)
    return cost


# --- U-LiRA ---------------------------------------------------------------------------------------------------------
def class_matched_test(ctx: EvalContext, labels: np.ndarray, cap: int | None, seed: int) -> np.ndarray:
    """Test positions matched to ``labels``' classes: per class, as many as ``labels`` has (when the test split has
    them), seeded; optionally capped in total (a seeded subset)."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x4E1D]))
    ty = ctx.labels("test")
    picks = []
    for c, n in zip(*np.unique(labels, return_counts=True), strict=True):
        cand = ctx.splits.test[ty == c]
        picks.append(rng.choice(cand, size=min(int(n), cand.size), replace=False))
    out = np.sort(np.concatenate(picks)) if picks else np.zeros(0, np.int64)
    if cap is not None and out.size > cap:
        out = np.sort(rng.choice(out, size=cap, replace=False))
    return out.astype(np.int64)


def heldout_positions(ctx: EvalContext, cap: int | None, seed: int) -> np.ndarray:
    """Held-out targets of U-LiRA: test positions matched to the forget set's classes (:func:`class_matched_test`)."""
    return class_matched_test(ctx, ctx.labels("forget"), cap, seed)


def ulira_inputs(ctx: EvalContext, cfg: Tier2Config) -> ULiraInputs:
    run, ds = ctx.run, ctx.dataset
    method = method_of(ctx)
    pool = Pool.of(ds, "train+test")  # held-out targets must be IN for half of the shadows
    shadows = ShadowSet(ds, pool, run.model_spec, run.recipe, cfg.shadows, ctx.seed, run.store)
    forget_pos = np.asarray(ctx.splits.forget, dtype=np.int64)
    heldout_pos = heldout_positions(ctx, cfg.heldout, ctx.seed)
    targets = np.concatenate([forget_pos, pool.rows_of_test(heldout_pos)])
    member = shadows.membership[:, targets]  # (K, n_targets)
    x, y = pool.x[torch.as_tensor(targets)], pool.y[torch.as_tensor(targets)]
    queries = tuple(cfg.queries) if cfg.queries else training_queries(x, run.recipe)

    plans = []  # (shadow, its target rows, the unlearning run's seed and cache key)
    for k in range(cfg.shadows):
        rows = targets[member[k]]
        seed_k = derive_seed(ctx.seed, f"shadow-{k}-unlearn")
        parts = {"original": shadows.shadow_key(k), "method": method.name, "params": method.params.to_dict(),
                 "forget": stable_hash(np.sort(pool.ids[rows]).tolist()), "seed": seed_k}
        plans.append((k, rows, seed_k, parts))
    missing = shadows.missing()
    to_run = sum(1 for _, r, _, p in plans
                 if r.size and not run.store.exists(repeated.SHADOW_UNLEARNED_KIND, run.store.key(p)))
    info = {"cost": announce("U-LiRA", ctx, train_examples=[shadows.in_rows(k).size for k in missing],
                             n_unlearn=to_run, method=method.name),
            "pool_key": shadows.key, "pool": pool.name, "n_pool": len(pool), "seed": ctx.seed}
    info["shadows_trained"] = shadows.ensure(batched=cfg.batched, group_size=cfg.group_size)
    hits = 0
    phis = np.full((targets.size, cfg.shadows, len(queries)), np.nan)
    for k, rows, seed_k, parts in plans:
        model: nn.Module = shadows.model(k)
        if rows.size:  # a shadow holding no target example has nothing to unlearn: it is used as is (OUT only)
            sds = shadows.shadow_dataset(k)
            splits_k = Splits.from_ids(sds, pool.ids[rows], forget_classes=ctx.splits.forget_classes, seed=seed_k)
            model, hit = repeated.cached_unlearn(run.store, repeated.SHADOW_UNLEARNED_KIND, parts, method, model,
                                                 sds, splits_k, run.model_spec, run.recipe, seed=seed_k,
                                                 original_key=shadows.shadow_key(k))
            hits += int(hit)
        phis[:, k, :] = phi(model, x, y, queries)
    info["unlearning_runs_cached"] = hits
    m3 = member[:, :, None].transpose(1, 0, 2)  # (n_targets, K, 1)
    return ULiraInputs(forget_pos, heldout_pos, np.where(m3, phis, np.nan), np.where(m3, np.nan, phis), queries,
                       info)


# --- privacy onion: LiRA on retained examples -------------------------------------------------------------------
def onion_inputs(ctx: EvalContext, cfg: Tier2Config) -> OnionInputs:
    """Online-LiRA calibration for retained examples, from the *plain* shadows (trained, nothing unlearned): the
    attack that scores the Original ("before") and the unlearned model ("after") with the same calibration, so the
    difference is what unlearning did to the retained examples' exposure. Targets: a seeded sample of the retain set
    (as many as the forget set, or ``cfg.heldout``) and held-out test examples matched to their classes."""
    run, ds = ctx.run, ctx.dataset
    pool = Pool.of(ds, "train+test")
    shadows = ShadowSet(ds, pool, run.model_spec, run.recipe, cfg.shadows, ctx.seed, run.store)
    rng = np.random.default_rng(np.random.SeedSequence([ctx.seed, 0x0710]))
    retain = np.asarray(ctx.splits.retain, dtype=np.int64)
    n = min(cfg.heldout or ctx.splits.forget.size, retain.size)
    retain_pos = np.sort(rng.choice(retain, size=n, replace=False))
    heldout_pos = class_matched_test(ctx, ds.train.y.numpy()[retain_pos], None, ctx.seed)
    targets = np.concatenate([retain_pos, pool.rows_of_test(heldout_pos)])
    x, y = pool.x[torch.as_tensor(targets)], pool.y[torch.as_tensor(targets)]
    queries = tuple(cfg.queries) if cfg.queries else training_queries(x, run.recipe)
    info = {"cost": announce("privacy onion", ctx, train_examples=[shadows.in_rows(k).size
                                                                   for k in shadows.missing()],
                             n_unlearn=0, method="none"),
            "pool_key": shadows.key, "seed": ctx.seed}
    info["shadows_trained"] = shadows.ensure(batched=cfg.batched, group_size=cfg.group_size)
    phis = np.stack([phi(shadows.model(k), x, y, queries) for k in range(cfg.shadows)], axis=1)
    m3 = shadows.membership[:, targets].T[:, :, None]  # (n_targets, K, 1)
    return OnionInputs(retain_pos, heldout_pos, np.where(m3, phis, np.nan), np.where(m3, np.nan, phis), queries,
                       info)


# --- N seeded unlearning runs and N oracles (ε-score, KLoM) ---------------------------------------------------------
def _key_parts(kind: str, ctx: EvalContext, seed: int) -> dict[str, Any]:
    """The cache key parts :mod:`expunge.train.oracle` uses for an original / oracle (to count what is missing)."""
    parts = {"kind": kind, "dataset": ctx.dataset.fingerprint, "spec": ctx.run.model_spec.to_dict(),
             "recipe": ctx.run.recipe.to_dict(), "seed": seed}
    if kind == "oracle":
        parts["forget"] = ctx.splits.fingerprint()
    return parts


def _outputs(model: nn.Module, ctx: EvalContext, splits: tuple[str, ...]) -> tuple[dict[str, np.ndarray],
                                                                                 dict[str, float]]:
    phis, accs = {}, {}
    for s in splits:
        xs, ys = ctx.split_tensors(s)
        phis[s] = phi(model, xs, ys, ("identity",))[:, 0]
    for s in ("retain", "test"):
        xs, ys = ctx.split_tensors(s)
        accs[s] = accuracy(model, xs, ys)
    return phis, accs


def seeded_outputs(ctx: EvalContext, cfg: Tier2Config, from_originals: bool = False,
                   splits: tuple[str, ...] = ("forget",), method_name: str | None = None) -> SeededOutputs:
    """φ and accuracies of N unlearned models and N oracles (seeds ctx.seed + i).

    ``from_originals`` False (ε-score): the method runs N times with seeds ctx.seed + i from the run's original.
    True (KLoM): unlearned model i comes from original i (``train_original(seed=ctx.seed + i)``; i = 0 is the run's),
    and the originals' φ are returned too (``original_phi``: doing nothing, KLoM's Original row).
    Oracle i is ``retrain_oracle(seed=ctx.seed + i)`` (i = 0 is the run's oracle).
    ``method_name`` replaces the run's method (with its default parameters): ``"retrain"`` gives N independently
    seeded retrains, KLoM's Retrain row (the Retrain-vs-Retrain noise floor), on a context that names no method.
    """
    run, store, ds = ctx.run, ctx.run.store, ctx.dataset
    method = method_of(ctx) if method_name is None else get_method(method_name)
    seeds = [ctx.seed + i for i in range(cfg.models)]
    miss = [s for s in seeds if not store.exists("oracle", store.key(_key_parts("oracle", ctx, s)))]
    sizes = [ctx.splits.retain.size] * len(miss)
    if from_originals:
        miss_o = [s for s in seeds if not store.exists("original", store.key(_key_parts("original", ctx, s)))]
        sizes += [len(ds.train)] * len(miss_o)
    n_unlearn = 0
    for s in seeds:
        okey = store.key(_key_parts("original", ctx, s)) if from_originals else str(run.original_key)
        ukey = store.key(repeated.run_key_parts(okey, method, ctx.splits, s))
        n_unlearn += not any(store.exists(k, ukey) for k in (repeated.TIER2_UNLEARNED_KIND, "unlearned"))
    info = {"cost": announce("KLoM" if from_originals else "NeurIPS'23 ε-score", ctx, train_examples=sizes,
                             n_unlearn=n_unlearn, method=method.name), "seeds": seeds}
    u_phi: dict[str, list[np.ndarray]] = {s: [] for s in splits}
    o_phi: dict[str, list[np.ndarray]] = {s: [] for s in splits}
    orig_phi: dict[str, list[np.ndarray]] = {s: [] for s in splits}
    u_acc: dict[str, list[float]] = {"retain": [], "test": []}
    o_acc: dict[str, list[float]] = {"retain": [], "test": []}
    hits = 0
    for s in seeds:
        if from_originals:
            orig = train_original(ds, run.model_spec, run.recipe, seed=s, store=store, progress=False)
            original, original_key = orig.model, orig.key
        else:
            original_key = str(run.original_key)
            original = ctx.models["original"] if ctx.has("original") else _load_original(ctx)
        parts = repeated.run_key_parts(original_key, method, ctx.splits, s)
        model, hit = repeated.cached_unlearn(store, repeated.TIER2_UNLEARNED_KIND, parts, method, original, ds,
                                             ctx.splits, run.model_spec, run.recipe, seed=s,
                                             original_key=original_key, reuse_kinds=("unlearned",))
        hits += int(hit)
        oracle = retrain_oracle(ds, ctx.splits, run.model_spec, run.recipe, seed=s, store=store,
                                progress=False).model
        if from_originals:  # doing nothing: the originals' own margins
            for k in splits:
                orig_phi[k].append(phi(original, *ctx.split_tensors(k), ("identity",))[:, 0])
        for m, phi_d, acc_d in ((model, u_phi, u_acc), (oracle, o_phi, o_acc)):
            p, a = _outputs(m, ctx, splits)
            for k, v in p.items():
                phi_d[k].append(v)
            for k, v in a.items():
                acc_d[k].append(v)
    info["unlearning_runs_cached"] = hits
    return SeededOutputs(seeds, {k: np.stack(v, 1) for k, v in u_phi.items()},
                         {k: np.stack(v, 1) for k, v in o_phi.items()}, u_acc, o_acc, info,
                         {k: np.stack(v, 1) for k, v in orig_phi.items() if v})


def _load_original(ctx: EvalContext) -> nn.Module:
    model = ctx.run.model_spec.build(seed=0)
    ctx.run.store.load_model_into("original", str(ctx.run.original_key), model)
    return model.eval()


PROVIDERS = {"ulira": ulira_inputs, "onion": onion_inputs, "seeded": seeded_outputs}
