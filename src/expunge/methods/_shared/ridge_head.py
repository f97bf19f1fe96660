"""Closed-form ridge heads on frozen features: locating (φ, head), the fit statistics R = (XᵀX + γI)⁻¹ and Q = XᵀY,
and the recursive Woodbury downdate that removes rows exactly (used by :mod:`expunge.methods.analytic_head`).

Paper: Tang, Zhuang et al., "ACU: Analytic Continual Unlearning for Efficient and Exact Forgetting with Privacy
Preservation", arXiv 2505.12239 (2025); Zhuang et al., "ACIL: Analytic Class-Incremental Learning with Absolute
Memorization and Privacy Protection", NeurIPS 2022. No public reference code.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import nn

from expunge.errors import ExpungeError
from expunge.models.inference import eval_mode

FeatureFn = Callable[[torch.Tensor], torch.Tensor]


def locate_head(model: nn.Module, probe: torch.Tensor) -> tuple[FeatureFn, nn.Linear, str]:
    """``(φ, head, how)``. Built-in models expose ``features(x)`` and a final ``nn.Linear`` ``head``. Otherwise the
    head is the *last ``nn.Linear`` executed* in a forward pass on ``probe`` and φ(x) is that layer's input, captured
    by a forward pre-hook (so anything after it in ``forward`` is kept as is)."""
    head, feats = getattr(model, "head", None), getattr(model, "features", None)
    if isinstance(head, nn.Linear) and callable(feats):
        return feats, head, "features/head"
    executed: list[nn.Module] = []
    hooks = [m.register_forward_pre_hook(lambda mod, _args: executed.append(mod))
             for m in model.modules() if isinstance(m, nn.Linear)]
    try:
        with eval_mode(model), torch.no_grad():  # BatchNorm cannot run a one-example probe in train mode
            model(probe)
    finally:
        for h in hooks:
            h.remove()
    if not executed:
        raise ExpungeError("analytic_head needs a final nn.Linear (or model.features + model.head); none was run")
    last = executed[-1]
    assert isinstance(last, nn.Linear)

    def features(x: torch.Tensor) -> torch.Tensor:
        captured: list[torch.Tensor] = []
        hook = last.register_forward_pre_hook(lambda _mod, args: captured.append(args[0]))
        try:
            model(x)
        finally:
            hook.remove()
        if captured[-1].dim() != 2:
            raise ExpungeError(f"the last nn.Linear gets {captured[-1].dim()}-D input; analytic_head needs 2-D")
        return captured[-1]

    name = next(n for n, m in model.named_modules() if m is last)
    return features, last, f"last-linear:{name}"


@torch.no_grad()
def design_rows(features: FeatureFn, model: nn.Module, x: torch.Tensor, *, bias: bool, batch_size: int) \
        -> torch.Tensor:
    """φ(x) in eval mode as float64 rows, augmented with a constant 1 column when the head has a bias."""
    with eval_mode(model), torch.no_grad():  # features only: no autograd graph (3-4x less time and memory)
        parts = [features(x[i:i + batch_size]).double() for i in range(0, len(x), batch_size)]
    rows = torch.cat(parts) if parts else torch.zeros(0, 0, dtype=torch.float64)
    return torch.cat([rows, torch.ones(len(rows), 1, dtype=torch.float64)], dim=1) if bias else rows


def ridge_statistics(blocks: Iterable[tuple[torch.Tensor, torch.Tensor]], gamma: float) \
        -> tuple[torch.Tensor, torch.Tensor]:
    """R = (XᵀX + γI)⁻¹ (Cholesky inverse, symmetrised) and Q = XᵀY accumulated over (X, Y) float64 blocks."""
    gram: torch.Tensor | None = None
    q: torch.Tensor | None = None
    for x, y in blocks:
        gram = x.T @ x if gram is None else gram + x.T @ x
        q = x.T @ y if q is None else q + x.T @ y
    if gram is None or q is None:
        raise ExpungeError("ridge statistics need at least one row")
    eye = torch.eye(gram.shape[0], dtype=gram.dtype)
    r = torch.cholesky_inverse(torch.linalg.cholesky(gram + gamma * eye))
    # row-major, as the store returns it: a fresh and a cached R must take the same matmul path (bitwise results)
    return ((r + r.T) / 2).contiguous(), q.contiguous()


def ridge_downdate(r: torch.Tensor, q: torch.Tensor, x: torch.Tensor, y: torch.Tensor, *, chunk: int) \
        -> tuple[torch.Tensor, torch.Tensor, float]:
    """Remove rows (x, y) from (R, Q), ``chunk`` rows per step: K = I − X_f R X_fᵀ (Cholesky), R ← R + R X_fᵀ K⁻¹
    X_f R (symmetrised), Q ← Q − X_fᵀ Y_f. Raises if K is not positive definite (the rows were never learned, or
    are removed twice). Returns (R', Q', smallest Cholesky pivot² seen — how close K came to singular)."""
    min_pivot = float("inf")
    r, q = r.contiguous(), q.contiguous()
    for s in range(0, len(x), chunk):
        u, v = x[s:s + chunk], y[s:s + chunk]
        ru = r @ u.T
        k = torch.eye(len(u), dtype=r.dtype) - u @ ru
        chol, info = torch.linalg.cholesky_ex((k + k.T) / 2)
        if int(info) != 0:
            raise ExpungeError("analytic_head: K = I - X_f R X_f^T is not positive definite; the request removes "
                               "rows the head never learned (or removes them twice)")
        min_pivot = min(min_pivot, float(torch.diagonal(chol).min()) ** 2)
        r = r + ru @ torch.cholesky_solve(ru.T, chol)
        r = ((r + r.T) / 2).contiguous()
        q = q - u.T @ v
    return r, q, min_pivot
