"""TRAK attribution of a classifier's margins, at CPU scale: one model, a seeded Gaussian projection.

Park, Georgiev, Ilyas, Leclerc, Madry, "TRAK: Attributing Model Behavior at Scale", ICML 2023 (arXiv 2303.14186);
reference MadryLab/trak (``trak/gradient_computers.py``, ``trak/score_computers.py``, ``trak/modelout_functions.py``
— read, not copied). For a trained model θ*, the output function of an example z = (x, y) is its **margin**
m(z) = logit_y − logsumexp_{c≠y} logit_c (TRAK's classification output function); each training example gets the
projected gradient φ_i = Pᵀ ∇_θ m(z_i) (P a d×k matrix of N(0, 1/k) entries, d the parameter count), and the
attribution of training example i to target z is

    τ(z)_i = φ(z)ᵀ (ΦᵀΦ)⁻¹ φ_i · (1 − p_i),     p_i = softmax(θ*; x_i)_{y_i}  (TRAK's Q term)

— the estimated change of m(z) from *including* z_i in training. Removing a set F is predicted to change m(z) by
−Σ_{i∈F} τ(z)_i (linear datamodel). :func:`trak_features` returns the two n×k matrices that make every such sum one
matrix–vector product, ``A = Φ(ΦᵀΦ + λI)⁻¹`` (targets' side) and ``B = diag(1 − p)Φ`` (training side):
Σ_{i∈F} τ(z)_i = A_z · Σ_{i∈F} B_i.

Choices at CPU scale (TRAK ensembles many models and uses k = 2048–20480): one model (the Original: no extra
training), k = ``dim`` (default 512), a damping λ = 1e-6 · trace(ΦᵀΦ)/k added for numerical safety (TRAK inverts the
undamped kernel; with k ≪ n it is well conditioned, and the damping changes its scores by ~1e-6 relatively),
gradients taken in eval mode (BatchNorm with running statistics, as TRAK does at the final model). The single-model
scores are noisier than an ensemble's and not calibrated in scale, which is why the datamodel-matching method that
uses them exposes a multiplier.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn
from torch.func import functional_call, grad, vmap

from expunge.data.batches import Batch


def margins(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """logit_y − logsumexp over the other classes, per row."""
    is_label = torch.arange(logits.shape[1]) == y.long().view(-1, 1)  # no one_hot: it reads y's values (vmap)
    correct = (logits * is_label).sum(1)
    return correct - torch.logsumexp(logits.masked_fill(is_label, float("-inf")), dim=1)


def projection(num_params: int, dim: int, seed: int) -> torch.Tensor:
    """The d×k Gaussian projection, entries N(0, 1/k), from a seeded generator."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(num_params, dim, generator=gen) / dim**0.5


def projected_margin_gradients(model: nn.Module, batches: Iterable[Batch], proj: torch.Tensor) \
        -> tuple[torch.Tensor, torch.Tensor]:
    """Φ (n×k: each example's margin gradient, projected) and p (n: the probability of its label), over
    ``batches`` in order, in eval mode."""
    was_training = model.training
    model.eval()
    params = {k: v.detach() for k, v in model.named_parameters()}
    buffers = dict(model.named_buffers())

    def margin(p: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        out = functional_call(model, (p, buffers), (x.unsqueeze(0),))
        return margins(out, y.view(1))[0]

    per_example = vmap(grad(margin), in_dims=(None, 0, 0))
    phis, probs = [], []
    try:
        for batch in batches:
            x, y = batch[0], batch[1]
            g = per_example(params, x, y)
            flat = torch.cat([g[name].reshape(len(x), -1) for name in params], dim=1)
            phis.append(flat @ proj)
            with torch.no_grad():
                probs.append(torch.softmax(model(x), dim=1).gather(1, y.long().view(-1, 1)).squeeze(1))
    finally:
        model.train(was_training)
    return torch.cat(phis), torch.cat(probs)


def trak_features(model: nn.Module, batches: Iterable[Batch], *, dim: int, seed: int) -> dict[str, torch.Tensor]:
    """``{"A", "B"}`` (module docstring) over the examples of ``batches``, in order."""
    num_params = sum(p.numel() for p in model.parameters())
    phi, prob = projected_margin_gradients(model, batches, projection(num_params, dim, seed))
    phi64 = phi.double()
    kernel = phi64.T @ phi64
    kernel += torch.eye(dim, dtype=torch.float64) * (1e-6 * float(kernel.trace()) / dim)
    a = torch.linalg.solve(kernel, phi64.T).T  # Φ K⁻¹ (K symmetric)
    return {"A": a.float(), "B": (phi64 * (1.0 - prob.double()).unsqueeze(1)).float()}


def predicted_margin_change(features: dict[str, torch.Tensor], targets: torch.Tensor,
                            removed: torch.Tensor) -> torch.Tensor:
    """−Σ_{i∈removed} τ(z)_i for each target position z: the margin change TRAK predicts from removing ``removed``."""
    return -(features["A"][targets] @ features["B"][removed].sum(0))
