"""Shared machinery of the tier-2 metrics (U-LiRA, NeurIPS'23 ε-score, KLoM): configuration, run-info checks, the
cost announcement, and the two pipelines that train/unlearn many models through the store.

Configuration comes from ``ctx.extras["tier2"]`` (a :class:`Tier2Config` or a dict of its fields; the CLI's
``expunge evaluate --tier 2 --shadows K --models N``). Everything trained is cached (shadows, their unlearning runs,
seeded unlearning runs, extra originals and oracles), so an interrupted evaluation resumes and a repeated one trains
nothing. Results are memoised on the :class:`EvalContext`, so the four ``ulira_*`` metrics and every role share one
pipeline run.

Before training, a cost estimate is logged (logger ``expunge.tier2``, INFO) and returned in the metric's details:
the number of models to train × this store's measured recipe time per training example (from the original's
manifest), plus the number of unlearning runs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from expunge._io import stable_hash
from expunge.data.request import Splits
from expunge.errors import ExpungeError, InvalidHyperparameter
from expunge.methods.base import UnlearningMethod, get_method
from expunge.metrics.base import EvalContext, Metric, MetricValue, Tier
from expunge.shadows import runs as _runs
from expunge.shadows.pool import Pool, ShadowSet
from expunge.train import oracle as _oracle

log = logging.getLogger("expunge.tier2")
EXTRAS_KEY = "tier2"
UNLEARNED_ONLY = ("defined for the unlearning method's distribution of models: computed for the unlearned role "
                  "only")


@dataclass(frozen=True)
class Tier2Config:
    """Sizes of the tier-2 pipelines. CPU defaults; the papers' values are noted per field."""

    shadows: int = 16               # U-LiRA K (Hayes et al.: 64; 128/256 for publication)
    models: int = 8                 # ε-score / KLoM N (NeurIPS'23: 512; KLoM paper: 100)
    heldout: int | None = None      # cap on U-LiRA held-out targets (default: class-matched, as many as forget)
    queries: tuple[str, ...] | None = None  # U-LiRA queries (default identity + flip for images)
    batched: bool | None = None     # shadows with torch.func: True, False, None = auto (prefer_batched)
    group_size: int = 8             # shadows trained (and saved) per group

    def __post_init__(self) -> None:
        if self.shadows < 2 or self.shadows % 2:
            raise InvalidHyperparameter(f"tier 2: the number of shadows must be even and >= 2 (each example is IN "
                                        f"for exactly K/2), got {self.shadows}")
        if self.models < 2:
            raise InvalidHyperparameter(f"tier 2: need at least 2 seeded models, got {self.models}")
        if self.group_size < 1:
            raise InvalidHyperparameter(f"tier 2: group_size must be >= 1, got {self.group_size}")

    @classmethod
    def from_ctx(cls, ctx: EvalContext) -> Tier2Config:
        raw = ctx.extras.get(EXTRAS_KEY)
        if raw is None:
            return cls()
        if isinstance(raw, Tier2Config):
            return raw
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in dict(raw).items() if k in known and v is not None}
        if "queries" in values:
            values["queries"] = tuple(values["queries"])
        return cls(**values)


class Tier2Metric(Metric):
    """Base of the tier-2 metrics: opt-in (Tier.GOLD); ``run_needs`` lists the RunInfo fields the pipeline uses
    (shown by ``expunge metrics``).

    :meth:`compute` is shared: a metric defined for the method's distribution of models (``unlearned_only``) has no
    value for the Original/Retrain roles; missing run info or a pipeline error (an :class:`ExpungeError`) gives None
    with the reason. Subclasses implement :meth:`result` (the memoised pipeline output) and :meth:`value_from`."""

    tier = Tier.GOLD
    run_needs: ClassVar[tuple[str, ...]] = ("model_spec", "recipe", "store", "method")
    unlearned_only: ClassVar[bool] = False
    label: ClassVar[str] = "tier-2 metric"  # in "<label> unavailable: ..." reasons

    def compute(self, ctx: EvalContext, role: str) -> MetricValue:
        if self.unlearned_only and role != "unlearned":
            return MetricValue(None, reason=UNLEARNED_ONLY)
        if (reason := missing_run_info(ctx, *self.run_needs)) is not None:
            return MetricValue(None, reason=reason)
        try:
            res = self.result(ctx, role)
        except ExpungeError as exc:
            return MetricValue(None, reason=f"{self.label} unavailable: {exc}")
        return self.value_from(res, ctx, role)

    def result(self, ctx: EvalContext, role: str) -> dict[str, Any]:
        raise NotImplementedError

    def value_from(self, res: dict[str, Any], ctx: EvalContext, role: str) -> MetricValue:
        raise NotImplementedError

    @classmethod
    def describe(cls) -> dict[str, Any]:
        return {**super().describe(), "run_needs": list(cls.run_needs)}


