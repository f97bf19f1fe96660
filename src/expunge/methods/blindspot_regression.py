"""Blindspot unlearning for deep regression: a model that never saw the forget set guides its forgetting.

Paper: Tarun, Chundawat, Mandal, Kankanhalli, "Deep Regression Unlearning", ICML 2023, arXiv 2210.08196.
Reference: ayu987/deep-regression-unlearning ``unlearn.py`` (``attention``, ``attention_diff``, ``forget_loss``,
``fit_one_forget_cycle``) and the AgeDB notebook that drives it (``AgeDB_AllCNN_0to30_forgetting.ipynb``: blindspot
model = ``fit_one_cycle`` for 2 epochs on the retain set at ``utils.py``'s default lr 0.01, then 1 unlearning epoch at
lr 1e-3 on the forget and retain sets together).

1. Blindspot model B: a *fresh* initialisation of the Original's architecture (built by the model factory with a seed
   derived from ``ctx.seed``, never a reset of a live module), trained briefly on the retain set — it has a blind spot
   where the forget set is — then frozen in eval mode.
2. The unlearned model M starts as the copy of the Original (the retain knowledge it imprints comes from there) and
   is trained on shuffled batches of D_f (flag u = 1) ∪ D_r (u = 0). With c = (#u=1)/|batch|:
   L = c·L_f + (1 − c)·L_r, L_r = L1(M(x_r), y_r),
   L_f = L1(M(x_f), B(x_f)) + β_AT·Σ_l mean((a(M_l(x_f)) − a(B_l(x_f)))²),
   a(A) = L2-normalise(flatten(mean over channels of A²)) (attention transfer, Zagoruyko & Komodakis 2017).
3. Adam, no weight decay.

Choices the paper and the reference leave open, made here (tested in ``tests/methods/test_blindspot_regression.py``):

* **Which activations.** The reference's AllCNN returns every conv block's output; a generic model returns only its
  prediction. Ours hooks the output of every ``Linear`` / ``Conv1d`` / ``Conv2d`` module except the last one
  registered (the head of the built-in models), in M and B alike: the same layers of the same architecture.
  These are pre-activation outputs (the built-in CNN applies ReLU functionally); A² makes the sign irrelevant.
* **Attention of a vector layer.** For a (batch, units) activation the reference's channel mean leaves one number per
  example, whose L2 normalisation is always ±1: the attention term would be identically zero on an MLP. Ours treats
  each unit as a position, a(A) = L2-normalise(A²), so the term still compares *where* the activation mass lies.
* **Loss.** L1 as the paper and its code (the L1 loss is their training loss; ``loss="mse"`` uses the squared error,
  the loss expunge's regression task trains with). ``retain_targets="original"`` distils the Original's outputs on
  D_r instead of fitting the true targets (the Original as an explicit retain teacher; the reference uses labels).
* **Blindspot training.** The reference trains B on the whole retain set; ``proxy_fraction`` < 1 trains it on a
  seeded share of it (the paper: "partially exposed to the retain samples"). B is trained with the same loss.
* The reference builds a ``ReduceLROnPlateau`` scheduler but never steps it: omitted (no effect).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from expunge._hparams import hp
from expunge._seeds import derive_seed
from expunge.data.access import DataAccess, UnlearningData
from expunge.data.batches import Batch, Batches
from expunge.errors import ExpungeError
from expunge.methods._shared.optim import GradientParams, optimizer_for
from expunge.methods._shared.teacher_kl import frozen_copy
from expunge.methods.base import RunContext, UnlearningMethod, register_method
from expunge.models.inference import predict_logits
from expunge.tasks.regression import as_targets_shape
from expunge.train.loop import make_optimizer, train_loop

HOOKED = (nn.Linear, nn.Conv1d, nn.Conv2d)


@dataclass(frozen=True, kw_only=True)
class BlindspotParams(GradientParams):
    epochs: int = hp(1, "unlearning passes over D_f ∪ D_r (reference: 1)", low=1, search=(1, 5))
    lr: float = hp(1e-3, "unlearning learning rate (reference: 1e-3)", low=0.0, low_open=True, search=(1e-4, 1e-2),
                   log=True)
    optimizer: Literal["sgd", "adam", "adamw"] = hp("adam", "optimiser", choices=("sgd", "adam", "adamw"))
    weight_decay: float = hp(0.0, "weight decay (the reference's Adam has none)", low=0.0)
    batch_size: int = hp(256, "mini-batch size (reference: 256)", low=1)
    at_beta: float = hp(50.0, "attention-transfer weight β_AT (0 = outputs only)", low=0.0, search=(0.0, 100.0))
    proxy_epochs: int = hp(2, "epochs of the blindspot model on the retain set (reference: 2)", low=1,
                           search=(1, 10))
    proxy_lr: float = hp(1e-2, "Adam learning rate of the blindspot model (reference: 0.01)", low=0.0, low_open=True,
                         search=(1e-3, 1e-1), log=True)
    proxy_fraction: float = hp(1.0, "share of D_r the blindspot model trains on (reference: all of it)", low=0.0,
                               high=1.0, low_open=True, search=(0.1, 1.0))
    loss: Literal["l1", "mse"] = hp("l1", "regression loss of L_r, L_f and the blindspot model (paper: L1)",
                                    choices=("l1", "mse"))
    retain_targets: Literal["labels", "original"] = hp(
        "labels", "L_r targets: the true targets (reference) or the Original's outputs", choices=("labels", "original"))


def attention(a: torch.Tensor) -> torch.Tensor:
    """Attention map of an activation, one unit-norm row per example.

    (n, c, ...) → L2-normalise(flatten(mean_c A²)) (reference); (n, units) → L2-normalise(A²) (ours, see module doc).
    """
    sq = a.pow(2)
    rows = sq.mean(1).reshape(len(a), -1) if a.ndim > 2 else sq.reshape(len(a), -1)
    return F.normalize(rows, dim=1)


def attention_diff(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """mean((attention(a) − attention(b))²) over examples and positions (reference ``attention_diff``)."""
    return (attention(a) - attention(b)).pow(2).mean()


def hooked_layers(model: nn.Module) -> list[nn.Module]:
    """The layers whose outputs attention transfer compares: every Linear/Conv module but the last registered."""
    layers = [m for m in model.modules() if isinstance(m, HOOKED)]
    return layers[:-1]


@contextlib.contextmanager
def capture(model: nn.Module) -> Iterator[list[torch.Tensor]]:
    """Record the outputs of :func:`hooked_layers` on every forward inside the block (hooks removed after)."""
    out: list[torch.Tensor] = []
    handles = [m.register_forward_hook(lambda _m, _i, o: out.append(o)) for m in hooked_layers(model)]
    try:
        yield out
    finally:
        for h in handles:
            h.remove()


def regression_loss(kind: str, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    pred = as_targets_shape(pred, target)
    return F.l1_loss(pred, target) if kind == "l1" else F.mse_loss(pred, target)


def blindspot_loss(model: nn.Module, proxy: nn.Module, x: torch.Tensor, y: torch.Tensor, is_forget: torch.Tensor, *,
                   kind: str, at_beta: float) -> torch.Tensor:
    """c·L_f + (1 − c)·L_r on one mixed batch (``y``: the L_r targets; ``proxy`` frozen, eval mode)."""
    forget = is_forget.bool()
    with capture(model) as acts:
        out = model(x)
    c = forget.float().mean()
    loss = out.new_zeros(())
    if (~forget).any():
        loss = loss + (1 - c) * regression_loss(kind, out[~forget], y[~forget])
    if forget.any():
        xf = x[forget]
        with torch.no_grad(), capture(proxy) as proxy_acts:
            proxy_out = proxy(xf)
        l_f = regression_loss(kind, out[forget], proxy_out.reshape(out[forget].shape))
        if at_beta > 0:
            l_f = l_f + at_beta * sum((attention_diff(a[forget], b) for a, b in zip(acts, proxy_acts, strict=True)),
                                      out.new_zeros(()))
        loss = loss + c * l_f
    return loss


def train_blindspot(spec_model: nn.Module, x: torch.Tensor, y: torch.Tensor, p: BlindspotParams, seed: int) \
        -> nn.Module:
    """B: the fresh model trained ``proxy_epochs`` on (x, y) with Adam at ``proxy_lr``, returned frozen."""
    batches = Batches(x, y, batch_size=p.batch_size, shuffle=True, seed=seed)
    opt = make_optimizer(spec_model.parameters(), "adam", lr=p.proxy_lr)

    def loss(m: nn.Module, batch: Batch) -> torch.Tensor:
        return regression_loss(p.loss, m(batch[0]), batch[1])

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        train_loop(spec_model, batches, loss, opt, epochs=p.proxy_epochs)
    return frozen_copy(spec_model)


@register_method
class BlindspotRegression(UnlearningMethod[BlindspotParams]):
    """Forget toward a blindspot model trained briefly on D_r (L1 + attention transfer), keep D_r's fit (L1)."""

    name = "blindspot_regression"
    paper = "Tarun et al., Deep Regression Unlearning, ICML 2023, arXiv 2210.08196"
    reference = "ayu987/deep-regression-unlearning unlearn.py:forget_loss, fit_one_forget_cycle"
    access = DataAccess.FORGET | DataAccess.RETAIN
    Params = BlindspotParams
    tasks = frozenset({"regression"})

    def unlearn(self, model: nn.Module, data: UnlearningData, ctx: RunContext) -> nn.Module:
        p = self.params
        if ctx.model_spec is None:
            raise ExpungeError("blindspot_regression needs the original's model spec (RunContext.model_spec) to build "
                               "the blindspot model")
        xr, yr = data.retain_tensors()
        xf, yf = data.forget_tensors()
        seed = derive_seed(ctx.seed, "blindspot-proxy")
        if p.proxy_fraction < 1.0:
            rng = np.random.default_rng(seed)
            keep = np.sort(rng.choice(len(xr), size=max(1, round(p.proxy_fraction * len(xr))), replace=False))
            px, py = xr[keep], yr[keep]
        else:
            px, py = xr, yr
        proxy = train_blindspot(ctx.model_spec.build(seed=seed), px, py, p, seed)
        if p.retain_targets == "original":
            yr = predict_logits(frozen_copy(model), xr).reshape(yr.shape).to(yr.dtype)
        x, y = torch.cat([xf, xr]), torch.cat([yf, yr])  # forget targets unused: L_f reads the blindspot model
        flags = torch.cat([torch.ones(len(xf), dtype=torch.bool), torch.zeros(len(xr), dtype=torch.bool)])
        union = Batches(x, y, flags, batch_size=p.batch_size, shuffle=True, seed=derive_seed(ctx.seed, "blindspot"))

        def loss(m: nn.Module, batch: Batch) -> torch.Tensor:
            return blindspot_loss(m, proxy, batch[0], batch[1], batch[2], kind=p.loss, at_beta=p.at_beta)

        log = train_loop(model, union, loss, optimizer_for(model, p), epochs=p.epochs, clip_grad_norm=p.clip_grad_norm,
                         progress="blindspot_regression" if ctx.progress else None)
        ctx.notes.update(steps=log.steps, n_forget=len(xf), n_retain=len(xr), n_proxy=len(px),
                         hooked_layers=len(hooked_layers(model)), skipped_nonfinite=log.skipped_nonfinite)
        return model
