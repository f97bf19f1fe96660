"""Loss-Free Selective Synaptic Dampening (LFSSD): SSD without labels.

Paper: Foster, Schoepf, Brintrup, "Loss-Free Machine Unlearning", ICLR 2024 Tiny Paper, arXiv 2402.19308.
Reference: if-loops/selective-synaptic-dampening ``README.md`` ("Implementing LFSSD") and
jwf40/Information-Theoretic-Unlearning ``src/forget_random_strategies.py:lfssd_tuning`` (its ``label_free_ssd``
module is not in that repository; the same importance is ``src/lipschitz.py:Lipschitz.calc_importance``).

SSD's importance is a diagonal Fisher estimate, which needs the loss and therefore labels. LFSSD replaces it by a
MAS-style sensitivity of the squared L2 norm of the model output (logits):

    Ω = (1/#batches) Σ_batches |∇_θ mean_{x∈batch} ‖f_θ(x)‖²₂|

(absolute batch gradient, not squared), computed in eval mode over the full training set D (Ω_D) and over the forget
set (Ω_f) with the same batch size. Selection and dampening are SSD's, reused from :mod:`expunge.methods.ssd`:
scalars with Ω_f > α·Ω_D are scaled by min(1, λ·Ω_D/Ω_f).

Design choices:

* Ω_D does not depend on the request, so it is computed once per original model and cached with
  :meth:`~expunge.data.access.UnlearningData.train_statistic` (exactly as ``ssd`` does); a request costs one pass over
  its forget set. ``full_importance="current"`` recomputes it on the model being unlearned, as for ``ssd``; the
  selection, dampening and request flow are SSD's (the class only swaps the importance). The full-set pass iterates
  D in order (fixed batch composition, reproducible).
* No label is read: the batches carry labels (the data API serves (x, y)) but they are never used, so permuting the
  labels of D and D_f gives a bit-identical result (tested).
* Defaults α = 10, λ = 1 are SSD's (AAAI 2024, ResNet-18); the paper reuses SSD's values (LFSSD-specific
  values unverified). As for SSD, α must be tuned per model (``expunge tune``). The importance is
  an absolute, not squared, gradient, so the same α is far more selective than SSD's: on digits / mlp, class 3,
  α = 10 selects 236 scalars (forget acc 0.23, retain 0.97) where SSD selects 13.5k (forget 0.0, retain 0.79);
  α = 30 selects nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn

from expunge.data.batches import Batch
from expunge.methods._shared.gradients import summed_gradients
from expunge.methods.base import register_method
from expunge.methods.ssd import SSD, SSDParams


@dataclass(frozen=True, kw_only=True)
class LFSSDParams(SSDParams):
    """SSD's knobs (α, λ, batch size, full_importance) with SSD's defaults and search spaces."""


def output_sensitivity(model: nn.Module, batches: Iterable[Batch]) -> dict[str, torch.Tensor]:
    """(1/#batches) Σ_b |∇_θ mean_{x∈b} ‖f(x)‖²₂| per parameter, in eval mode; labels in the batches are ignored.
    The caller's train/eval mode is restored."""
    imp, n_batches = summed_gradients(model, batches, _squared_output_norm, torch.abs)
    return {n: v / max(1, n_batches) for n, v in imp.items()}


def _squared_output_norm(model: nn.Module, batch: Batch) -> torch.Tensor:
    """mean_{x∈b} ‖f(x)‖²₂; batch[1] (labels) deliberately unused."""
    return model(batch[0]).flatten(1).pow(2).sum(dim=1).mean()


@register_method
class LFSSD(SSD):
    """Label-free SSD: dampen parameters whose output-norm sensitivity is far larger on the forget set."""

    name = "lfssd"
    paper = "Foster, Schoepf, Brintrup, Loss-Free Machine Unlearning, ICLR 2024 Tiny Paper, arXiv 2402.19308"
    reference = ("if-loops/selective-synaptic-dampening README.md (Implementing LFSSD); "
                 "jwf40/Information-Theoretic-Unlearning src/forget_random_strategies.py:lfssd_tuning")
    Params = LFSSDParams
    statistic = "lfssd_output_sensitivity"

    def importance(self, model: nn.Module, batches: Iterable[Batch]) -> dict[str, torch.Tensor]:
        return output_sensitivity(model, batches)
