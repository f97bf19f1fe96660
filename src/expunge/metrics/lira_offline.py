"""Offline LiRA with K reference models (tier 1) — Carlini et al., "Membership Inference Attacks From First
Principles", S&P 2022 (arXiv 2112.03570), reference tensorflow/privacy ``research/mi_lira_2021/plot.py``
(``generate_ours_offline``).

Reference ("OUT") models: K_OUT = 4 models of the run's architecture (``ctx.run.model_spec``), each trained from a fresh
seeded initialisation with the original's recipe (``ctx.run.recipe``, through :func:`expunge.train.loop.fit`) on its
own seeded random half of the retain set. No reference ever sees a forget or test example, so every reference is OUT
for every example scored. They are cached in ``ctx.run.store`` (kind ``lira_reference``, keyed by dataset, spec,
recipe, evaluation seed, retain set and index), shared by every method and role evaluated on the same request.

Scores (:func:`expunge.metrics.functional.lira.offline_lr_score`, global variance below K = 64 references,
LiRA's fixed-variance variant for few shadows):
φ = z_y − logsumexp_{j≠y} z_j; μ_out = median of the K reference φ per example, σ_out = std of all reference φ pooled;
score = −log N(φ_target; μ_out, σ_out²) (the reference's two-sided form; the one-sided AUC is in ``details``). One
query per example (identity): the models here are trained without augmentation, so a flipped query would be
off-distribution.

Members = forget set, non-members = test set; for class requests the test side is restricted to the forgotten classes
(class-matched), otherwise the attack would detect the class. Reported: ``lira_offline_auc`` and
``lira_offline_tpr_at_1pct_fpr`` (best TPR at FPR ≤ 1 %; with fewer than 100 non-members this is TPR at FPR = 0, see
``details.n_nonmembers``). Compare with the Retrain's value (≈ 0.5 AUC after random forgetting).
"""

from __future__ import annotations

import hashlib
from typing import Any, ClassVar

import numpy as np

from expunge._seeds import derive_seed
from expunge.metrics._common import single_threaded
from expunge.metrics._tier1 import Tier1Metric
from expunge.metrics.base import EvalContext, MetricValue, register_metric
from expunge.metrics.functional.lira import logit_scaled_confidence, offline_lr_score, roc_summary
from expunge.metrics.functional.stats import auc_se, proportion_se
from expunge.models.inference import predict_logits
from expunge.train.loop import fit
from expunge.train.oracle import retain_batches

K_OUT = 4


def _retain_hash(ctx: EvalContext) -> str:
    return hashlib.sha256(np.asarray(ctx.splits.retain, dtype=np.int64).tobytes()).hexdigest()[:32]


def _phi(logits: np.ndarray, y: np.ndarray) -> np.ndarray:
    return logit_scaled_confidence(logits, y.astype(np.int64)) if len(y) else np.zeros(0)


def _nonmember_mask(ctx: EvalContext) -> np.ndarray:
    return ctx.test_class_mask() if ctx.splits.forget_classes else np.ones(len(ctx.splits.test), dtype=bool)


