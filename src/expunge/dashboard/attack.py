"""The attack view's arithmetic: per-example membership features of forget vs test examples, threshold sweeps and the
Unlearning Comparator's threshold strategies (Lee et al., "Unlearning Comparator: A Visual Analytics System for
Comparative Evaluation of Machine Unlearning Methods", IEEE TVCG 2026, arXiv:2508.12730; reference UI
gnueaj/Machine-Unlearning-Comparator).

Features (a population threshold attack, the one ``mia_loss_auc`` learns a logistic threshold for): the per-example
**loss** (the task's own, :meth:`expunge.tasks.Task.example_losses`), the predictive **entropy** and the
**confidence** (softmax probability of the true label). Members — examples the model trained on — have low loss, low
entropy, high confidence: the attack says "forget example" when the loss or entropy is at most the threshold, or the
confidence at least it. After good unlearning the forget set looks like unseen test data and no threshold separates
them.

Choices the Comparator leaves open here, stated and tested:

* The two sides differ in size (a forgotten class is ~10% of the training set); the **attack accuracy** is the
  balanced accuracy (TPR + TNR) / 2 with forget = positive, test = negative: what the accuracy on equal-size samples
  of both sides is in expectation, 0.5 at chance whatever the sizes.
* Strategies: **custom** (the user's threshold); **max success** (the threshold of highest attack accuracy);
  **max attack score** (the threshold of highest F1 of the "forget" decision on balanced sides,
  2·TPR / (TPR + FPR + 1): it rewards finding forget examples, where accuracy weighs both sides equally; calling
  everything a forget example scores 2/3, so only a score above 2/3 is a signal. The Comparator's own attack score is
  not restated in the public material we could read offline: this is our reading, named as such in the UI);
  **common threshold** (one threshold for both models A and B: the one of highest mean attack accuracy over the two,
  so that they are attacked identically).
* **TPR at low FPR** is the largest TPR over thresholds whose FPR is at most 1% and 0.1% (Carlini et al., "Membership
  Inference Attacks From First Principles", S&P 2022, argue for it over accuracy); None when a side is too small to
  resolve it (fewer than 1/FPR test examples).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

# feature -> the side of the threshold the attack calls "member" (forget)
MEMBER_IF = {"loss": "below", "entropy": "below", "confidence": "above"}
LOW_FPR = (0.01, 0.001)
SWEEP_POINTS = 201  # thresholds sent for the slider (quantiles of the pooled values)


def features(outputs: np.ndarray, targets: np.ndarray, losses: np.ndarray, *, classification: bool) \
        -> dict[str, np.ndarray]:
    """Per-example attack features. ``losses`` are the task's; entropy and confidence need class probabilities, so a
    non-classification task gets the loss only."""
    out = {"loss": np.asarray(losses, dtype=np.float64)}
    if classification:
        z = np.asarray(outputs, dtype=np.float64)
        z = z - z.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            out["entropy"] = -np.where(p > 0, p * np.log(p), 0.0).sum(axis=1)
        out["confidence"] = p[np.arange(len(p)), np.asarray(targets, dtype=np.int64)]
    return out


def _rates(forget: np.ndarray, test: np.ndarray, thresholds: np.ndarray, member_if: str) \
        -> tuple[np.ndarray, np.ndarray]:
    """(TPR, FPR) at each threshold: the share of forget / test examples the attack calls members."""
    f, t = np.sort(forget), np.sort(test)
    if member_if == "below":  # member when value <= threshold
        tpr = np.searchsorted(f, thresholds, side="right") / max(len(f), 1)
        fpr = np.searchsorted(t, thresholds, side="right") / max(len(t), 1)
    else:  # member when value >= threshold
        tpr = 1 - np.searchsorted(f, thresholds, side="left") / max(len(f), 1)
        fpr = 1 - np.searchsorted(t, thresholds, side="left") / max(len(t), 1)
    return tpr, fpr


def candidates(*arrays: np.ndarray) -> np.ndarray:
    """Every threshold that changes a decision: the distinct values, plus one beyond each end (nobody / everybody)."""
    vals = np.unique(np.concatenate([np.asarray(a, dtype=np.float64) for a in arrays]))
    vals = vals[np.isfinite(vals)]
    if not len(vals):
        return np.array([0.0])
    pad = max(1e-12, 1e-9 * float(np.abs(vals).max()))
    return np.concatenate([[vals[0] - pad], vals, [vals[-1] + pad]])


def accuracy(tpr: np.ndarray, fpr: np.ndarray) -> np.ndarray:
    return (tpr + 1 - fpr) / 2


def f1(tpr: np.ndarray, fpr: np.ndarray) -> np.ndarray:
    """F1 of the "forget" decision on balanced sides (precision tpr / (tpr + fpr)): 2·tpr / (tpr + fpr + 1)."""
    return 2 * np.asarray(tpr) / (np.asarray(tpr) + np.asarray(fpr) + 1)


def evaluate(forget: np.ndarray, test: np.ndarray, threshold: float, member_if: str) -> dict[str, float]:
    tpr, fpr = _rates(forget, test, np.array([threshold]), member_if)
    return {"threshold": float(threshold), "tpr": float(tpr[0]), "fpr": float(fpr[0]),
            "accuracy": float(accuracy(tpr, fpr)[0]), "f1": float(f1(tpr, fpr)[0])}


def tpr_at_fpr(forget: np.ndarray, test: np.ndarray, member_if: str, fpr_max: float) -> float | None:
    if len(test) < 1 / fpr_max or not len(forget):
        return None
    tpr, fpr = _rates(forget, test, candidates(forget, test), member_if)
    ok = fpr <= fpr_max
    return float(tpr[ok].max()) if ok.any() else 0.0


def best(forget: np.ndarray, test: np.ndarray, member_if: str, objective: str) -> dict[str, float]:
    """The threshold maximising ``objective`` ("accuracy" or "f1"); ties go to the smallest such threshold."""
    th = candidates(forget, test)
    tpr, fpr = _rates(forget, test, th, member_if)
    score = accuracy(tpr, fpr) if objective == "accuracy" else f1(tpr, fpr)
    return evaluate(forget, test, float(th[int(np.argmax(score))]), member_if)


def common_threshold(pairs: Sequence[tuple[np.ndarray, np.ndarray]], member_if: str) -> float:
    """One threshold for several models: the one of highest mean attack accuracy over them."""
    th = candidates(*[a for pair in pairs for a in pair])
    total = np.zeros(len(th))
    for forget, test in pairs:
        tpr, fpr = _rates(forget, test, th, member_if)
        total += accuracy(tpr, fpr)
    return float(th[int(np.argmax(total))])


def sweep(forget: np.ndarray, test: np.ndarray, member_if: str, points: int = SWEEP_POINTS) -> dict[str, list[float]]:
    """The slider's thresholds (quantiles of the pooled values) with TPR, FPR and attack accuracy at each."""
    pooled = np.concatenate([forget, test])
    pooled = pooled[np.isfinite(pooled)]
    th = np.unique(np.quantile(pooled, np.linspace(0, 1, points))) if len(pooled) else np.array([0.0])
    tpr, fpr = _rates(forget, test, th, member_if)
    return {"threshold": _r(th), "tpr": _r(tpr), "fpr": _r(fpr), "accuracy": _r(accuracy(tpr, fpr))}


def summary(forget: np.ndarray, test: np.ndarray, member_if: str) -> dict[str, Any]:
    """Everything the view shows for one feature of one model, except the common threshold (which needs both)."""
    return {"member_if": member_if, "n_forget": len(forget), "n_test": len(test),
            "max_success": best(forget, test, member_if, "accuracy"),
            "max_attack_score": best(forget, test, member_if, "f1"),
            "tpr_at_fpr": {str(f): tpr_at_fpr(forget, test, member_if, f) for f in LOW_FPR},
            "sweep": sweep(forget, test, member_if)}


def exposure_order(values: np.ndarray, member_if: str) -> np.ndarray:
    """Forget positions from most to least member-like (the attack's most confident "was trained on")."""
    return np.argsort(values if member_if == "below" else -values, kind="stable")


def _r(a: np.ndarray | Mapping[str, Any]) -> list[float]:
    return [float(f"{float(v):.6g}") for v in np.asarray(a)]
