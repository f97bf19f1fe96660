"""Backdoor attack success rate on arrays (corrective unlearning, Goel et al., TMLR 2024, arXiv 2402.14015).

ASR = (1/|T|) Σ_{x∈T} 1[argmax z(trigger(x)) = target], T = test examples whose true class is not the target (an
image already of the target class says nothing about the trigger). Known answer: logits [[0, 2], [3, 1], [0, 1]],
target 1 → 2/3.
"""

from __future__ import annotations

import warnings

import numpy as np
from numpy.typing import ArrayLike

from expunge.errors import DegenerateInputWarning
from expunge.metrics.functional.accuracy import accuracy


def attack_success_rate(logits: ArrayLike, target: int) -> float | None:
    """Share of rows of ``logits`` (triggered non-target inputs) whose argmax is ``target``; None when empty."""
    z = np.asarray(logits)
    if z.ndim != 2:
        raise ValueError(f"logits must be 2-D (examples × classes), got shape {z.shape}")
    if not 0 <= target < z.shape[1]:
        raise ValueError(f"target class {target} is not among the {z.shape[1]} outputs")
    if z.shape[0] == 0:
        warnings.warn("attack_success_rate: no triggered example", DegenerateInputWarning, stacklevel=2)
        return None
    return accuracy(z, np.full(z.shape[0], target))  # the share predicted as the target class
