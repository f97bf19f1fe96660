"""Gradient-free class forgetting by activation-space SVD projection (Kodge, Saha, Roy).

Paper: Kodge, Saha, Roy, "Deep Unlearning: Fast and Efficient Gradient-free Approach to Class Forgetting", TMLR 2024,
arXiv 2312.00761. Reference: sangamesh-kodge/class_forgetting ``main.py:our_unlearn``, ``get_projection_matrix`` and
``models/model_utils.py:forward_cache_projections`` (plus each model's ``project_weights``).

Data: a few retain samples per retained class (``retain_subset_loader(per_class=...)``) and a batch of forget-class
samples; class requests only. No gradient is ever computed: everything runs under ``torch.no_grad`` in eval mode.

For every projected layer l (``nn.Conv2d`` / ``nn.Linear``), with its inputs collected by forward hooks during one
pass of the original model over each sample set:

1. Activation matrix A (d × n): Linear inputs as columns (leading dims flattened); Conv2d inputs unfolded into
   patches of size in_channels·kh·kw (the layer's own kernel, stride, padding, dilation), at most ``max_patches``
   patches drawn uniformly at random (``ctx.generator``) over all samples and positions.
2. SVD A = U S Vᵀ, r_i = s_i² / Σ_j s_j²; scaled space M = U diag(α r / ((α − 1) r + 1)) Uᵀ, with α = α_r for the
   retain set (M_r) and α_f for the forget set (M_f). The scaling is 0 at r = 0 and 1 at r = 1.
3. P = I − (M_f − M_f M_r): the forget space minus what it shares with the retain space is the class-discriminative
   space; P suppresses it. 4. Weights updated on the input side, W_l ← W_l Pᵀ = W_l (I − M_f + M_r M_f), as the
   reference does (conv weights reshaped to out × in·kh·kw); biases kept.

Which layers: every Conv2d (with ``groups == 1``, zero padding, numeric padding) and every Linear that the forward
pass reaches — including the final classifier: the reference projects the classifier too (``project_weights``
projects ``fc`` in both branches of its ``proj_classifier`` flag, and VGG's loop covers the whole classifier).
Layers that cannot be projected this way (grouped / depthwise convs, ``padding='same'``, non-zero padding modes) are
left unchanged and listed in ``ctx.notes["skipped_layers"]``; BatchNorm and other parameters are never touched.

Choices and differences from the reference:

* Orientation: written out, the update reads W_l ← W_l P; the reference computes ``W @ P.T`` (``project_weights``), i.e.
  it removes (I − M_r) M_f x — the part of the forget-space component of x that the retain space does not explain, a
  direction orthogonal-ish to the retain activations. W P instead removes M_f (I − M_r) x, which lies along the forget
  space's dominant directions; these are largely shared with the retain classes (activations are uncentred, so the top
  singular vector is the class mean). The two agree when M_f and M_r commute (e.g. orthogonal class subspaces) and
  differ a lot otherwise: on digits / mlp, class 3, defaults, W Pᵀ gives forget acc 0.007 / retain 0.895 and W P 0.971 /
  0.976 (no forgetting). We keep the reference's orientation, which produced the paper's results;
  ``transpose_projection=False`` gives W P.
* Patch sampling: the reference first crops a random 3k × 3k window of every conv input (to save memory) and then
  keeps ``max_patches`` random patches, using the global Python / NumPy RNGs; we sample patches over the whole input
  in chunks (bounded memory) with the run's seeded generator.
* Sample counts: ``samples`` is the reference's ``our_samples``: the retain subset takes ``samples //
  #retained classes`` per class and the forget batch takes up to ``samples`` forget examples.
* SVD and projections in float64 (cheap at these sizes; avoids loss of orthogonality), cast back to the weight dtype.

Defaults α_r = 100, α_f = 3, samples = 900, max_patches = 10000: the paper's CIFAR-10 setting (also the reference
argparse defaults); CIFAR-100 uses 990 / 1000 / 30, ImageNet 999 / 100 / 10.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from expunge._hparams import Hyperparams, hp
from expunge.data.access import DataAccess, UnlearningData
from expunge.errors import InvalidForgetRequest
from expunge.methods.base import RunContext, UnlearningMethod, register_method
from expunge.models.inference import eval_mode


class ClassRequestRequired(InvalidForgetRequest):
    """The method forgets whole classes and was given another kind of request."""


@dataclass(frozen=True, kw_only=True)
class SVDClassParams(Hyperparams):
    alpha_r: float = hp(100.0, "retain-space scaling alpha_r", low=0.0, low_open=True, search=(1.0, 3000.0), log=True)
    alpha_f: float = hp(3.0, "forget-space scaling alpha_f", low=0.0, low_open=True, search=(0.25, 1000.0), log=True)
    samples: int = hp(900, "retain samples (split evenly over retained classes) and forget samples", low=1,
                      search=(50, 1000))
    max_patches: int = hp(10000, "at most this many conv patches per layer and sample set", low=1)
    batch_size: int = hp(256, "chunk size of the forward passes (memory only; no effect on the result)", low=1)
    transpose_projection: bool = hp(True, "W <- W·Pᵀ as the reference code (default); False: W <- W·P")


def scaled_importance(r: torch.Tensor, alpha: float) -> torch.Tensor:
    """α r / ((α − 1) r + 1): 0 at r = 0, 1 at r = 1, monotone; α > 1 inflates small energy fractions."""
    return alpha * r / ((alpha - 1.0) * r + 1.0)


def scaled_space(rows: torch.Tensor, alpha: float) -> torch.Tensor:
    """M = U diag(scaled_importance(r, α)) Uᵀ from activations given as rows (n × d); float64."""
    a = rows.to(torch.float64).T
    u, s, _ = torch.linalg.svd(a, full_matrices=False)
    energy = s.pow(2)
    total = energy.sum()
    if total <= 0:
        return torch.zeros(a.shape[0], a.shape[0], dtype=torch.float64)
    return (u * scaled_importance(energy / total, alpha)) @ u.T


def _projectable(module: nn.Module) -> bool:
    if isinstance(module, nn.Linear):
        return True
    return (isinstance(module, nn.Conv2d) and module.groups == 1 and module.padding_mode == "zeros"
            and not isinstance(module.padding, str))


def _as_rows(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    if isinstance(module, nn.Conv2d):
        cols = F.unfold(x, module.kernel_size, dilation=module.dilation, padding=module.padding,  # type: ignore
                        stride=module.stride)
        return cols.transpose(1, 2).reshape(-1, cols.shape[1])
    return x.reshape(-1, x.shape[-1])


@torch.no_grad()
def layer_rows(model: nn.Module, x: torch.Tensor, *, max_patches: int, generator: torch.Generator,
               batch_size: int = 256) -> dict[str, torch.Tensor]:
    """Input activations of every projectable layer as rows (conv: patches), at most ``max_patches`` per layer,
    drawn uniformly at random; one forward pass of ``model`` over ``x`` in chunks, in eval mode."""
    n = len(x)
    collected: dict[str, list[torch.Tensor]] = {}
    quota = {"chunk": 0}  # size of the current chunk, for the per-chunk patch quota

    def hook_for(name: str) -> Callable[..., None]:
        def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], _out: object) -> None:
            rows = _as_rows(module, inputs[0].detach())
            keep = math.ceil(max_patches * quota["chunk"] / n)
            if len(rows) > keep:
                rows = rows[torch.randperm(len(rows), generator=generator)[:keep]]
            collected.setdefault(name, []).append(rows)
        return hook

    handles = [m.register_forward_hook(hook_for(name)) for name, m in model.named_modules() if _projectable(m)]
    try:
        with eval_mode(model):
            for start in range(0, n, batch_size):
                chunk = x[start:start + batch_size]
                quota["chunk"] = len(chunk)
                model(chunk)
    finally:
        for h in handles:
            h.remove()
    out = {}
    for name, parts in collected.items():
        rows = torch.cat(parts)
        if len(rows) > max_patches:
            rows = rows[torch.randperm(len(rows), generator=generator)[:max_patches]]
        out[name] = rows
    return out


@torch.no_grad()
def projections(model: nn.Module, retain_x: torch.Tensor, forget_x: torch.Tensor, *, alpha_r: float,
                alpha_f: float, max_patches: int, generator: torch.Generator, batch_size: int = 256) \
        -> dict[str, torch.Tensor]:
    """P_l = I − (M_f − M_f M_r) for every projectable layer reached by the forward pass (float64)."""
    rows_r = layer_rows(model, retain_x, max_patches=max_patches, generator=generator, batch_size=batch_size)
    rows_f = layer_rows(model, forget_x, max_patches=max_patches, generator=generator, batch_size=batch_size)
    out = {}
    for name in sorted(rows_r.keys() & rows_f.keys()):
        m_r, m_f = scaled_space(rows_r[name], alpha_r), scaled_space(rows_f[name], alpha_f)
        out[name] = torch.eye(m_f.shape[0], dtype=torch.float64) - (m_f - m_f @ m_r)
    return out


@torch.no_grad()
def project_weights(model: nn.Module, proj: dict[str, torch.Tensor], *, transpose: bool = True) -> list[str]:
    """W ← W P (or W Pᵀ) on the input side of each layer in ``proj``; returns the names of the projected layers."""
    done = []
    for name, module in model.named_modules():
        if name not in proj:
            continue
        w = module.weight  # type: ignore[union-attr]
        p = proj[name].T if transpose else proj[name]
        flat = w.detach().to(torch.float64).reshape(w.shape[0], -1)
        w.copy_((flat @ p).reshape(w.shape).to(w.dtype))
        done.append(name)
    return done


@register_method
class SVDClass(UnlearningMethod[SVDClassParams]):
    """Gradient-free class forgetting: project out the class-discriminative activation space of every layer."""

    name = "svd_class"
    paper = "Kodge, Saha, Roy, Deep Unlearning: Fast and Efficient Gradient-free Approach to Class Forgetting, " \
            "TMLR 2024, arXiv 2312.00761"
    reference = "sangamesh-kodge/class_forgetting main.py:our_unlearn, models/model_utils.py:forward_cache_projections"
    access = DataAccess.FORGET | DataAccess.RETAIN_SUBSET
    Params = SVDClassParams

    def unlearn(self, model: nn.Module, data: UnlearningData, ctx: RunContext) -> nn.Module:
        p = self.params
        if data.request_kind != "class":
            raise ClassRequestRequired(
                f"svd_class forgets whole classes; got a {data.request_kind!r} request. Use a class request "
                "(class:3, classes:3,5) or a method for example-level forgetting (e.g. ssd, neggrad_plus).")
        n_retained = data.num_classes - len(data.forget_classes)
        per_class = max(1, p.samples // max(1, n_retained))
        retain_x = torch.cat([b[0] for b in data.retain_subset_loader(p.batch_size, per_class=per_class,
                                                                       shuffle=False)])
        forget_x = next(iter(data.forget_loader(p.samples, shuffle=True)))[0]
        gen = ctx.generator(0x5FD)
        proj = projections(model, retain_x, forget_x, alpha_r=p.alpha_r, alpha_f=p.alpha_f,
                           max_patches=p.max_patches, generator=gen, batch_size=p.batch_size)
        done = project_weights(model, proj, transpose=p.transpose_projection)
        skipped = [n for n, m in model.named_modules()
                   if isinstance(m, nn.Conv2d | nn.Linear) and n not in proj]
        ctx.notes.update(projected_layers=len(done), skipped_layers=skipped, retain_samples=len(retain_x),
                         forget_samples=len(forget_x))
        return model
