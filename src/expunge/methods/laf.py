"""Label-Agnostic Forgetting (LAF): supervision-free unlearning with two VAEs and a contrastive alignment.

Paper: Shen, Zhang, Zhao, Bialkowski, Chen, Xu, "Label-Agnostic Forgetting: A Supervision-Free Unlearning in Deep
Models", ICLR 2024, arXiv 2404.00506. Reference: ShaofeiShen768/LAF ``VUnlearning.py:extractor_unlearning``
(``extractor_loss_functionnmse``, ``extractor_loss_functioncosine``), ``Train.py:vae_train`` / ``vae_loss_function``,
``Model.py`` (VAE sizes), ``LAF.ipynb`` (pipeline) and ``hyperparameter.md`` (defaults).

No label is ever read (the data API serves (x, y); y is dropped), so permuting the labels of D_f and D_r gives a
bit-identical model (tested). Access: FORGET | RETAIN (x only). With h the original model's representation map
(frozen teacher) and h_θ the one being unlearned:

1. VAE stage: fit two small VAEs on teacher representations — the "remaining" VAE on the training set D = D_f ∪ D_r
   (the paper's Eq. 4 approximation and the notebook's ``loaders['train']``; ``s_vae_data="retain"`` uses D_r only)
   and the "unlearn" VAE on D_f. Loss: Σ‖x̂ − e‖² / B + w_KL · KL(q(z|e) ‖ N(0, I)) / B, w_KL = 0.025; Adam.
2. Extractor unlearning (per paired batch): with m(e, V) = ‖V(e) − e‖² per example,
       L_UE = Σ_{retain} exp(m/(m+1)) − Σ_{forget} exp(m/(m+1))
   (remaining VAE for retain, unlearn VAE for forget): retain representations stay in the distribution the remaining
   VAE models, forget representations leave the one the unlearn VAE models. Adam, lr_ue.
3. Representation alignment (same batches, right after): with c = 1 − cos(h_θ(x), h(x)),
       L_RA = Σ_{i∈retain} log( exp(c_i) / Σ_{j∈forget} exp(c_j / τ) )
   keeps retain representations aligned with the original's and pushes forget representations away. Adam, lr_ra.
Steps 2 and 3 alternate batch by batch, each with its own Adam (as the reference), for ``epochs`` passes; an epoch is
min(#forget batches, #retain batches) pairs, each pass reshuffling both sets (the reference zips two shuffled loaders).

Choices the paper leaves open (or the reference fixes per dataset):

* Representation = the input of the model's last ``nn.Linear`` (its classifier head), captured by a forward
  pre-hook, so any classifier works; ``feature_layer`` names another module. Everything before it is unlearned; the
  head gets no gradient. (Reference: the ``embedding`` its models return, the input of ``fc2``.)
* VAE: MLP encoder dim → 128 → 32 → (μ, log σ²), decoder 8 → 32 → 128 → dim (the reference's sizes, latent 8 as for
  its MNIST CNN). Decoder output is linear: the reference's sigmoid cannot reconstruct representations outside (0, 1)
  (its own representations are unbounded pre-activations).
* During steps 2–3 the frozen VAEs decode the posterior mean (deterministic); they sample z only while training. The
  reference samples in both.
* The model runs in eval mode throughout (``train_mode=False``): the reference leaves it in eval after its VAE stage.
* The semi-supervised head fine-tuning (``classifier_unlearning``, CE on labelled retain data) is not part of
  label-free LAF and is not implemented.
* Randomness (VAE init, reparameterisation noise, shuffling) comes from ``ctx.seed`` / ``ctx.generator``.

Defaults (``hyperparameter.md``, class unlearning, CNN on MNIST / Fashion-MNIST): 20 epochs, lr_ue 5e-5, lr_ra 1e-4,
τ = 20, latent 8; ``Train.py``: VAE 10 epochs, Adam 1e-3, w_KL 0.025; ``Data.py``: batch 32. (ResNet on CIFAR-10 /
SVHN: 40 epochs, lr_ue 1e-5, lr_ra 5e-5, latent 16; random-data unlearning on the CNN: τ = 5.)

Budget note: an epoch is #forget batches long, so the number of steps scales with the forget set (MNIST class: ~190
pairs per epoch; digits class: 5). On digits / mlp, class 3 the defaults (200 steps) leave forget accuracy at 0.99;
τ = 5, lr_ra = 1e-3 gives forget 0.05 / retain 0.95. The extractor-unlearning term exp(m/(m+1)) saturates when the
squared reconstruction error m ≫ 1 (raw m ≈ 17–35 there), so at small learning rates the alignment step does most
of the work; a large lr_ue (1e-3) alone inflates the forget representations and collapses predictions to the forget
class. Tune τ, lr_ra and epochs per model (``expunge tune``).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from expunge._hparams import Hyperparams, hp
from expunge.data.access import DataAccess, UnlearningData
from expunge.data.batches import Batch, Batches
from expunge.methods._shared.teacher_kl import frozen_copy
from expunge.methods.base import RunContext, UnlearningMethod, register_method
from expunge.train.loop import make_optimizer, train_loop


@dataclass(frozen=True, kw_only=True)
class LAFParams(Hyperparams):
    epochs: int = hp(20, "passes of alternating extractor-unlearning / alignment steps", low=1, search=(1, 40))
    lr_ue: float = hp(5e-5, "Adam lr of the extractor-unlearning step", low=0.0, low_open=True, search=(1e-6, 1e-3),
                      log=True)
    lr_ra: float = hp(1e-4, "Adam lr of the representation-alignment step", low=0.0, low_open=True,
                      search=(1e-6, 1e-3), log=True)
    temperature: float = hp(20.0, "contrastive temperature tau on the forget term", low=0.0, low_open=True,
                            search=(1.0, 50.0), log=True)
    batch_size: int = hp(32, "batch size (forget and retain batches; VAE training)", low=1)
    latent_dims: int = hp(8, "VAE latent dimension", low=1)
    vae_hidden: tuple[int, ...] = hp((128, 32), "VAE encoder hidden widths (decoder mirrors them)", low=1)
    vae_epochs: int = hp(10, "VAE training epochs", low=1)
    vae_lr: float = hp(1e-3, "VAE Adam learning rate", low=0.0, low_open=True)
    kld_weight: float = hp(0.025, "weight of the VAE's KL term", low=0.0)
    s_vae_data: Literal["train", "retain"] = hp("train", "data of the remaining VAE: D (paper) or D_r",
                                                choices=("train", "retain"))
    feature_layer: str = hp("", "module whose input is the representation ('' = the last nn.Linear)")
    train_mode: bool = hp(False, "train mode during unlearning (reference: eval)")

    def validate(self) -> None:
        if not self.vae_hidden or min(self.vae_hidden) < 1:
            self._fail("vae_hidden", self.vae_hidden, "a non-empty tuple of positive widths")


class RepresentationVAE(nn.Module):
    """Small MLP VAE over representation vectors; linear decoder output."""

    def __init__(self, dim: int, hidden: tuple[int, ...], latent: int) -> None:
        super().__init__()
        widths = [dim, *hidden]
        enc: list[nn.Module] = []
        for a, b in itertools.pairwise(widths):
            enc += [nn.Linear(a, b), nn.ReLU()]
        self.encoder = nn.Sequential(*enc)
        self.mu, self.logvar = nn.Linear(widths[-1], latent), nn.Linear(widths[-1], latent)
        back = [latent, *reversed(hidden)]
        dec: list[nn.Module] = []
        for a, b in itertools.pairwise(back):
            dec += [nn.Linear(a, b), nn.ReLU()]
        self.decoder = nn.Sequential(*dec, nn.Linear(back[-1], dim))

    def forward(self, e: torch.Tensor, generator: torch.Generator | None = None) \
            -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Reconstruction, μ, log σ². Samples z with ``generator``; decodes μ when it is None."""
        h = self.encoder(e)
        mu, logvar = self.mu(h), self.logvar(h)
        z = mu
        if generator is not None:
            z = mu + torch.exp(0.5 * logvar) * torch.randn(mu.shape, generator=generator, dtype=mu.dtype)
        return self.decoder(z), mu, logvar


