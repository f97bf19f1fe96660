"""Relearning formulas: Anamnesis Index and relearning-attack recovery (also after quantisation).

References:
    - Chundawat, Tarun, Mandal, Kankanhalli, "Zero-Shot Machine Unlearning", IEEE TIFS 2023 (arXiv 2201.05629):
      Anamnesis Index AIN = rt(U)/rt(R).
    - Łucki et al., "An Adversarial Perspective on Machine Unlearning for AI Safety", arXiv 2409.18025; Hu et al.,
      "Jogging the Memory of Unlearned LLMs Through Targeted Relearning Attacks", arXiv 2406.13356 (recovery).
    - Zhang et al., "Catastrophic Failure of LLM Unlearning via Quantization", ICLR 2025 (arXiv 2410.16454): the
      same recovery formula after quantisation.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

from expunge.errors import DegenerateInputWarning


def _finite(name: str, x: float) -> float:
    v = float(x)
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {x!r}")
    return v


def anamnesis_index(rt_unlearned: float, rt_retrain: float, capped_u: bool = False,
                    capped_r: bool = False) -> dict[str, Any]:
    """Anamnesis Index AIN = rt(U) / rt(R) (Chundawat et al., IEEE TIFS 2023); ≈ 1 ideal, ≪ 1 hidden not removed, ≫ 1
    over-damage.

    rt(M) is the number of fine-tuning steps on the relearn set until acc_F ≥ (1 − α)·acc_F(O). A run that hit the
    step cap without reaching the target reports its cap with ``capped_* = True``; then the true rt is larger than
    the value given, so AIN is a bound: U capped ⇒ ``bound = "lower"`` (true AIN ≥ value), R capped ⇒ "upper".

    Args:
        rt_unlearned: rt(U), steps ≥ 0 (the cap if ``capped_u``).
        rt_retrain: rt(R), steps ≥ 0 (the cap if ``capped_r``).
        capped_u: U reached the cap without relearning.
        capped_r: R reached the cap without relearning.

    Returns:
        dict(ain, bound, rt_unlearned, rt_retrain, capped_u, capped_r[, reason]). ``ain`` is None with a reason when
        both are capped (the ratio of two lower bounds means nothing) or rt(R) = 0 (R already meets the target, so
        the ratio is undefined); known answer rt(U) = 30, rt(R) = 60 ⇒ 0.5.
    """
    u, r = _finite("rt_unlearned", rt_unlearned), _finite("rt_retrain", rt_retrain)
    if u < 0 or r < 0:
        raise ValueError(f"relearn steps must be >= 0, got rt_unlearned={u}, rt_retrain={r}")
    out: dict[str, Any] = {"rt_unlearned": u, "rt_retrain": r, "capped_u": bool(capped_u),
                           "capped_r": bool(capped_r), "bound": None}
    reason = None
    if capped_u and capped_r:
        reason = "both U and R reached the relearn cap (> cap); AIN undefined"
    elif r == 0:
        reason = "rt(R) = 0: the retrained model already meets the relearn target; AIN undefined"
    if reason is not None:
        warnings.warn(reason, DegenerateInputWarning, stacklevel=2)
        out.update(ain=None, reason=reason)
        return out
    out["ain"] = u / r
    out["bound"] = "lower" if capped_u else "upper" if capped_r else None
    return out


def relearn_recovery(acc_original: float, acc_unlearned: float, acc_after: float) -> dict[str, Any]:
    """Fraction of the forgotten performance recovered by a relearning attack (Łucki et al.; Hu et al.)
    or by quantisation (Zhang et al., ICLR 2025).

    recovery = (acc(U_after) − acc(U)) / (acc(O) − acc(U)), all on the held-out forget remainder F′. 0 = nothing
    recovered, 1 = back to the original; not clipped (negative: the attack hurt; > 1: overshoot). Works for any
    "higher = more remembered" metric (VerbMem, KnowMem, MIA AUC).

    Args:
        acc_original: acc_F′(O).
        acc_unlearned: acc_F′(U).
        acc_after: acc_F′ after the attack.

    Returns:
        dict(recovery, forgotten[, reason]) with forgotten = acc(O) − acc(U). ``recovery`` is None with a reason when
        acc(O) = acc(U) (nothing was forgotten). Known answer: O 0.9, U 0.1, after 0.5 ⇒ 0.5.
    """
    o = _finite("acc_original", acc_original)
    u = _finite("acc_unlearned", acc_unlearned)
    a = _finite("acc_after", acc_after)
    gap = o - u
    if math.isclose(gap, 0.0, abs_tol=1e-12):
        reason = "acc(O) = acc(U): nothing was forgotten, recovery undefined"
        warnings.warn(reason, DegenerateInputWarning, stacklevel=2)
        return {"recovery": None, "forgotten": gap, "reason": reason}
    return {"recovery": (a - u) / gap, "forgotten": gap}
