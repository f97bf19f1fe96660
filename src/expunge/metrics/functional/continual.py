"""Continual-learning measures on an accuracy matrix.

``R[t, j]`` is the accuracy on task j's test data after learning step t (tasks in the order learned; NaN where a task
was not learned yet or is no longer kept). Definitions from Lopez-Paz & Ranzato, "Gradient Episodic Memory for
Continual Learning", NeurIPS 2017 (arXiv 1706.08840), §4:

* average accuracy ACC = (1/T) Σ_j R[T−1, j] over the kept tasks;
* backward transfer BWT = (1/(T−1)) Σ_{j < T−1} (R[T−1, j] − R[j, j]): how learning later tasks changed accuracy on
  earlier ones (negative: forgetting). Tasks that are not kept (NaN in the last row) are left out of both sums; the
  most recent task is left out of BWT (it has no later learning).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike


def _matrix(r: ArrayLike) -> np.ndarray:
    m = np.asarray(r, dtype=np.float64)
    if m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] == 0:
        raise ValueError(f"an accuracy matrix must be square T×T with T ≥ 1, got shape {m.shape}")
    return m


def average_accuracy(r: ArrayLike) -> float | None:
    """Mean of the last row over the kept tasks; None if none is kept."""
    last = _matrix(r)[-1]
    kept = ~np.isnan(last)
    return float(last[kept].mean()) if kept.any() else None


def backward_transfer(r: ArrayLike) -> float | None:
    """Mean of R[T−1, j] − R[j, j] over the kept tasks j < T−1; None if there is none (one task learned)."""
    m = _matrix(r)
    t = m.shape[0]
    diffs = [m[-1, j] - m[j, j] for j in range(t - 1) if not (np.isnan(m[-1, j]) or np.isnan(m[j, j]))]
    return float(np.mean(diffs)) if diffs else None
