"""Representation-level forgetting (tier 1): linear probes on penultimate features and linear CKA to the Original.

Features: ``model.features(x)`` for every built-in architecture; any other model falls back to the input of its last
``nn.Linear`` (forward hook) — see :func:`expunge.metrics._common.penultimate_features`.

* ``probe_membership_auc`` — can a linear probe tell forget examples (1) from unseen test examples (0) by their
  features? Standardised features, ``LogisticRegression(max_iter=1000)``, sides balanced by seeded subsampling,
  5-fold stratified CV (random_state = evaluation seed), mean held-out ROC-AUC. For class requests the test side is
  restricted to the forgotten classes (class-matched, as in SCRUB's MIA variant) so the probe detects membership, not
  the class. Compare with the Retrain (≈ 0.5 for random forgetting).
* ``probe_forget_label_acc`` — is the forgotten *label* information still linearly decodable? A multinomial probe is
  fit on the features of a seeded sample of ≤ 2 000 retain examples plus a seeded half of F with their true labels,
  and scored on the other half of F. After class forgetting a model whose head was merely re-wired keeps this high;
  compare with the Retrain, whose features never learned the class.
* ``cka_to_original_forget`` / ``cka_to_original_test`` — linear CKA (Kornblith et al., ICML 2019) between the
  model's and the Original's features on the same inputs; 1 = same representation up to rotation and scale. The
  Original scores 1 against itself.

These fit only scikit-learn probes (seconds) and need no run info: the evaluated networks are never trained.
Standard errors: Hanley–McNeil for the AUC, binomial for the probe accuracy, none for CKA.
"""

from __future__ import annotations

import hashlib
from typing import ClassVar

import numpy as np

from expunge._seeds import derive_seed
from expunge.metrics._common import penultimate_features, single_threaded
from expunge.metrics._tier1 import Tier1Metric
from expunge.metrics.base import EvalContext, MetricValue, register_metric
from expunge.metrics.functional.representation import label_probe, linear_cka, membership_probe
from expunge.metrics.functional.stats import auc_se, proportion_se

RETAIN_SAMPLE = 2000


def features(ctx: EvalContext, role: str, split: str, rows: np.ndarray | None = None) -> np.ndarray:
    """Penultimate features of the model in ``role`` on ``split`` (or on its ``rows``), cached per model content."""

    def compute() -> np.ndarray:
        x, _ = ctx.split_tensors(split)
        return penultimate_features(ctx.models[role], x if rows is None else x[rows], ctx.batch_size)

    rows_key = None if rows is None else hashlib.sha256(np.asarray(rows, dtype=np.int64).tobytes()).hexdigest()
    return ctx.cached(("features", split, rows_key), compute, role=role, local=True)


def _features_or_reason(ctx: EvalContext, role: str, split: str, rows: np.ndarray | None = None) -> np.ndarray | str:
    try:
        f = features(ctx, role, split, rows)
    except ValueError as exc:
        return f"no penultimate features: {exc}"
    if not np.isfinite(f).all():  # a probe or CKA on NaN features is no measurement (scikit-learn would raise)
        return f"the {role} model's penultimate features on the {split} split are not finite: a collapsed model"
    return f


class _Probe(Tier1Metric):
    family = "representation"
    run_needs = ()


@register_metric
class ProbeMembershipAuc(_Probe):
    name = "probe_membership_auc"
    definition = ("CV ROC-AUC of a linear probe on penultimate features, forget vs test (test restricted to the "
                  "forgotten classes for class requests); compare with retrain")

    def compute(self, ctx: EvalContext, role: str) -> MetricValue:
        f, t = _features_or_reason(ctx, role, "forget"), _features_or_reason(ctx, role, "test")
        if isinstance(f, str) or isinstance(t, str):
            return MetricValue(None, reason=f if isinstance(f, str) else str(t))
        class_matched = bool(ctx.splits.forget_classes)
        if class_matched:
            t = t[ctx.test_class_mask()]
        with single_threaded():
            res = membership_probe(f, t, seed=ctx.seed)
        if res["auc"] is None:
            return MetricValue(None, reason=res["reason"])
        n = int(res["n_per_side"])
        return MetricValue(res["auc"], se=auc_se(res["auc"], n, n),
                           details={**{k: v for k, v in res.items() if k != "reason"}, "class_matched": class_matched})


@register_metric
class ProbeForgetLabelAcc(_Probe):
    name = "probe_forget_label_acc"
    definition = ("accuracy on half of the forget set of a linear label probe fit on penultimate features of <=2000 "
                  "retain examples plus the other half; compare with retrain")

    def compute(self, ctx: EvalContext, role: str) -> MetricValue:
        n_f = len(ctx.splits.forget)
        if n_f < 2:
            return MetricValue(None, reason=f"forget set too small for a held-out half ({n_f} example(s))")
        rng = np.random.default_rng(derive_seed(ctx.seed, "label-probe"))
        half = np.zeros(n_f, dtype=bool)
        half[rng.choice(n_f, size=n_f // 2, replace=False)] = True
        n_r = len(ctx.splits.retain)
        r_idx = np.sort(rng.choice(n_r, size=min(RETAIN_SAMPLE, n_r), replace=False))
        f, r = _features_or_reason(ctx, role, "forget"), _features_or_reason(ctx, role, "retain", r_idx)
        if isinstance(f, str) or isinstance(r, str):
            return MetricValue(None, reason=f if isinstance(f, str) else str(r))
        y_f, y_r = ctx.labels("forget"), ctx.labels("retain")[r_idx]
        with single_threaded():
            res = label_probe(np.vstack([r, f[half]]), np.r_[y_r, y_f[half]], f[~half], y_f[~half])
        if res["acc"] is None:
            return MetricValue(None, reason=res["reason"])
        return MetricValue(res["acc"], se=proportion_se(res["acc"], res["n_eval"]),
                           details={k: v for k, v in res.items() if k != "reason"})


class _CKA(_Probe):
    needs = frozenset({"original"})
    split: ClassVar[str]

    def compute(self, ctx: EvalContext, role: str) -> MetricValue:
        mine, ref = _features_or_reason(ctx, role, self.split), _features_or_reason(ctx, "original", self.split)
        if isinstance(mine, str) or isinstance(ref, str):
            return MetricValue(None, reason=mine if isinstance(mine, str) else str(ref))
        with single_threaded():
            value = linear_cka(mine, ref)
        if value is None:
            return MetricValue(None, reason="CKA undefined (fewer than 2 examples or constant features)")
        return MetricValue(value, details={"n": len(mine), "dims": [mine.shape[1], ref.shape[1]]})


@register_metric
class CKAForget(_CKA):
    name, split = "cka_to_original_forget", "forget"
    definition = "linear CKA between the model's and the original's penultimate features on the forget set"


@register_metric
class CKATest(_CKA):
    name, split = "cka_to_original_test", "test"
    definition = "linear CKA between the model's and the original's penultimate features on the test set"