def reference_phi(ctx: EvalContext, k_out: int = K_OUT) -> dict[str, Any]:
    """φ of the forget and (class-matched) test examples under each of the K_OUT reference models: (n, K) arrays."""
    spec, recipe, store = ctx.run.model_spec, ctx.run.recipe, ctx.run.store

    def compute() -> dict[str, Any]:
        retain = np.asarray(ctx.splits.retain, dtype=np.int64)
        xf, yf = ctx.split_tensors("forget")
        xt, yt = ctx.split_tensors("test")
        mask = _nonmember_mask(ctx)
        xt, yt = xt[mask], yt[mask]
        phi_f, phi_t, keys = [], [], []
        for k in range(k_out):
            init_seed = derive_seed(ctx.seed, f"lira-ref-{k}-init")
            order_seed = derive_seed(ctx.seed, f"lira-ref-{k}-order")
            rng = np.random.default_rng(derive_seed(ctx.seed, f"lira-ref-{k}-half"))
            half = np.sort(rng.choice(retain, size=len(retain) // 2, replace=False))
            key = store.key({"kind": "lira_reference", "dataset": ctx.dataset.fingerprint, "spec": spec.to_dict(),
                             "recipe": recipe.to_dict(), "seed": ctx.seed, "retain": _retain_hash(ctx), "index": k})

            def train(model: Any, half: np.ndarray = half, order_seed: int = order_seed,
                      init_seed: int = init_seed, k: int = k) -> dict[str, Any]:
                with single_threaded():  # small models: threads only add contention (see _common)
                    tlog = fit(model, retain_batches(ctx.dataset, half, recipe, order_seed), recipe, seed=order_seed)
                return {"dataset": ctx.dataset.describe(), "model_spec": spec.to_dict(), "recipe": recipe.to_dict(),
                        "seed": ctx.seed, "index": k, "init_seed": init_seed, "order_seed": order_seed,
                        "n_train_examples": int(half.size), "train_log": tlog.to_dict(),
                        "purpose": "offline LiRA OUT reference (random half of the retain set)"}

            model, _, _ = store.get_or_create_model("lira_reference", key,
                                                    lambda init_seed=init_seed: spec.build(seed=init_seed), train)
            model.eval()
            phi_f.append(_phi(predict_logits(model, xf, ctx.batch_size).double().numpy(), yf.numpy()))
            phi_t.append(_phi(predict_logits(model, xt, ctx.batch_size).double().numpy(), yt.numpy()))
            keys.append(key)
        return {"forget": np.stack(phi_f, axis=1), "test": np.stack(phi_t, axis=1), "keys": keys}

    return ctx.cached(("lira_reference_phi", repr(spec.to_dict()), repr(recipe.to_dict()), k_out), compute)


def lira_offline_result(ctx: EvalContext, role: str) -> dict[str, Any]:
    """Offline LiRA ROC summary for ``role``: forget (members) vs class-matched test (non-members)."""
    ref = reference_phi(ctx)
    mask = _nonmember_mask(ctx)
    t_f = _phi(ctx.logits(role, "forget"), ctx.labels("forget"))
    t_t = _phi(ctx.logits(role, "test")[mask], ctx.labels("test")[mask])
    if len(t_f) == 0 or len(t_t) == 0:
        return {"auc": None, "reason": "no forget or no (class-matched) test example"}
    both = np.r_[t_f, t_t]
    shadows = np.vstack([ref["forget"], ref["test"]])
    scores = offline_lr_score(both, shadows, fixed_variance=True)
    one_sided = offline_lr_score(both, shadows, fixed_variance=True, one_sided=True)
    out = roc_summary(scores[:len(t_f)], scores[len(t_f):])
    out["auc_one_sided"] = roc_summary(one_sided[:len(t_f)], one_sided[len(t_f):])["auc"]
    out.pop("fpr", None)
    out.pop("tpr", None)
    out.update(k_out=int(shadows.shape[1]), class_matched=bool(ctx.splits.forget_classes),
               reference_keys=ref["keys"])
    return out


class _LiraOffline(Tier1Metric):
    family = "mia_lira"
    key: ClassVar[str]

    def compute(self, ctx: EvalContext, role: str) -> MetricValue:
        if not hasattr(ctx.run.model_spec, "to_dict") or not hasattr(ctx.run.recipe, "to_dict"):
            return MetricValue(None, reason="run info model_spec or recipe of an unsupported type")
        if len(ctx.splits.retain) < 2:
            return MetricValue(None, reason="retain set too small to train reference models on halves")
        res = lira_offline_result(ctx, role)
        value = res.get(self.key)
        if value is None:
            return MetricValue(None, reason=res.get("reason") or "undefined")
        n_m, n_n = int(res["n_members"]), int(res["n_nonmembers"])
        se = auc_se(value, n_m, n_n) if self.key == "auc" else proportion_se(value, n_m)
        return MetricValue(float(value), se=se, details=res)


@register_metric
class LiraOfflineAuc(_LiraOffline):
    name, key = "lira_offline_auc", "auc"
    definition = ("ROC-AUC of offline LiRA (4 OUT reference models on retain halves, global variance), forget vs "
                  "test (class-matched); compare with retrain")


@register_metric
class LiraOfflineTpr1(_LiraOffline):
    name, key = "lira_offline_tpr_at_1pct_fpr", "tpr_at_1pct_fpr"
    definition = "TPR at 1% FPR of the same offline LiRA attack, forget vs test; compare with retrain"
