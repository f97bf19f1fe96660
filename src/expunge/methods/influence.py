"""Influence unlearning: one Newton step that removes the forget set's influence, θ' = θ + H⁻¹·(|D_f|/|D|)·ḡ_f.

Papers: the influence-function removal step (Koh & Liang, ICML 2017; Guo et al., "Certified Data Removal", ICML 2020,
arXiv 1911.03030, which uses the retain-loss Hessian as below); "IU" baseline of Jia et al., NeurIPS 2023 (arXiv
2304.04934). Liu, Wu, Lian, Chen, "Efficient Machine Unlearning via Influence Approximation" (IAU), arXiv
2507.23257 (2025; only its abstract was read) motivates the family. References: OPTML-Group/Unlearn-Saliency
``Classification/unlearn/Wfisher.py`` (WoodFisher inverse-Hessian-vector product) and Lolo1222/IAU
``IAU_unlearn.py``.

Derivation. Training minimised L_D(θ) = (1/n) Σ_{i∈D} ℓ_i(θ) (+ (λ/2)‖θ‖² if trained with weight decay λ), n = |D|.
Retraining minimises the same sum over D_r only, whose gradient at the original optimum θ* is −(1/n) Σ_{i∈D_f} ∇ℓ_i
= −(|D_f|/|D|)·ḡ_f (ḡ_f the mean forget-set gradient of the cross-entropy). One Newton step on it is therefore

    θ' = θ* + (H + λI)⁻¹ · (|D_f|/|D|) · ḡ_f,        H = (1/n) Σ_{i∈D_r} ∇²ℓ_i(θ*),

the textbook influence step θ + H⁻¹∇L(D_f)·(|D_f|/|D|) with H the *retain* part of the training objective's Hessian, so
it is exact for a quadratic loss and, for the first order, the classic influence estimate. The damping λ (``damping``)
keeps H + λI invertible and is exactly the weight-decay term when the original was trained with one. ``scale``
multiplies the step (1 = Newton).

H, by ``hessian``:
* ``"diag_fisher"`` (default): H ≈ diag of (1/n) Σ_{i∈D_r} Σ_c p_c (∇ log p_c)² — the per-example true Fisher
  (:func:`~expunge.methods._shared.fisher.per_example_fisher`), i.e. the diagonal of the Gauss-Newton matrix; it
  equals diag(H) when the model is linear in θ. Step = ḡ-vector / (F + λ), elementwise.
* ``"exact"``: the full Hessian of the retain loss by automatic differentiation, in float64, solved densely; only for
  small models (≤ ``max_exact_params`` parameters; a logistic-regression head, tests).
The OPTML reference instead applies WoodFisher (a damped rank-one-update inverse of the empirical Fisher over ~1000
retain examples) to (|D_f|/n)(ḡ_f − ḡ_r), times α. IAU's own approximation is different again: it replaces H⁻¹ by a
learning rate — ``IAU_unlearn.py`` takes one Adam step (lr 1e-3) on the full-batch ∇L_r − ∇L_f (means over D_r and
D_f), which at Adam's first step is an elementwise sign step — and relies on the original having been trained with
its gradient-restriction loss ℓ + α‖∇ℓ‖; our originals are not, so we keep a curvature estimate instead.

Passes run in eval mode; ``step_norm`` and ``relative_step`` (‖Δ‖/‖θ‖) are recorded. Default λ = 1 is a choice,
not from a paper: a trained network's Fisher is tiny in most directions (digits/mlp: mean 9e-4, median 1e-4), so a
small λ turns the step into a huge ascent step. Measured on digits/mlp (FAST recipe): λ = 1 keeps retain accuracy
within 2.5 points on class:3 and random:0.1 (forget accuracy 0.99 → 0.74 on class:3); λ = 0.3 forgets class 3
completely but costs 9 points on random:0.1; λ ≤ 0.01 destroys the model. On a convex model with L2 training, set
λ to the weight decay (exact Newton). Tune λ and ``scale`` per model.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, jacrev

from expunge._hparams import Hyperparams, hp
from expunge.data.access import DataAccess, UnlearningData
from expunge.data.batches import Batches
from expunge.errors import ExpungeError
from expunge.methods._shared.fisher import per_example_fisher
from expunge.methods._shared.gradients import summed_gradients
from expunge.methods.base import RunContext, UnlearningMethod, register_method


@dataclass(frozen=True, kw_only=True)
class InfluenceParams(Hyperparams):
    hessian: Literal["diag_fisher", "exact"] = hp("diag_fisher", "Hessian approximation",
                                                  choices=("diag_fisher", "exact"))
    damping: float = hp(1.0, "lambda added to the Hessian diagonal", low=0.0, low_open=True, search=(1e-3, 10.0),
                        log=True)
    scale: float = hp(1.0, "multiplier of the Newton step", low=0.0, low_open=True, search=(0.1, 10.0), log=True)
    fisher_fraction: float = hp(1.0, "fraction of the retain set used for the diagonal Fisher", low=0.0,
                                low_open=True, high=1.0)
    batch_size: int = hp(128, "batch size of the gradient/Hessian passes (does not change the result)", low=1)
    max_exact_params: int = hp(5000, "hessian=exact refuses models with more parameters", low=1)


def summed_gradient(model: nn.Module, batches: Batches) -> dict[str, torch.Tensor]:
    """Σ_i ∇_θ CE(f(x_i), y_i) over the batches, in eval mode."""
    return summed_gradients(model, batches, lambda m, b: F.cross_entropy(m(b[0]), b[1], reduction="sum"))[0]


def summed_hessian(model: nn.Module, batches: Batches) -> torch.Tensor:
    """Σ_i ∇²_θ CE(f(x_i), y_i) as a dense P×P float64 matrix (parameters flattened in ``named_parameters`` order)."""
    m = copy.deepcopy(model).double().eval()
    names = [n for n, _ in m.named_parameters()]
    shapes = [q.shape for _, q in m.named_parameters()]
    sizes = [q.numel() for _, q in m.named_parameters()]
    buffers = dict(m.named_buffers())
    flat0 = torch.cat([q.detach().reshape(-1) for _, q in m.named_parameters()])

    def loss(flat: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        prm = {n: t.reshape(s) for n, t, s in zip(names, flat.split(sizes), shapes, strict=True)}
        return F.cross_entropy(functional_call(m, (prm, buffers), (x,)), y, reduction="sum")

    total = torch.zeros(flat0.numel(), flat0.numel(), dtype=torch.float64)
    for x, y in batches:
        total += jacrev(jacrev(loss))(flat0, x.double(), y)  # reverse-over-reverse: no forward-mode AD needed
    return total


@register_method
class Influence(UnlearningMethod[InfluenceParams]):
    """One damped Newton step removing the forget set's influence (diagonal-Fisher or exact Hessian)."""

    name = "influence"
    paper = "Influence removal (Koh & Liang ICML 2017; Guo et al. ICML 2020, arXiv 1911.03030; 'IU' of Jia et al. " \
            "NeurIPS 2023); cf. Liu, Wu, Lian, Chen, Efficient Machine Unlearning via Influence Approximation (IAU)"
    reference = "OPTML-Group/Unlearn-Saliency Classification/unlearn/Wfisher.py; Lolo1222/IAU IAU_unlearn.py"
    access = DataAccess.FORGET | DataAccess.RETAIN
    Params = InfluenceParams

    def unlearn(self, model: nn.Module, data: UnlearningData, ctx: RunContext) -> nn.Module:
        p = self.params
        n_params = sum(q.numel() for q in model.parameters())
        if p.hessian == "exact" and n_params > p.max_exact_params:
            raise ExpungeError(f"influence: hessian=exact needs a P×P matrix but the model has {n_params} parameters "
                               f"(max_exact_params={p.max_exact_params}); use hessian=diag_fisher")
        retain = data.retain_loader(p.batch_size, shuffle=False)  # served (and counted) only if iterated
        n_retain = retain.n_examples
        n = data.n_forget + n_retain
        theta_norm = float(torch.sqrt(sum((q.detach().double() ** 2).sum() for q in model.parameters())))
        v = summed_gradient(model, data.forget_loader(p.batch_size, shuffle=False))  # Σ_f ∇ℓ = |D_f|·ḡ_f
        v = {k: g / n for k, g in v.items()}  # (|D_f|/|D|)·ḡ_f
        if p.hessian == "exact":
            h = summed_hessian(model, retain) / n
            h += p.damping * torch.eye(h.shape[0], dtype=h.dtype)
            flat_v = torch.cat([g.reshape(-1) for g in v.values()]).double()
            flat_step = torch.linalg.solve(h, flat_v)
            step, start = {}, 0
            for k, g in v.items():
                step[k] = flat_step[start:start + g.numel()].reshape(g.shape).to(g.dtype)
                start += g.numel()
        else:
            if p.fisher_fraction < 1.0:
                batches = data.retain_subset_loader(p.batch_size, fraction=p.fisher_fraction, shuffle=False)
            else:
                batches = retain
            fisher = per_example_fisher(model, batches, kind="true")  # mean over the retain examples seen
            step = {k: v[k] / (fisher[k] * (n_retain / n) + p.damping) for k in v}
        with torch.no_grad():
            for k, q in model.named_parameters():
                q.add_(p.scale * step[k])
        step_norm = float(torch.sqrt(sum((s.double() ** 2).sum() for s in step.values()))) * p.scale
        ctx.notes.update(step_norm=step_norm, relative_step=step_norm / max(theta_norm, 1e-12), n_params=n_params)
        return model
