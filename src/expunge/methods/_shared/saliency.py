"""Gradient-saliency masks and masked updates (SalUn; reusable by any gradient method that wants a weight mask).

:func:`saliency_mask` ranks every scalar of every parameter by |Σ_batches ∇_θ(−CE_batch-mean)| on the given batches
(signed sum first, absolute value after — not Σ|g|), in eval mode, and keeps the global top ``k`` fraction.
:class:`MaskedUpdates` confines training to the kept scalars: a gradient hook multiplies each gradient by the mask
(before the trainer's norm clipping, so the clip sees the masked gradient), and its ``after_step`` (the trainer's
hook) puts every masked-out scalar back to its value at entry and zeroes its optimiser state, so neither weight
decay nor momentum can move it (SalUn upstream PR #33).
"""

from __future__ import annotations

from collections.abc import Iterable
from types import TracebackType

import torch
import torch.nn.functional as F
from torch import nn

from expunge.data.batches import Batch
from expunge.methods._shared.gradients import summed_gradients


def saliency_mask(model: nn.Module, batches: Iterable[Batch], k: float) -> dict[str, torch.Tensor]:
    """Boolean masks (True = may be updated) for the top ``k`` fraction of scalars by |Σ_b ∇_θ(−CE_b)|, ranked
    globally across parameters. ``floor(k·P)`` scalars are kept (the reference's ``int(len·k)``); ties are broken by
    position in ``named_parameters()`` order (stable sort), so the mask is deterministic."""
    if not 0.0 < k <= 1.0:
        raise ValueError(f"k must be in (0, 1], got {k}")
    g, _ = summed_gradients(model, batches, lambda m, b: -F.cross_entropy(m(b[0]), b[1]))
    scores = torch.cat([v.abs().flatten() for v in g.values()])
    n_keep = int(k * scores.numel())
    keep = torch.zeros(scores.numel(), dtype=torch.bool)
    keep[torch.sort(scores, descending=True, stable=True).indices[:n_keep]] = True
    out, start = {}, 0
    for n, v in g.items():
        out[n] = keep[start:start + v.numel()].reshape(v.shape)
        start += v.numel()
    return out


class MaskedUpdates:
    """Context manager: while active, only ``mask``-True scalars of ``model`` change under ``optimizer``. Pass
    :meth:`after_step` to :func:`~expunge.train.loop.train_loop`. Hooks are removed on exit."""

    def __init__(self, model: nn.Module, mask: dict[str, torch.Tensor], optimizer: torch.optim.Optimizer) -> None:
        self.optimizer = optimizer
        # parameters whose mask is all True need no hook and no reset (keeps k = 1 bit-identical to no mask)
        self.params = {n: p for n, p in model.named_parameters() if n in mask and not bool(mask[n].all())}
        self.mask = {n: mask[n] for n in self.params}
        self.theta0 = {n: p.detach().clone() for n, p in self.params.items()}
        self._handles: list[torch.utils.hooks.RemovableHandle] = []

    def __enter__(self) -> MaskedUpdates:
        for n, p in self.params.items():
            m = self.mask[n].to(p.dtype)
            self._handles.append(p.register_hook(lambda grad, m=m: grad * m))
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    @torch.no_grad()
    def after_step(self) -> None:
        # restore θ₀ and clear optimiser state on m = 0: before upstream PR #33 the reference only masked gradients,
        # so weight decay and momentum still moved the "frozen" weights
        for n, p in self.params.items():
            keep = self.mask[n]
            p.copy_(torch.where(keep, p, self.theta0[n]))
            for v in self.optimizer.state.get(p, {}).values():  # momentum_buffer, exp_avg, exp_avg_sq, ...
                if torch.is_tensor(v) and v.shape == p.shape:
                    v.masked_fill_(~keep, 0.0)
