"""Per-parameter sums of batch gradients: the one loop behind SSD's importance, LFSSD's output sensitivity, SalUn's
saliency and the influence method's forget gradient.

:func:`summed_gradients` returns Σ_b t(∇_θ objective(model, b)) for every named parameter (a parameter the objective
does not reach stays zero) and the number of batches, computed in eval mode (the caller's mode is restored, also on
error). ``t`` is applied to each batch's gradient before summing: ``g ** 2`` for a diagonal Fisher of batch means,
``|g|`` for a sensitivity; none for a plain sum.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import nn

from expunge.data.batches import Batch
from expunge.models.inference import eval_mode

Objective = Callable[[nn.Module, Batch], torch.Tensor]


def summed_gradients(model: nn.Module, batches: Iterable[Batch], objective: Objective,
                     transform: Callable[[torch.Tensor], torch.Tensor] | None = None) \
        -> tuple[dict[str, torch.Tensor], int]:
    """``({name: Σ_b transform(∇ objective_b)}, number of batches)`` in eval mode (see the module docstring)."""
    params = dict(model.named_parameters())
    total = {n: torch.zeros_like(p) for n, p in params.items()}
    n_batches = 0
    with eval_mode(model):
        for batch in batches:
            grads = torch.autograd.grad(objective(model, batch), list(params.values()), allow_unused=True)
            for n, g in zip(params, grads, strict=True):
                if g is not None:
                    total[n] += g.detach() if transform is None else transform(g.detach())
            n_batches += 1
    return total, n_batches
