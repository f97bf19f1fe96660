"""Pure functions of the language-model concealment audits (:mod:`expunge.metrics.llm_audit_quant`,
``llm_audit_relearn``, ``llm_audit_uds``): simulated weight quantisers and the Unlearning Depth Score formula.

Quantisers (Zhang et al., "Catastrophic Failure of LLM Unlearning via Quantization", ICLR 2025, arXiv 2410.16454;
spec ``metrics.md`` §5.3), simulated in torch (quantise then de-quantise to float, "fake quantisation"):

- :func:`int8_rtn` — symmetric round-to-nearest int8 with one absmax scale per output channel,
  q = round(w / s) clamped to [−127, 127], s = max|w_row| / 127 (LLM.int8's vector-wise quantisation without its
  fp16 outlier decomposition).
- :func:`nf4_blockwise` — 4-bit NormalFloat as bitsandbytes' ``quantize_4bit(quant_type="nf4", blocksize=64)``:
  the flattened weight in blocks of 64, each scaled by its absmax, every value mapped to the nearest of the 16 NF4
  levels (:data:`NF4_LEVELS`, Dettmers et al., QLoRA, arXiv 2305.14314, App. E); the per-block scales stay in float32
  (no double quantisation).

Unlearning Depth Score (gnueaj/unlearning-depth-score ``compute_uds.py``): per example and layer ℓ, Stage-1 delta
d1_ℓ = s_full − s_patched(retain → full at ℓ), Stage-2 delta d2_ℓ = s_full − s_patched(unlearned → full at ℓ), with
s the mean answer-token log-probability; knowledge-encoding layers are those with d1_ℓ > τ (τ = 0.05);
UDS = Σ_KE d1_ℓ · clip(d2_ℓ / d1_ℓ, 0, 1) / Σ_KE d1_ℓ, None when no layer is knowledge-encoding (:func:`uds_score`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

NF4_LEVELS = (-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635,
              -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725,
              0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941,
              0.7229568362236023, 1.0)
NF4_BLOCK = 64
UDS_TAU = 0.05


def int8_rtn(w: torch.Tensor, channel_dim: int = 0) -> torch.Tensor:
    """``w`` after symmetric per-channel int8 round-to-nearest (``channel_dim``: the output-channel axis)."""
    reduce = [d for d in range(w.dim()) if d != channel_dim % w.dim()]
    absmax = w.abs().amax(dim=reduce, keepdim=True) if reduce else w.abs()
    scale = torch.where(absmax > 0, absmax / 127.0, torch.ones_like(absmax))
    return (torch.round(w / scale).clamp(-127, 127) * scale).to(w.dtype)


def nf4_blockwise(w: torch.Tensor, block: int = NF4_BLOCK) -> torch.Tensor:
    """``w`` after NF4 quantisation in blocks of ``block`` consecutive values of the flattened tensor."""
    flat = w.detach().float().reshape(-1)
    pad = (-flat.numel()) % block
    blocks = torch.cat([flat, flat.new_zeros(pad)]).reshape(-1, block)
    absmax = blocks.abs().amax(dim=1, keepdim=True)
    scale = torch.where(absmax > 0, absmax, torch.ones_like(absmax))
    levels = torch.tensor(NF4_LEVELS)
    idx = (blocks / scale).unsqueeze(-1).sub(levels).abs().argmin(dim=-1)
    out = (levels[idx] * scale).reshape(-1)[: flat.numel()]
    return out.reshape(w.shape).to(w.dtype)


def uds_score(d1: Sequence[float], d2: Sequence[float], tau: float = UDS_TAU) -> float | None:
    """Unlearning Depth Score of one example from its per-layer Stage-1 (retain source) and Stage-2 (unlearned
    source) log-probability drops. 1 = erased as deeply as the retain model, 0 = intact; None: no layer with
    d1 > ``tau`` (the example has no knowledge-encoding layer). Known answers: d2 = d1 ⇒ 1; d2 = 0 ⇒ 0;
    d1 = (1, 0.5, 0.01), d2 = (0.5, 1, 0.3) ⇒ (1·0.5 + 0.5·1)/1.5 = 2/3."""
    if len(d1) != len(d2):
        raise ValueError(f"d1 and d2 need one value per layer, got {len(d1)} and {len(d2)}")
    num = den = 0.0
    for a, b in zip(d1, d2, strict=True):
        a, b = float(a), float(b)
        if not (math.isfinite(a) and math.isfinite(b)):
            raise ValueError(f"UDS deltas must be finite, got d1={a}, d2={b}")
        if a <= tau:
            continue
        den += a
        num += a * min(max(b / a, 0.0), 1.0)
    return num / den if den > 0 else None
