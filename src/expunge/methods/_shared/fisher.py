"""Per-example diagonal Fisher information, shared by the ``fisher`` and ``influence`` methods.

SSD's importance (:func:`expunge.methods.ssd.diagonal_fisher`) squares *batch-mean* gradients, which scales with
1/batch size; a curvature estimate needs the per-example form instead:

* ``kind="true"``: F = (1/N) Σ_i Σ_c p_c(x_i) (∇_θ log p_c(x_i))², the expectation over the model's own predictive
  distribution, computed exactly by summing over all C classes (Golatkar et al.'s ``hessian`` helper in
  AdityaGolatkar/SelectiveForgetting ``Forgetting.ipynb`` does the same with batch size 1). For softmax
  cross-entropy this is the diagonal of the generalised Gauss-Newton matrix, which for a model linear in θ (logistic
  regression) *is* the Hessian.
* ``kind="empirical"``: F = (1/N) Σ_i (∇_θ log p_{y_i}(x_i))², one gradient per example (C times cheaper).

Both are sums over "rows" r = (example i, class c) of (∇_θ w_r·log p_c(x_i))² with w_r = √p_c(x_i) (true) or one row
per example with c = y_i, w = 1 (empirical). Computed in eval mode (BatchNorm running statistics, no dropout), two
ways with the same result:

* fast path, when every parameter belongs to an ``nn.Linear`` (2-D input), ``nn.Conv2d`` (ungrouped, zero padding)
  or eval-mode BatchNorm layer, each applied once per forward (all built-in architectures): forward hooks capture
  each layer's input a and autograd its output gradient δ per row, and the squared per-row parameter gradients
  follow in closed form — Linear: Σ_r (δ_r a_rᵀ)² = (δ²)ᵀ(a²); Conv2d: (Σ_positions δ ⊗ unfold(a))²;
  BatchNorm: (Σ_positions δ·x̂)² and (Σ_positions δ)² — over chunks of rows, one forward/backward per chunk;
* otherwise ``torch.func`` per-row gradients (``vmap(grad)``).
Chunks hold at most about ``max_chunk_elems`` numbers. Cost of ``kind="true"``: about C forward/backward passes per
example (C = 10: ten epochs' worth of gradient work over the data), hence the methods' ``fisher_fraction``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap

from expunge.data.batches import Batch
from expunge.models.inference import eval_mode

FisherKind = Literal["true", "empirical"]


def _rows(logits: torch.Tensor, y: torch.Tensor, kind: FisherKind) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(example index, class, weight) of every row."""
    b, c = logits.shape
    if kind == "empirical":
        return torch.arange(b), y, torch.ones(b, dtype=logits.dtype)
    p = F.softmax(logits.detach(), dim=-1)
    return torch.arange(b).repeat_interleave(c), torch.arange(c).repeat(b), p.reshape(-1).sqrt()


def _layer_names(model: nn.Module) -> dict[nn.Module, tuple[str, str | None]] | None:
    """Parameter names of each supported layer, if those layers own every parameter of the model, else None."""
    out: dict[nn.Module, tuple[str, str | None]] = {}
    covered: set[int] = set()
    for name, mod in model.named_modules():
        own = list(mod.parameters(recurse=False))
        if not own:
            continue
        ok = (isinstance(mod, nn.Linear)
              or (isinstance(mod, nn.Conv2d) and mod.groups == 1 and mod.padding_mode == "zeros"
                  and not isinstance(mod.padding, str))
              or (isinstance(mod, nn.modules.batchnorm._BatchNorm) and mod.weight is not None
                  and mod.running_mean is not None))
        if not ok:
            return None
        pre = f"{name}." if name else ""
        out[mod] = (pre + "weight", pre + "bias" if getattr(mod, "bias", None) is not None else None)
        covered |= {id(q) for q in own}
    return out if covered == {id(q) for q in model.parameters()} else None


def _row_cost(mod: nn.Module, a: torch.Tensor, out: torch.Tensor) -> int | None:
    """Numbers held per row by the layer's squared-gradient computation; None if the input shape is unsupported."""
    if isinstance(mod, nn.Linear):
        return a.shape[1] + out.shape[1] if a.dim() == 2 else None
    if isinstance(mod, nn.Conv2d):
        if a.dim() != 4:
            return None
        k, o, pos = mod.weight[0].numel(), out.shape[1], out.shape[2] * out.shape[3]
        return k * pos + o * k + o * pos
    return 2 * a[0].numel()


def _patches(conv: nn.Conv2d, a: torch.Tensor) -> torch.Tensor:
    """Input patches [R, C, H_out, W_out, kh, kw] of a Conv2d, as a strided view (``F.unfold``'s im2col is orders
    of magnitude slower on a busy CPU)."""
    (ph, pw), (sh, sw), (dh, dw), (kh, kw) = conv.padding, conv.stride, conv.dilation, conv.kernel_size
    u = F.pad(a, (pw, pw, ph, ph)).unfold(2, dh * (kh - 1) + 1, sh).unfold(3, dw * (kw - 1) + 1, sw)
    return u[..., ::dh, ::dw]


