"""Representation-level comparisons and probes on feature arrays (rows = examples).

References:
    - Linear CKA: Kornblith, Norouzi, Lee, Hinton, "Similarity of Neural Network Representations Revisited",
      ICML 2019 (arXiv 1905.00414), Eq. (5): CKA(X, Y) = ‖YᵀX‖²_F / (‖XᵀX‖_F · ‖YᵀY‖_F) on column-centred X, Y.
    - Linear probes: Alain & Bengio, "Understanding intermediate layers using linear classifier probes", ICLR 2017
      workshop (arXiv 1610.01644). Classifier: scikit-learn ``LogisticRegression`` on standardised features.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from expunge.errors import DegenerateInputWarning
from expunge.metrics.functional.accuracy import accuracy
from expunge.metrics.functional.mia import MIN_PER_SIDE, balanced_subsample

PROBE_MAX_ITER = 1000


def _features(x: ArrayLike, name: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    a = a.reshape(len(a), -1) if a.ndim != 2 else a
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} must be finite")
    return a


def linear_cka(x: ArrayLike, y: ArrayLike) -> float | None:
    """Linear centred kernel alignment between two representations of the same n examples.

    CKA = ‖Ycᵀ Xc‖²_F / (‖Xcᵀ Xc‖_F ‖Ycᵀ Yc‖_F), Xc, Yc column-centred; ∈ [0, 1], invariant to orthogonal
    transforms and isotropic scaling; the feature dimensions of X and Y may differ. Computed in the dual (Gram) form
    when n < d, which gives the same value.

    Returns:
        CKA, or None (with a DegenerateInputWarning) when n < 2 or a representation is constant (zero variance).
        Known answers: CKA(X, X) = 1; x = [1, 2, 3], y = [1, 3, 2] (one feature each) ⇒ corr² = 0.25;
        x = [1, 2, 3], y = [1, 0, 1] ⇒ 0.
    """
    a, b = _features(x, "x"), _features(y, "y")
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"x and y must describe the same examples, got {a.shape[0]} and {b.shape[0]} rows")
    if a.shape[0] < 2:
        warnings.warn("linear_cka: fewer than 2 examples", DegenerateInputWarning, stacklevel=2)
        return None
    a, b = a - a.mean(axis=0), b - b.mean(axis=0)
    if a.shape[0] < max(a.shape[1], b.shape[1]):
        ka, kb = a @ a.T, b @ b.T  # HSIC in the Gram form: <K_a, K_b> / (‖K_a‖ ‖K_b‖)
        num, den = float(np.sum(ka * kb)), float(np.linalg.norm(ka) * np.linalg.norm(kb))
    else:
        num = float(np.linalg.norm(b.T @ a) ** 2)
        den = float(np.linalg.norm(a.T @ a) * np.linalg.norm(b.T @ b))
    if den <= 0.0:
        warnings.warn("linear_cka: a representation has zero variance", DegenerateInputWarning, stacklevel=2)
        return None
    return float(np.clip(num / den, 0.0, 1.0))


def _probe() -> Any:
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=PROBE_MAX_ITER))


def membership_probe(member_feats: ArrayLike, nonmember_feats: ArrayLike, seed: int = 0, n_splits: int = 5, *,
                     min_per_side: int = MIN_PER_SIDE) -> dict[str, Any]:
    """Cross-validated ROC-AUC of a linear probe telling members (1) from non-members (0) by their features.

    Sides balanced by seeded subsampling; standardised features; ``LogisticRegression(max_iter=1000)``;
    ``StratifiedKFold(n_splits, shuffle=True, random_state=seed)``; mean AUC of the held-out folds (scores = decision
    function). 0.5 = the representation does not reveal membership.

    Returns:
        ``{"auc", "auc_std", "n_per_side", "seed", "reason"}``; None values and a reason (with a warning) when a side
        has fewer than ``min_per_side`` examples; 0.5 with a warning when all features are identical.
    """
    m, n = _features(member_feats, "member_feats"), _features(nonmember_feats, "nonmember_feats")
    out: dict[str, Any] = {"auc": None, "auc_std": None, "n_per_side": min(len(m), len(n)), "seed": seed,
                           "reason": None}
    if out["n_per_side"] < max(min_per_side, n_splits):
        out["reason"] = f"n too small: {out['n_per_side']} per side < {max(min_per_side, n_splits)}"
        warnings.warn(f"membership_probe: {out['reason']}", DegenerateInputWarning, stacklevel=2)
        return out
    a, b = balanced_subsample(m, n, seed)
    x, y = np.vstack([a, b]), np.r_[np.ones(len(a)), np.zeros(len(b))]
    if np.all(x == x[0]):
        warnings.warn("membership_probe: all features identical", DegenerateInputWarning, stacklevel=2)
        out.update(auc=0.5, auc_std=0.0)
        return out
    aucs = []
    for tr, te in StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed).split(x, y):
        clf = _probe().fit(x[tr], y[tr])
        aucs.append(roc_auc_score(y[te], clf.decision_function(x[te])))
    out.update(auc=float(np.mean(aucs)), auc_std=float(np.std(aucs)))
    return out


def label_probe(train_feats: ArrayLike, train_labels: ArrayLike, eval_feats: ArrayLike,
                eval_labels: ArrayLike) -> dict[str, Any]:
    """Accuracy of a linear probe (standardised features, multinomial ``LogisticRegression(max_iter=1000)``) fit on
    (train_feats, train_labels) and scored on (eval_feats, eval_labels).

    Returns:
        ``{"acc", "n_train", "n_eval", "reason"}``; acc None (warning) when either set is empty; when the training
        labels hold a single class the probe predicts that class (warning), since scikit-learn refuses to fit.
    """
    xt, xe = _features(train_feats, "train_feats"), _features(eval_feats, "eval_feats")
    yt, ye = np.asarray(train_labels).reshape(-1), np.asarray(eval_labels).reshape(-1)
    out: dict[str, Any] = {"acc": None, "n_train": len(xt), "n_eval": len(xe), "reason": None}
    if len(xt) == 0 or len(xe) == 0:
        out["reason"] = "empty probe training or evaluation set"
        warnings.warn(f"label_probe: {out['reason']}", DegenerateInputWarning, stacklevel=2)
        return out
    classes = np.unique(yt)
    if classes.size == 1:
        warnings.warn("label_probe: one class in the probe's training set", DegenerateInputWarning, stacklevel=2)
        out["acc"] = accuracy(np.full(len(ye), classes[0]), ye)
        return out
    out["acc"] = accuracy(_probe().fit(xt, yt).predict(xe), ye)
    return out
