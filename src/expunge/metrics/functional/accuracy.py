"""Accuracy and gap-to-retrain metrics on arrays.

Accuracies are in [0, 1]; only the explicitly named SalUn aliases are percentages.

References:
    - SalUn: Fan et al., "SalUn: Empowering Machine Unlearning via Gradient-based Weight Saliency", ICLR 2024
      (arXiv 2310.12508); OPTML-Group/Unlearn-Saliency README ("UA" = 100 − forget accuracy, "Avg. Gap").
    - Tug-of-War: Zhao et al., "What makes unlearning hard and what to do about it", NeurIPS 2024 (arXiv 2406.01257).
    - SVD metric: sangamesh-kodge/class_forgetting ``utils.py`` (retain acc × (1 − forget acc)).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from expunge.errors import DegenerateInputWarning, NonFiniteOutputs

SALUN_KEYS: tuple[str, ...] = ("UA", "MIA", "RA", "TA")
_SALUN_ALIASES = {"MIA_EFFICACY": "MIA", "MIA-EFFICACY": "MIA", "MIA_EFF": "MIA"}
TOW_KEYS: tuple[str, ...] = ("forget", "retain", "test")


def _predictions(logits_or_preds: ArrayLike, y: ArrayLike) -> tuple[NDArray[Any], NDArray[Any]]:
    """Predicted labels (argmax over axis 1 for 2-D input) and labels, with matching lengths checked."""
    a, labels = np.asarray(logits_or_preds), np.asarray(y).reshape(-1)
    if a.ndim == 2:
        preds = np.argmax(a, axis=1) if a.shape[1] > 0 else np.zeros(a.shape[0], dtype=np.int64)
    elif a.ndim == 1:
        preds = a
    else:
        raise ValueError(f"logits_or_preds must be 1-D predictions or 2-D logits, got shape {a.shape}")
    if preds.shape[0] != labels.shape[0]:
        raise ValueError(f"{preds.shape[0]} predictions but {labels.shape[0]} labels")
    if np.issubdtype(a.dtype, np.floating) and not np.all(np.isfinite(a)):
        # argmax of a NaN row is its first NaN's index: all-NaN logits would score 1.0 on class 0
        bad = int(np.sum(~np.isfinite(a).reshape(len(a), -1).all(axis=1)))
        raise NonFiniteOutputs(f"{bad} of {len(a)} rows of logits/predictions are not finite: a collapsed model has "
                               "no accuracy")
    return preds, labels


def accuracy(logits_or_preds: ArrayLike, y: ArrayLike) -> float | None:
    """Top-1 accuracy: acc(S) = (1/|S|) Σ_{x∈S} 1[argmax z(x) = y] (SalUn's RA/TA, every paper's forget accuracy).

    Args:
        logits_or_preds: Logits/probabilities of shape (n, C) (argmax is taken) or predicted labels of shape (n,).
        y: True labels, shape (n,).

    Returns:
        Accuracy in [0, 1], or None (with a DegenerateInputWarning) when n = 0.

    Raises:
        ValueError: Lengths differ or the input is not 1-D/2-D.
        NonFiniteOutputs: Some logit is NaN/±inf (a ValueError; the metric layer turns it into None with the reason).
    """
    preds, labels = _predictions(logits_or_preds, y)
    if labels.size == 0:
        warnings.warn("accuracy: empty split", DegenerateInputWarning, stacklevel=2)
        return None
    return float(np.mean(preds == labels))


def classwise_accuracy(logits: ArrayLike, y: ArrayLike, num_classes: int) -> dict[int, float]:
    """Per-class accuracy acc_c = (1/|S_c|) Σ_{x∈S_c} 1[argmax z(x) = c], S_c = {x ∈ S : y(x) = c}.

    Args:
        logits: Logits of shape (n, C) or predicted labels of shape (n,).
        y: True labels in [0, num_classes).
        num_classes: Number of classes.

    Returns:
        ``{class: accuracy}`` for the classes present in ``y``; classes absent from ``y`` are omitted (never NaN).
    """
    preds, labels = _predictions(logits, y)
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"labels must lie in [0, {num_classes}), got range [{labels.min()}, {labels.max()}]")
    correct = np.bincount(labels[preds == labels].astype(np.int64), minlength=num_classes)
    total = np.bincount(labels.astype(np.int64), minlength=num_classes)
    return {c: float(correct[c] / total[c]) for c in range(num_classes) if total[c] > 0}


def gap_to_reference(value: float, reference_values: Sequence[float] | ArrayLike | None) -> dict[str, Any]:
    """Gap of a metric to the retrained reference(s), mean ± std over reference seeds as SalUn's tables report it.

    gap = |m(U) − m̄(R)|, signed = m(U) − m̄(R), m̄(R) = mean over reference seeds, ref_std = sample std (ddof = 1)
    over seeds (None with a single seed).

    Args:
        value: m(U).
        reference_values: m(R) for each reference seed; None or empty when no reference exists.

    Returns:
        ``{"gap", "signed", "ref_mean", "ref_std", "n_ref", "reason"}``; all values None and reason
        ``"no reference"`` when there is no reference (never a made-up 0).
    """
    ref = np.asarray([] if reference_values is None else reference_values, dtype=np.float64).reshape(-1)
    if ref.size == 0:
        return {"gap": None, "signed": None, "ref_mean": None, "ref_std": None, "n_ref": 0, "reason": "no reference"}
    if not np.isfinite(value) or not np.all(np.isfinite(ref)):
        raise ValueError("value and reference_values must be finite")
    mean = float(ref.mean())
    signed = float(value) - mean
    return {"gap": abs(signed), "signed": signed, "ref_mean": mean,
            "ref_std": float(ref.std(ddof=1)) if ref.size > 1 else None, "n_ref": int(ref.size), "reason": None}


def _mean_value(v: float | Sequence[float]) -> float:
    arr = np.asarray(v, dtype=np.float64).reshape(-1)
    if arr.size == 0 or not np.all(np.isfinite(arr)):
        raise ValueError("each value must be a finite number or a non-empty sequence of finite numbers")
    return float(arr.mean())


def _salun_values(d: Mapping[str, float | Sequence[float]], which: str) -> dict[str, float]:
    norm = {_SALUN_ALIASES.get(k.upper(), k.upper()): v for k, v in d.items()}
    missing = [k for k in SALUN_KEYS if k not in norm]
    if missing:
        raise ValueError(f"{which} lacks {missing}; expected keys {SALUN_KEYS} (percentage points)")
    return {k: _mean_value(norm[k]) for k in SALUN_KEYS}


def avg_gap_salun(u: Mapping[str, float | Sequence[float]],
                  r: Mapping[str, float | Sequence[float]] | None) -> float | None:
    """SalUn "Avg. Gap" (Fan et al., ICLR 2024, arXiv 2310.12508; OPTML-Group/Unlearn-Saliency README).

    Avg.Gap = ¼ Σ_{k∈{UA, MIA, RA, TA}} |k(U) − k(R)|, all in percentage points (UA = 100 − forget acc, MIA =
    MIA-Efficacy ×100 as :func:`~expunge.metrics.functional.mia.mia_efficacy_svc_salun`, RA/TA = retain/test acc ×100).
    Keys are case-insensitive; ``MIA_Efficacy`` is accepted for MIA. A sequence value (several reference seeds) is
    averaged.

    Returns:
        The average gap, or None (with a DegenerateInputWarning "no reference") when ``r`` is None or empty.
    """
    if not r:
        warnings.warn("avg_gap_salun: no reference", DegenerateInputWarning, stacklevel=2)
        return None
    uu, rr = _salun_values(u, "u"), _salun_values(r, "r")
    return float(np.mean([abs(uu[k] - rr[k]) for k in SALUN_KEYS]))


def _tow_values(a: Mapping[str, float] | Sequence[float], which: str) -> NDArray[np.float64]:
    vals = [a[k] for k in TOW_KEYS] if isinstance(a, Mapping) else list(a)
    arr = np.asarray(vals, dtype=np.float64).reshape(-1)
    if arr.size == 0 or not np.all((arr >= 0) & (arr <= 1)):
        raise ValueError(f"{which} must hold accuracies in [0, 1] (forget, retain, test)")
    return arr


def tow(u_accs: Mapping[str, float] | Sequence[float], r_accs: Mapping[str, float] | Sequence[float] | None
        ) -> float | None:
    """Tug-of-War score (Zhao et al., "What makes unlearning hard and what to do about it", NeurIPS 2024, arXiv
    2406.01257).

    ToW = Π_{S∈{F, D_r, T}} (1 − |acc_S(U) − acc_S(R)|), accuracies in [0, 1]; 1 = identical to retrain.

    Args:
        u_accs: Accuracies of U as ``{"forget", "retain", "test"}`` or a sequence in that order.
        r_accs: The same for the retrained model R; None when there is no reference.

    Returns:
        ToW ∈ [0, 1], or None (with a DegenerateInputWarning "no reference") when ``r_accs`` is None.
    """
    if r_accs is None:
        warnings.warn("tow: no reference", DegenerateInputWarning, stacklevel=2)
        return None
    uu, rr = _tow_values(u_accs, "u_accs"), _tow_values(r_accs, "r_accs")
    if uu.shape != rr.shape:
        raise ValueError(f"u_accs and r_accs differ in length ({uu.size} vs {rr.size})")
    return float(np.prod(1.0 - np.abs(uu - rr)))


def ua_salun_pct(acc_forget: float) -> float:
    """SalUn "UA" (unlearning accuracy) in percent: 100 · (1 − acc_forget) (OPTML-Group/Unlearn-Saliency README).

    Never export this as a bare "UA": other repos use the name for forget accuracy itself.
    """
    _check_unit(acc_forget, "acc_forget")
    return 100.0 * (1.0 - float(acc_forget))


def svd_metric(acc_retain: float, acc_forget: float) -> float:
    """acc_retain · (1 − acc_forget) (Kodge et al., TMLR 2024, arXiv 2312.00761; sangamesh-kodge/class_forgetting
    ``utils.py``)."""
    _check_unit(acc_retain, "acc_retain")
    _check_unit(acc_forget, "acc_forget")
    return float(acc_retain) * (1.0 - float(acc_forget))


def _check_unit(x: float, name: str) -> None:
    if not (0.0 <= float(x) <= 1.0):
        raise ValueError(f"{name} must be an accuracy in [0, 1], got {x!r}")