@torch.no_grad()
def _accumulate(mod: nn.Module, names: tuple[str, str | None], a: torch.Tensor, g: torch.Tensor,
                res: dict[str, torch.Tensor]) -> None:
    """Add Σ_rows (per-row gradient)² of the layer's weight and bias, from its inputs ``a`` and output grads ``g``."""
    wn, bn = names
    if isinstance(mod, nn.Linear):  # row gradient δ aᵀ ⇒ Σ (δ aᵀ)² = (δ²)ᵀ(a²)
        w_sq, b_row = g.pow(2).T @ a.pow(2), g
    elif isinstance(mod, nn.Conv2d):  # row gradient Σ_positions δ ⊗ patch
        w_sq = torch.einsum("rohw,rchwij->rocij", g, _patches(mod, a)).pow(2).sum(0)
        b_row = g.sum(dim=(2, 3))
    else:  # BatchNorm in eval mode: y = γ·x̂ + β with running statistics
        shape = (1, -1) + (1,) * (a.dim() - 2)
        xhat = (a - mod.running_mean.reshape(shape)) / torch.sqrt(mod.running_var.reshape(shape) + mod.eps)
        dims = tuple(range(2, a.dim()))
        w_sq = ((g * xhat).sum(dims) if dims else g * xhat).pow(2).sum(0)
        b_row = g.sum(dims) if dims else g
    res[wn] += w_sq
    if bn is not None:
        res[bn] += b_row.pow(2).sum(0)


def _hooked_sq_grads(model: nn.Module, layers: dict[nn.Module, tuple[str, str | None]], x: torch.Tensor,
                     y: torch.Tensor, kind: FisherKind, max_chunk_elems: int) -> dict[str, torch.Tensor] | None:
    acts: dict[nn.Module, list[torch.Tensor]] = {m: [] for m in layers}
    outs: dict[nn.Module, list[torch.Tensor]] = {m: [] for m in layers}

    def hook(mod: nn.Module, inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        acts[mod].append(inp[0].detach())
        outs[mod].append(out)

    handles = [m.register_forward_hook(hook) for m in layers]
    try:
        with torch.no_grad():
            idx, cls, w = _rows(model(x), y, kind)
        if any(len(v) != 1 for v in acts.values()):
            return None  # a layer used twice: per-row gradients are sums of several outer products
        costs = [_row_cost(m, acts[m][0][:1], outs[m][0][:1]) for m in layers]
        if any(c is None for c in costs):
            return None  # e.g. a Linear on sequences: the identity needs one input row per example
        chunk = max(1, max_chunk_elems // max(1, *costs))
        res = {n: torch.zeros_like(p) for n, p in model.named_parameters()}
        for s in range(0, len(idx), chunk):
            for m in layers:
                acts[m].clear()
                outs[m].clear()
            sl = slice(s, s + chunk)
            logp = F.log_softmax(model(x[idx[sl]]), dim=-1).gather(1, cls[sl, None]).squeeze(1)
            mods = list(layers)
            grads = torch.autograd.grad((w[sl] * logp).sum(), [outs[m][0] for m in mods], allow_unused=True)
            for m, g in zip(mods, grads, strict=True):
                if g is not None:
                    _accumulate(m, layers[m], acts[m][0], g, res)
        return res
    finally:
        for h in handles:
            h.remove()


def _vmap_sq_grads(model: nn.Module, x: torch.Tensor, y: torch.Tensor, kind: FisherKind,
                   max_chunk_elems: int) -> dict[str, torch.Tensor]:
    params = {n: p.detach() for n, p in model.named_parameters()}
    buffers = {n: b.detach() for n, b in model.named_buffers()}

    def weighted_log_prob(prm: dict[str, torch.Tensor], xi: torch.Tensor, ci: torch.Tensor,
                          wi: torch.Tensor) -> torch.Tensor:
        out = F.log_softmax(functional_call(model, (prm, buffers), (xi.unsqueeze(0),)), dim=-1).squeeze(0)
        return wi * out.gather(0, ci.reshape(1)).squeeze(0)

    with torch.no_grad():
        idx, cls, w = _rows(model(x), y, kind)
    chunk = max(1, max_chunk_elems // max(1, sum(p.numel() for p in params.values())))
    res = {n: torch.zeros_like(p) for n, p in params.items()}
    for s in range(0, len(idx), chunk):
        sl = slice(s, s + chunk)
        g = vmap(grad(weighted_log_prob), in_dims=(None, 0, 0, 0))(params, x[idx[sl]], cls[sl], w[sl])
        for n, gi in g.items():
            res[n] += gi.pow(2).sum(dim=0)
    return res


def per_example_fisher(model: nn.Module, batches: Iterable[Batch], *, kind: FisherKind = "true",
                       max_chunk_elems: int = 2**24, fast: bool = True) -> dict[str, torch.Tensor]:
    """Mean over examples of the per-example diagonal Fisher (see module docstring), keyed by parameter name. The
    caller's train/eval mode is restored; the model is not modified. ``fast=False`` forces the generic path."""
    layers = _layer_names(model) if fast else None
    total = {n: torch.zeros_like(p) for n, p in model.named_parameters()}
    count = 0
    with eval_mode(model):
        for x, y in batches:
            part = _hooked_sq_grads(model, layers, x, y, kind, max_chunk_elems) if layers is not None else None
            if part is None:
                part = _vmap_sq_grads(model, x, y, kind, max_chunk_elems)
            for n, v in part.items():
                total[n] += v
            count += len(x)
    return {n: v / max(1, count) for n, v in total.items()}