def missing_run_info(ctx: EvalContext, *names: str) -> str | None:
    """Reason when ``ctx.run`` lacks a field the pipeline needs (None when all are present)."""
    missing = [n for n in names if getattr(ctx.run, n) is None]
    if not missing:
        return None
    return (f"run info lacks {', '.join(missing)}: tier-2 metrics re-run the method and train models "
            "(evaluate a stored run with `expunge evaluate RUN --tier 2`, or pass RunInfo)")


def memoised(ctx: EvalContext, key: tuple[Any, ...], compute: Callable[[], Any]) -> Any:
    """``compute()`` once per context and key; a :class:`~expunge.errors.ExpungeError` is memoised too."""
    memo: dict[tuple[Any, ...], Any] = ctx.__dict__.setdefault("_tier2_memo", {})
    if key not in memo:
        try:
            memo[key] = ("ok", compute())
        except ExpungeError as exc:
            memo[key] = ("error", exc)
    status, value = memo[key]
    if status == "error":
        raise value
    return value


def method_of(ctx: EvalContext) -> UnlearningMethod[Any]:
    return get_method(str(ctx.run.method), dict(ctx.run.method_params or {}))


def announce(what: str, ctx: EvalContext, *, train_examples: list[int], n_unlearn: int,
             method: str) -> dict[str, Any]:
    """Log and return the cost estimate: models to train × this store's recipe time per training example."""
    spe = _runs.train_seconds_per_example(ctx.run.store, ctx.run.original_key)
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
@dataclass
class ULiraInputs:
    forget_pos: np.ndarray     # target forget examples (positions in dataset.train)
    heldout_pos: np.ndarray    # target held-out examples (positions in dataset.test)
    shadow_unlearned: np.ndarray  # (n_f + n_h, K, A), NaN where the shadow did not train-then-unlearn the example
    shadow_out: np.ndarray        # (n_f + n_h, K, A), NaN where the shadow trained on the example
    queries: tuple[str, ...]
    info: dict[str, Any]


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
    queries = tuple(cfg.queries) if cfg.queries else _runs.default_queries(x)

    plans = []  # (shadow, its target rows, the unlearning run's seed and cache key)
    for k in range(cfg.shadows):
        rows = targets[member[k]]
        seed_k = _oracle.derive_seed(ctx.seed, f"shadow-{k}-unlearn")
        parts = {"original": shadows.shadow_key(k), "method": method.name, "params": method.params.to_dict(),
                 "forget": stable_hash(np.sort(pool.ids[rows]).tolist()), "seed": seed_k}
        plans.append((k, rows, seed_k, parts))
    missing = shadows.missing()
    to_run = sum(1 for _, r, _, p in plans if r.size and not run.store.exists(_runs.SHADOW_UNLEARNED_KIND,
                                                                             run.store.key(p)))
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
            model, hit = _runs.cached_unlearn(run.store, _runs.SHADOW_UNLEARNED_KIND, parts, method, model, sds,
                                              splits_k, run.model_spec, run.recipe, seed=seed_k,
                                              original_key=shadows.shadow_key(k))
            hits += int(hit)
        phis[:, k, :] = _runs.phi(model, x, y, queries)
    info["unlearning_runs_cached"] = hits
    m3 = member[:, :, None].transpose(1, 0, 2)  # (n_targets, K, 1)
    return ULiraInputs(forget_pos, heldout_pos, np.where(m3, phis, np.nan), np.where(m3, np.nan, phis), queries,
                       info)


# --- privacy onion: LiRA on retained examples -------------------------------------------------------------------
@dataclass
class OnionInputs:
    retain_pos: np.ndarray     # target retained examples (positions in dataset.train)
    heldout_pos: np.ndarray    # held-out examples class-matched to them (positions in dataset.test)
    shadow_in: np.ndarray      # (n_r + n_h, K, A), NaN where the shadow did not train on the example
    shadow_out: np.ndarray     # (n_r + n_h, K, A), NaN where the shadow trained on the example
    queries: tuple[str, ...]
    info: dict[str, Any]


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
    queries = tuple(cfg.queries) if cfg.queries else _runs.default_queries(x)
    info = {"cost": announce("privacy onion", ctx, train_examples=[shadows.in_rows(k).size
                                                                   for k in shadows.missing()],
                             n_unlearn=0, method="none"),
            "pool_key": shadows.key, "seed": ctx.seed}
    info["shadows_trained"] = shadows.ensure(batched=cfg.batched, group_size=cfg.group_size)
    phis = np.stack([_runs.phi(shadows.model(k), x, y, queries) for k in range(cfg.shadows)], axis=1)
    m3 = shadows.membership[:, targets].T[:, :, None]  # (n_targets, K, 1)
    return OnionInputs(retain_pos, heldout_pos, np.where(m3, phis, np.nan), np.where(m3, np.nan, phis), queries,
                       info)


