"""Population membership-inference attacks on per-example features.

Members are labelled 1, non-members 0; every score is oriented "higher = member". Attacker training sets are balanced
by seeded subsampling to the smaller side (:func:`balanced_subsample`); fewer than ``min_per_side`` (default 20)
examples per side gives a None-valued result with reason ``"n too small"`` plus a DegenerateInputWarning.

References:
    - Loss-LR cross-validated attack: NeurIPS'23 unlearning challenge starting kit (unlearning-challenge/starting-kit
      ``unlearning-CIFAR10.ipynb``, ``simple_mia``); MUFAC (ndb796/MachineUnlearning);
      xcadet/deepunlearn; class-matched variant meghdadk/SCRUB ``MIA_experiments.ipynb``.
    - SVC MIA-Efficacy: Fan et al., SalUn, ICLR 2024 (arXiv 2310.12508), OPTML-Group/Unlearn-Saliency
      ``Classification/evaluation/SVC_MIA.py`` (``SVC_MIA_forget_efficacy``). Its ``m_entropy`` uses log p instead of
      log(1 − p) and indexes whole columns; our :func:`modified_entropy` follows the correct ``evaluation/MIA.py``.
    - Entropy attacks: vikram2000b/bad-teaching-unlearning ``metrics.py`` (SVC); SSD ``src/metrics.py`` (LR with
      ``class_weight='balanced'``; its ``multi_class='multinomial'`` is omitted — removed in recent scikit-learn).
    - Threshold attacks: Yeom et al., CSF 2018 (arXiv 1709.01604); Song & Mittal, USENIX Security 2021
      (arXiv 2003.10595), who also define the modified entropy.
"""

from __future__ import annotations

import warnings
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score, roc_curve
from sklearn.model_selection import StratifiedShuffleSplit
from sklearn.svm import SVC

from expunge.errors import DegenerateInputWarning
from expunge.metrics.functional.divergence import EPS, log_softmax

MIN_PER_SIDE = 20
LOSS_CLIP = 100.0


# ----------------------------------------------------------------------------------------------- per-example features
def _log_probs(logits: ArrayLike, y: ArrayLike | None, from_probs: bool) -> tuple[NDArray[np.float64], NDArray[Any]]:
    z = np.asarray(logits, dtype=np.float64)
    if z.ndim != 2:
        raise ValueError(f"logits must be 2-D (examples × classes), got shape {z.shape}")
    labels = np.zeros(z.shape[0], dtype=np.int64) if y is None else np.asarray(y).reshape(-1).astype(np.int64)
    if labels.shape[0] != z.shape[0]:
        raise ValueError(f"{z.shape[0]} rows of logits but {labels.shape[0]} labels")
    if labels.size and (labels.min() < 0 or labels.max() >= z.shape[1]):
        raise ValueError(f"labels must lie in [0, {z.shape[1]})")
    logp = np.log(np.maximum(z, EPS)) if from_probs else log_softmax(z, axis=1)
    return logp, labels


def _at_label(a: NDArray[np.float64], y: NDArray[Any]) -> NDArray[np.float64]:
    return a[np.arange(a.shape[0]), y]


def ce_loss(logits: ArrayLike, y: ArrayLike, *, from_probs: bool = False) -> NDArray[np.float64]:
    """Cross-entropy per example, ℓ = −log p_y, clipped to [−100, 100] (a collapsed softmax would give inf).

    Args:
        logits: Shape (n, C); probabilities when ``from_probs`` (then p is floored at 1e-12).
        y: Labels, shape (n,).
        from_probs: Treat ``logits`` as probabilities.
    """
    logp, labels = _log_probs(logits, y, from_probs)
    return np.clip(-_at_label(logp, labels), -LOSS_CLIP, LOSS_CLIP)


def confidence(logits: ArrayLike, y: ArrayLike, *, from_probs: bool = False) -> NDArray[np.float64]:
    """Probability of the true class, p_y, per example."""
    logp, labels = _log_probs(logits, y, from_probs)
    return np.exp(_at_label(logp, labels))


def entropy(logits: ArrayLike, *, from_probs: bool = False) -> NDArray[np.float64]:
    """Prediction entropy H = −Σ_c p_c log p_c per example, nats (log floored at 1e-12). H(0.8, 0.2) = 0.500402."""
    logp, _ = _log_probs(logits, None, from_probs)
    return -np.sum(np.exp(logp) * np.maximum(logp, np.log(EPS)), axis=1)


