"""Weight-space distances between two models with the same parameter layout.

d(θ_a, θ_b) = ‖θ_a − θ_b‖₂ over all parameter tensors flattened and concatenated; relative = d / ‖θ_b‖₂.

Reference: weight-distance sanity checks as in Golatkar, Achille, Soatto, "Eternal Sunshine of the Spotless Net",
CVPR 2020 (arXiv 1911.04933), who compare the unlearned weights with those of a model retrained without the data.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from expunge.errors import DegenerateInputWarning


def l2_distance(params_a: Mapping[str, ArrayLike], params_b: Mapping[str, ArrayLike]) -> dict[str, Any]:
    """L2 distance between two parameter sets (name → array), and the distance relative to ``params_b``'s norm.

    Args:
        params_a: Parameters of the evaluated model.
        params_b: Parameters of the reference model (same names and shapes).

    Returns:
        ``{"distance", "relative", "n_params", "reason"}``. Names or shapes that differ give None values with a reason
        (the models are not comparable in weight space); no parameters at all gives None and a
        DegenerateInputWarning; ``relative`` is None when ‖θ_b‖ = 0. Known answer: a = {w: [3, 0]}, b = {w: [0, 4]}
        ⇒ distance 5, relative 1.25.

    Raises:
        ValueError: Non-finite parameters.
    """
    out: dict[str, Any] = {"distance": None, "relative": None, "n_params": 0, "reason": None}
    if set(params_a) != set(params_b):
        out["reason"] = f"parameter names differ ({len(set(params_a) ^ set(params_b))} not shared)"
        return out
    sq, ref_sq, n = 0.0, 0.0, 0
    for name in sorted(params_a):
        a, b = np.asarray(params_a[name], dtype=np.float64), np.asarray(params_b[name], dtype=np.float64)
        if a.shape != b.shape:
            out["reason"] = f"parameter {name!r} has shapes {a.shape} and {b.shape}"
            return out
        if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
            raise ValueError(f"parameter {name!r} is not finite")
        sq += float(np.sum((a - b) ** 2))
        ref_sq += float(np.sum(b**2))
        n += a.size
    if n == 0:
        warnings.warn("l2_distance: no parameters", DegenerateInputWarning, stacklevel=2)
        out["reason"] = "no parameters"
        return out
    d = math.sqrt(sq)
    out.update(distance=d, relative=d / math.sqrt(ref_sq) if ref_sq > 0 else None, n_params=n)
    return out