# --- N seeded unlearning runs and N oracles (ε-score, KLoM) ---------------------------------------------------------
@dataclass
class SeededOutputs:
    seeds: list[int]
    unlearned_phi: dict[str, np.ndarray]   # split -> (n, N)
    oracle_phi: dict[str, np.ndarray]
    unlearned_acc: dict[str, list[float]]  # split -> N accuracies
    oracle_acc: dict[str, list[float]]
    info: dict[str, Any]


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
        xs, ys = ctx._split_tensors(s)
        phis[s] = _runs.phi(model, xs, ys, ("identity",))[:, 0]
    for s in ("retain", "test"):
        xs, ys = ctx._split_tensors(s)
        accs[s] = _runs.accuracy_of(model, xs, ys)
    return phis, accs


def seeded_outputs(ctx: EvalContext, cfg: Tier2Config, *, from_originals: bool,
                   splits: tuple[str, ...] = ("forget",)) -> SeededOutputs:
    """φ and accuracies of N unlearned models and N oracles (seeds ctx.seed + i).

    ``from_originals`` False (ε-score): the method runs N times with seeds ctx.seed + i from the run's original.
    True (KLoM): unlearned model i comes from original i (``train_original(seed=ctx.seed + i)``; i = 0 is the run's).
    Oracle i is ``retrain_oracle(seed=ctx.seed + i)`` (i = 0 is the run's oracle).
    """
    run, store, ds = ctx.run, ctx.run.store, ctx.dataset
    method = method_of(ctx)
    seeds = [ctx.seed + i for i in range(cfg.models)]
    miss = [s for s in seeds if not store.exists("oracle", store.key(_key_parts("oracle", ctx, s)))]
    sizes = [ctx.splits.retain.size] * len(miss)
    if from_originals:
        miss_o = [s for s in seeds if not store.exists("original", store.key(_key_parts("original", ctx, s)))]
        sizes += [len(ds.train)] * len(miss_o)
    n_unlearn = 0
    for s in seeds:
        okey = store.key(_key_parts("original", ctx, s)) if from_originals else str(run.original_key)
        ukey = store.key(_runs.run_key_parts(okey, method, ctx.splits, s))
        n_unlearn += not any(store.exists(k, ukey) for k in (_runs.TIER2_UNLEARNED_KIND, "unlearned"))
    info = {"cost": announce("KLoM" if from_originals else "NeurIPS'23 ε-score", ctx, train_examples=sizes,
                             n_unlearn=n_unlearn, method=method.name), "seeds": seeds}
    u_phi: dict[str, list[np.ndarray]] = {s: [] for s in splits}
    o_phi: dict[str, list[np.ndarray]] = {s: [] for s in splits}
    u_acc: dict[str, list[float]] = {"retain": [], "test": []}
    o_acc: dict[str, list[float]] = {"retain": [], "test": []}
    hits = 0
    for s in seeds:
        if from_originals:
            orig = _oracle.train_original(ds, run.model_spec, run.recipe, seed=s, store=store, progress=False)
            original, original_key = orig.model, orig.key
        else:
            original_key = str(run.original_key)
            original = ctx.models["original"] if ctx.has("original") else _load_original(ctx)
        parts = _runs.run_key_parts(original_key, method, ctx.splits, s)
        model, hit = _runs.cached_unlearn(store, _runs.TIER2_UNLEARNED_KIND, parts, method, original, ds, ctx.splits,
                                          run.model_spec, run.recipe, seed=s, original_key=original_key,
                                          reuse_kinds=("unlearned",))
        hits += int(hit)
        oracle = _oracle.retrain_oracle(ds, ctx.splits, run.model_spec, run.recipe, seed=s, store=store,
                                        progress=False).model
        for m, phi_d, acc_d in ((model, u_phi, u_acc), (oracle, o_phi, o_acc)):
            p, a = _outputs(m, ctx, splits)
            for k, v in p.items():
                phi_d[k].append(v)
            for k, v in a.items():
                acc_d[k].append(v)
    info["unlearning_runs_cached"] = hits
    return SeededOutputs(seeds, {k: np.stack(v, 1) for k, v in u_phi.items()},
                         {k: np.stack(v, 1) for k, v in o_phi.items()}, u_acc, o_acc, info)


def _load_original(ctx: EvalContext) -> nn.Module:
    model = ctx.run.model_spec.build(seed=0)
    ctx.run.store.load_model_into("original", str(ctx.run.original_key), model)
    return model.eval()


def mean_ratio(num: list[float], den: list[float]) -> float | None:
    d = float(np.mean(den))
    return None if d <= 0 or not np.isfinite(d) else float(np.mean(num)) / d


def to_list(a: np.ndarray | Mapping[str, Any] | Any) -> Any:
    return a.tolist() if isinstance(a, np.ndarray) else a