def vae_loss(vae: RepresentationVAE, e: torch.Tensor, *, kld_weight: float, generator: torch.Generator) \
        -> torch.Tensor:
    recon, mu, logvar = vae(e, generator)
    sse = (recon - e).pow(2).sum() / len(e)
    kld = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum() / len(e)
    return sse + kld_weight * kld


def reconstruction_term(vae: RepresentationVAE, e: torch.Tensor) -> torch.Tensor:
    """Σ_i exp(m_i / (m_i + 1)), m_i = ‖V(e_i) − e_i‖² (bounded per example: the term lies in [1, e) each)."""
    m = (vae(e)[0] - e).pow(2).sum(dim=1)
    return torch.exp(m / (m + 1)).sum()


def alignment_loss(e_r: torch.Tensor, t_r: torch.Tensor, e_f: torch.Tensor, t_f: torch.Tensor, tau: float) \
        -> torch.Tensor:
    """Σ_i log(exp(c_i) / Σ_j exp(c_j/τ)) with c = 1 − cos(current, original): retain i, forget j."""
    c_r = 1 - F.cosine_similarity(e_r, t_r, dim=1)
    c_f = 1 - F.cosine_similarity(e_f, t_f, dim=1)
    return (c_r - torch.logsumexp(c_f / tau, dim=0)).sum()


