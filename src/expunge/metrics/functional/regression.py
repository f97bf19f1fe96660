"""Per-example errors of real-valued predictions (the regression metrics' arrays; Tarun et al., "Deep Regression
Unlearning", ICML 2023, report the error on the forget, retain and test sets).

Predictions are reshaped to the targets' shape (``(n,)`` or ``(n, d)``); an example's error is averaged over its d
outputs, so each function returns one float64 value per example and a set's MSE / MAE is their mean.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray

from expunge.metrics.functional.mia import MIN_PER_SIDE, _member_share
from expunge.tasks.regression import as_targets_shape

__all__ = ["absolute_errors", "l1_svc_mia", "mean_and_se", "squared_differences", "squared_errors"]


def _aligned(predictions: ArrayLike, targets: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    y = np.asarray(targets, dtype=np.float64)
    return as_targets_shape(np.asarray(predictions, dtype=np.float64), y), y


def squared_errors(predictions: ArrayLike, targets: ArrayLike) -> NDArray[np.float64]:
    """(ŷ − y)² per example, averaged over outputs: ``squared_errors([[1], [3]], [0, 1]) == [1, 4]``."""
    pred, y = _aligned(predictions, targets)
    return np.square(pred - y).reshape(len(y), -1).mean(axis=1)


def absolute_errors(predictions: ArrayLike, targets: ArrayLike) -> NDArray[np.float64]:
    """|ŷ − y| per example, averaged over outputs: ``absolute_errors([[1], [3]], [0, 1]) == [1, 2]``."""
    pred, y = _aligned(predictions, targets)
    return np.abs(pred - y).reshape(len(y), -1).mean(axis=1)


def squared_differences(predictions: ArrayLike, reference: ArrayLike) -> NDArray[np.float64]:
    """(ŷ − ŷ_ref)² per example, averaged over outputs: how far two models' predictions are apart."""
    a = np.asarray(predictions, dtype=np.float64)
    b = np.asarray(reference, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"predictions {a.shape} and reference {b.shape} differ in shape")
    return np.square(a - b).reshape(len(a), -1).mean(axis=1)


def mean_and_se(values: ArrayLike) -> tuple[float | None, float | None]:
    """Mean and its standard error s/√n (s with ddof 1) of per-example values; (None, None) when empty, se None for
    one value. The se is over examples for a fixed model (it says nothing of seed-to-seed spread)."""
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    if v.size == 0:
        return None, None
    se = float(v.std(ddof=1) / math.sqrt(v.size)) if v.size > 1 else None
    return float(v.mean()), se


def l1_svc_mia(retain_errors: ArrayLike, test_errors: ArrayLike, forget_errors: ArrayLike, seed: int = 0, *,
               min_per_side: int = MIN_PER_SIDE) -> float | None:
    """The regression membership attack of Tarun et al., "Deep Regression Unlearning", ICML 2023 (reference
    ayu987/deep-regression-unlearning ``metrics.py``: ``get_membership_attack_prob``): ``SVC(C=3, gamma='auto',
    kernel='rbf')`` fit on the per-example absolute error of members (1) vs test examples (0), sides balanced by
    seeded subsampling; returns the share of ``forget_errors`` predicted member (lower ≈ forgotten; compare with the
    Retrain's). None (with a warning) when a side has fewer than ``min_per_side`` examples or the forget set is empty.

    Known answer: members' errors all 0.01, test and forget all 1.5 ⇒ 0.0; forget all 0.01 ⇒ 1.0.
    """
    from sklearn.svm import SVC

    return _member_share(SVC(C=3, gamma="auto", kernel="rbf"), retain_errors, test_errors, forget_errors, seed,
                         min_per_side, "l1_svc_mia")