def modified_entropy(logits: ArrayLike, y: ArrayLike, *, from_probs: bool = False) -> NDArray[np.float64]:
    """Modified entropy (Song & Mittal 2021, arXiv 2003.10595), per example.

    Mentr = −(1 − p_y) log p_y − Σ_{j≠y} p_j log(1 − p_j), logs floored at 1e-12. Unlike the SalUn ``SVC_MIA.py``
    ``m_entropy`` (log p instead of log(1 − p), whole-column indexing), ours follows the paper.
    """
    logp, labels = _log_probs(logits, y, from_probs)
    p = np.exp(logp)
    log_1mp = np.log(np.maximum(1.0 - p, EPS))
    terms = -p * log_1mp
    rows = np.arange(p.shape[0])
    py = p[rows, labels]
    terms[rows, labels] = -(1.0 - py) * np.log(np.maximum(py, EPS))
    return terms.sum(axis=1)


def correctness(logits: ArrayLike, y: ArrayLike) -> NDArray[np.float64]:
    """1.0 where argmax z = y, else 0.0."""
    logp, labels = _log_probs(logits, y, False)
    return (np.argmax(logp, axis=1) == labels).astype(np.float64)


def _features(x: ArrayLike, name: str) -> NDArray[np.float64]:
    """Attack features as a 2-D float64 array (a 1-D score becomes one column)."""
    a = np.asarray(x, dtype=np.float64)
    a = a.reshape(-1, 1) if a.ndim <= 1 else a
    if a.ndim != 2 or not np.all(np.isfinite(a)):
        raise ValueError(f"{name} must be a finite 1-D score array or a 2-D feature array, got shape {a.shape}")
    return a


def _scores(x: ArrayLike, name: str) -> NDArray[np.float64]:
    """One score per example as a 1-D float64 array."""
    a = _features(x, name)
    if a.shape[1] != 1:
        raise ValueError(f"{name} must hold one score per example, got shape {a.shape}")
    return a[:, 0]