class Representation:
    """h(x): the input of ``layer`` (default: the model's last nn.Linear), flattened per example."""

    def __init__(self, model: nn.Module, layer: str = "") -> None:
        modules = dict(model.named_modules())
        if not layer:
            linears = [n for n, m in modules.items() if isinstance(m, nn.Linear)]
            if not linears:
                raise ValueError("LAF needs an nn.Linear head (or feature_layer=) to read representations from")
            layer = linears[-1]
        self.model, self.module, self.layer = model, modules[layer], layer

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        seen: list[torch.Tensor] = []
        handle = self.module.register_forward_pre_hook(lambda _m, inputs: seen.append(inputs[0]))
        try:
            self.model(x)
        finally:
            handle.remove()
        return seen[-1].flatten(1)


class _PhaseOptimizer:
    """Two optimisers over the same parameters behind one facade; ``phase`` selects which one the loop uses."""

    def __init__(self, **optimizers: torch.optim.Optimizer) -> None:
        self.optimizers, self.phase = optimizers, next(iter(optimizers))

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.optimizers[self.phase].zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        self.optimizers[self.phase].step()


class _Alternating:
    """Each epoch: zip(forget, retain) batch pairs (both reshuffled), each yielded twice: "ue" then "ra" step."""

    def __init__(self, forget: Batches, retain: Batches) -> None:
        self.forget, self.retain = forget, retain

    def __len__(self) -> int:
        return 2 * min(len(self.forget), len(self.retain))

    def __iter__(self):  # type: ignore[no-untyped-def]
        for (xf, *_), (xr, *_) in zip(self.forget, self.retain, strict=False):  # labels dropped here
            yield xf, xr, "ue"
            yield xf, xr, "ra"


@register_method
class LAF(UnlearningMethod[LAFParams]):
    """Label-free: VAEs of the representation distributions + contrastive alignment to the original model."""

    name = "laf"
    paper = ("Shen, Zhang, Zhao, Bialkowski, Chen, Xu, Label-Agnostic Forgetting: A Supervision-Free Unlearning in "
             "Deep Models, ICLR 2024, arXiv 2404.00506")
    reference = "ShaofeiShen768/LAF VUnlearning.py:extractor_unlearning, Train.py:vae_train"
    access = DataAccess.FORGET | DataAccess.RETAIN
    Params = LAFParams

    def unlearn(self, model: nn.Module, data: UnlearningData, ctx: RunContext) -> nn.Module:
        p = self.params
        teacher_net = frozen_copy(model)
        teacher = Representation(teacher_net, p.feature_layer)
        student = Representation(model, teacher.layer)
        forget_x, retain_x = data.forget_tensors()[0], data.retain_tensors()[0]  # labels never read
        with torch.no_grad():
            e_f, e_r = _embed(teacher, forget_x, p.batch_size), _embed(teacher, retain_x, p.batch_size)
        e_s = torch.cat([e_f, e_r]) if p.s_vae_data == "train" else e_r
        s_vae = self._fit_vae(e_s, ctx, salt=1)
        u_vae = self._fit_vae(e_f, ctx, salt=2)

        def loss(_m: nn.Module, batch: Batch) -> torch.Tensor:
            xf, xr, phase = batch
            opt.phase = phase  # type: ignore[assignment]
            if phase == "ue":
                return reconstruction_term(s_vae, student(xr)) - reconstruction_term(u_vae, student(xf))
            with torch.no_grad():
                t_r, t_f = teacher(xr), teacher(xf)
            return alignment_loss(student(xr), t_r, student(xf), t_f, p.temperature)

        opt = _PhaseOptimizer(ue=make_optimizer(model.parameters(), "adam", lr=p.lr_ue),
                              ra=make_optimizer(model.parameters(), "adam", lr=p.lr_ra))
        batches = _Alternating(data.forget_loader(p.batch_size, seed=ctx.seed + 11),
                               data.retain_loader(p.batch_size, seed=ctx.seed + 12))
        log = train_loop(model, batches, loss, opt, epochs=p.epochs, train_mode=p.train_mode,  # type: ignore[arg-type]
                         progress="laf" if ctx.progress else None)
        ctx.notes.update(steps=log.steps, skipped_nonfinite=log.skipped_nonfinite, representation=teacher.layer,
                         representation_dim=int(e_f.shape[1]))
        return model

    def _fit_vae(self, embeddings: torch.Tensor, ctx: RunContext, *, salt: int) -> RepresentationVAE:
        p = self.params
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(ctx.seed * 1_000_003 + salt)  # the VAE's initial weights
            vae = RepresentationVAE(embeddings.shape[1], p.vae_hidden, p.latent_dims)
        gen = ctx.generator(0x1AF0 + salt)
        train_loop(vae, Batches(embeddings, batch_size=p.batch_size, seed=ctx.seed + salt),
                   lambda v, b: vae_loss(v, b[0], kld_weight=p.kld_weight, generator=gen),  # type: ignore[arg-type]
                   make_optimizer(vae.parameters(), "adam", lr=p.vae_lr), epochs=p.vae_epochs)
        vae.eval().requires_grad_(False)
        return vae


def _embed(rep: Representation, x: torch.Tensor, batch_size: int) -> torch.Tensor:
    return torch.cat([rep(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])