def balanced_subsample(a: ArrayLike, b: ArrayLike, seed: int = 0) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Subsample the larger of two example sets, without replacement, to the size of the smaller (seeded).

    The smaller side is returned whole; the chosen rows of the larger keep their original order.
    """
    fa, fb = _features(a, "a"), _features(b, "b")
    n = min(len(fa), len(fb))
    rng = np.random.default_rng(seed)
    sa, sb = (f if len(f) == n else f[np.sort(rng.choice(len(f), size=n, replace=False))] for f in (fa, fb))
    return sa, sb


def _size_reason(n_member: int, n_nonmember: int, min_per_side: int, what: str) -> str | None:
    n = min(n_member, n_nonmember)
    if n < max(min_per_side, 1):
        reason = f"n too small: {n} per side < {max(min_per_side, 1)}"
        warnings.warn(f"{what}: {reason}", DegenerateInputWarning, stacklevel=3)
        return reason
    return None


def _warn_constant(x: NDArray[np.float64], what: str) -> None:
    if np.all(x == x[0]):
        warnings.warn(f"{what}: zero variance (all scores identical)", DegenerateInputWarning, stacklevel=3)


def _xy(members: NDArray[np.float64], nonmembers: NDArray[np.float64]) -> tuple[NDArray[Any], NDArray[Any]]:
    return np.vstack([members, nonmembers]), np.r_[np.ones(len(members)), np.zeros(len(nonmembers))]


# -------------------------------------------------------------------------------------------------------- attacks
def mia_auc(member_scores: ArrayLike, nonmember_scores: ArrayLike) -> float | None:
    """ROC-AUC of a score that is higher for members: P(s(member) > s(non-member)) (ties count ½).

    Uses ``sklearn.metrics.roc_auc_score``. Returns None (warning) when a side is empty; 0.5 (warning) when all scores
    are identical.
    """
    m, n = _scores(member_scores, "member_scores"), _scores(nonmember_scores, "nonmember_scores")
    if _size_reason(len(m), len(n), 1, "mia_auc"):
        return None
    x, y = np.r_[m, n], np.r_[np.ones(len(m)), np.zeros(len(n))]
    _warn_constant(x, "mia_auc")
    return float(roc_auc_score(y, x))


def loss_lr_cv(forget_losses: ArrayLike, test_losses: ArrayLike, seed: int = 0, n_splits: int = 10,
               test_size: float = 0.1, *, min_per_side: int = MIN_PER_SIDE) -> dict[str, Any]:
    """Cross-validated loss-LR attack, forget (1) vs test (0) (NeurIPS'23 starting kit ``simple_mia``, MUFAC,
    DeepUnlearn).

    Sides balanced by seeded subsampling; ``LogisticRegression()`` defaults on the loss;
    ``StratifiedShuffleSplit(n_splits, test_size, random_state=seed)``; mean/std CV accuracy and mean CV ROC-AUC.
    Compare with the retrained model's value, not with 0.5. Forget and test must come from the same distribution.

    Returns:
        ``{"acc", "acc_std", "auc", "n_per_side", "seed", "reason"}``; acc/acc_std/auc are None and reason is set when
        a side has fewer than ``min_per_side`` examples.
    """
    f, t = _features(forget_losses, "forget_losses"), _features(test_losses, "test_losses")
    out: dict[str, Any] = {"acc": None, "acc_std": None, "auc": None, "n_per_side": min(len(f), len(t)),
                           "seed": seed, "reason": _size_reason(len(f), len(t), min_per_side, "loss_lr_cv")}
    if out["reason"]:
        return out
    x, y = _xy(*balanced_subsample(f, t, seed))
    _warn_constant(x, "loss_lr_cv")
    cv = StratifiedShuffleSplit(n_splits=n_splits, test_size=test_size, random_state=seed)
    acc, auc = [], []
    for train, test in cv.split(x, y):  # same folds and scores as cross_validate(..., scoring=(accuracy, roc_auc))
        clf = LogisticRegression().fit(x[train], y[train])
        acc.append(clf.score(x[test], y[test]))
        auc.append(roc_auc_score(y[test], clf.decision_function(x[test])))
    out.update(acc=float(np.mean(acc)), acc_std=float(np.std(acc)), auc=float(np.mean(auc)))
    return out


def mufac_forgetting_score(acc: float) -> float:
    """MUFAC forgetting score |acc − 0.5| of the loss-LR attack accuracy (ndb796/MachineUnlearning README, "MIA"
    row)."""
    return abs(float(acc) - 0.5)


def nomus(acc_test: float, mia_acc: float | None = None, *, forgetting_score: float | None = None) -> float:
    """NoMUS = (acc_test + (1 − 2·|acc − 0.5|))/2 (MUFAC: ndb796/MachineUnlearning).

    Give either the attack accuracy ``mia_acc`` or the already-folded ``forgetting_score`` = |acc − 0.5|.
    MUFAC check: test 0.5951, forgetting score 0.2136 ⇒ 0.58395.
    """
    if mia_acc is not None and forgetting_score is None:
        fs = mufac_forgetting_score(mia_acc)
    elif forgetting_score is not None and mia_acc is None:
        fs = float(forgetting_score)
    else:
        raise ValueError("give exactly one of mia_acc and forgetting_score")
    return (float(acc_test) + 1.0 - 2.0 * fs) / 2.0


def indiscernibility(acc: float) -> float:
    """Indiscernibility 1 − |acc − 0.5|/0.5 of the attack accuracy (DeepUnlearn, arXiv 2410.01276;
    xcadet/deepunlearn)."""
    return 1.0 - abs(float(acc) - 0.5) / 0.5


def _member_share(clf: Any, members: ArrayLike, nonmembers: ArrayLike, targets: ArrayLike, seed: int,
                  min_per_side: int, what: str) -> float | None:
    """Fit ``clf`` on balanced members (1) vs non-members (0); return the share of ``targets`` predicted member."""
    m, n, t = _features(members, "members"), _features(nonmembers, "nonmembers"), _features(targets, "targets")
    if _size_reason(len(m), len(n), min_per_side, what):
        return None
    if len(t) == 0:
        warnings.warn(f"{what}: empty target set", DegenerateInputWarning, stacklevel=3)
        return None
    x, y = _xy(*balanced_subsample(m, n, seed))
    _warn_constant(x, what)
    return float(np.mean(clf.fit(x, y).predict(t)))


def mia_efficacy_svc_salun(retain_conf: ArrayLike, test_conf: ArrayLike, forget_conf: ArrayLike, seed: int = 0, *,
                           min_per_side: int = MIN_PER_SIDE) -> float | None:
    """SalUn MIA-Efficacy (Fan et al., ICLR 2024; OPTML-Group/Unlearn-Saliency ``evaluation/SVC_MIA.py``).

    ``SVC(C=3, gamma='auto', kernel='rbf')`` fit on the feature (default p_y; also usable with correctness, entropy,
    modified entropy or full probability rows) of |T| retain examples (1; the reference takes the first |T|, ours a
    seeded sample) vs T (0); MIA-Eff = 1 − mean_{x∈F} 1[predicted member] ∈ [0, 1] (×100 in SalUn tables).

    Returns:
        MIA-Efficacy, or None (warning) when a training side has fewer than ``min_per_side`` examples or F is empty.
    """
    share = _member_share(SVC(C=3, gamma="auto", kernel="rbf"), retain_conf, test_conf, forget_conf, seed,
                          min_per_side, "mia_efficacy_svc_salun")
    return None if share is None else 1.0 - share


def entropy_mia(retain_H: ArrayLike, test_H: ArrayLike, forget_H: ArrayLike,
                classifier: Literal["svc", "lr"] = "svc", seed: int = 0, *,
                min_per_side: int = MIN_PER_SIDE) -> float | None:
    """Entropy attack (Bad Teacher ``metrics.py``; SSD ``src/metrics.py``), share of F predicted member (lower ≈
    forgotten; compare with R).

    Attacker fit on H of D_r (1) vs T (0), balanced by seeded subsampling. ``"svc"``: ``SVC(C=3, gamma='auto',
    kernel='rbf')`` (bad-teaching-unlearning ``metrics.py``); ``"lr"``: ``LogisticRegression(class_weight='balanced')``
    (SSD/JiT, without the removed ``multi_class`` argument).
    """
    if classifier == "svc":
        clf: Any = SVC(C=3, gamma="auto", kernel="rbf")
    elif classifier == "lr":
        clf = LogisticRegression(class_weight="balanced")
    else:
        raise ValueError(f"classifier must be 'svc' or 'lr', got {classifier!r}")
    return _member_share(clf, retain_H, test_H, forget_H, seed, min_per_side, f"entropy_mia[{classifier}]")


def threshold_attack_best(member_scores: ArrayLike, nonmember_scores: ArrayLike, seed: int = 0, *,
                          min_per_side: int = MIN_PER_SIDE) -> dict[str, Any]:
    """Best-threshold attack (Song & Mittal, USENIX Security 2021, arXiv 2003.10595): predict member if s ≥ τ.

    On sides balanced by seeded subsampling: balanced_acc = max_τ [1 − (FPR(τ) + FNR(τ))/2] and ROC-AUC. τ is fit on
    the evaluated sets, so the value is optimistic (``"optimistic": True``). Scores must be "higher = member", e.g.
    −loss, confidence, −entropy, −Mentr.

    Returns:
        ``{"balanced_acc", "auc", "threshold", "n_per_side", "seed", "optimistic", "reason"}`` (None values + reason
        when a side is too small; threshold None when the best rule is "nobody is a member").
    """
    m, n = _scores(member_scores, "member_scores"), _scores(nonmember_scores, "nonmember_scores")
    out: dict[str, Any] = {"balanced_acc": None, "auc": None, "threshold": None, "n_per_side": min(len(m), len(n)),
                           "seed": seed, "optimistic": True,
                           "reason": _size_reason(len(m), len(n), min_per_side, "threshold_attack_best")}
    if out["reason"]:
        return out
    m, n = (a[:, 0] for a in balanced_subsample(m, n, seed))
    y = np.r_[np.ones(len(m)), np.zeros(len(n))]
    fpr, tpr, thr = roc_curve(y, np.r_[m, n], drop_intermediate=False)
    bal = (tpr + 1.0 - fpr) / 2.0
    i = int(np.argmax(bal))
    out.update(balanced_acc=float(bal[i]), auc=mia_auc(m, n), threshold=float(thr[i]) if np.isfinite(thr[i]) else None)
    return out


def threshold_attack_yeom(forget_losses: ArrayLike, test_losses: ArrayLike, mean_train_loss: float, seed: int = 0,
                          *, min_per_side: int = MIN_PER_SIDE) -> dict[str, Any]:
    """Yeom et al. loss-threshold attack (CSF 2018, arXiv 1709.01604).

    Score s = −loss, τ = −(mean training loss on D_r): predict member iff loss ≤ mean_train_loss. Accuracy on forget
    (1) vs test (0), balanced by seeded subsampling (so accuracy = balanced accuracy = (TPR + 1 − FPR)/2).

    Returns:
        ``{"acc", "tpr", "fpr", "threshold", "n_per_side", "seed", "reason"}``.
    """
    f, t = _scores(forget_losses, "forget_losses"), _scores(test_losses, "test_losses")
    if not np.isfinite(mean_train_loss):
        raise ValueError("mean_train_loss must be finite")
    out: dict[str, Any] = {"acc": None, "tpr": None, "fpr": None, "threshold": -float(mean_train_loss),
                           "n_per_side": min(len(f), len(t)), "seed": seed,
                           "reason": _size_reason(len(f), len(t), min_per_side, "threshold_attack_yeom")}
    if out["reason"]:
        return out
    f, t = (a[:, 0] for a in balanced_subsample(f, t, seed))
    tpr, fpr = float(np.mean(-f >= -mean_train_loss)), float(np.mean(-t >= -mean_train_loss))
    out.update(acc=(tpr + 1.0 - fpr) / 2.0, tpr=tpr, fpr=fpr)
    return out
