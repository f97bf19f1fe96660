"""RMU (Representation Misdirection for Unlearning): steer forget activations at one layer to a random direction.

(1) u ~ U(0, 1)^d, u ← u/‖u‖, drawn once per request from the run's seed; the target is c·u. (2) With h^ℓ the
residual-stream output of block ℓ (0-based; a forward hook on the block, as the reference's ``forward_with_cache``):

    L_f = mean over tokens ‖h_θ^ℓ(x_f) − c·u‖²/d,   L_r = mean over tokens ‖h_θ^ℓ(x_r) − h_ref^ℓ(x_r)‖²/d,
    L = L_f + α·L_r,

π_ref the frozen original. (3) Only the MLP output projections (``down_proj``; GPT-2's ``mlp.c_proj``) weights of
blocks ℓ−2, ℓ−1, ℓ are updated (``window`` = 3): every other parameter stays bit-identical (tested). One epoch is one
pass over D_f, each forget batch paired with a retain batch (the reference draws the same number of each).
Choice (spec pitfall): the reference's ``mse_loss`` averages over every position including padding; here the mean is
over non-padding tokens (prompt and answer: RMU perturbs the text's representation, not only its answer;
``positions="answer"`` is OpenUnlearning's mask, labels ≠ −100).

Paper: Li et al., "The WMDP Benchmark: Measuring and Reducing Malicious Use with Unlearning", ICML 2024,
arXiv 2403.03218. Reference: centerforaisafety/wmdp ``rmu/unlearn.py`` (zephyr-7b run: ℓ = 7, c = 6.5, α = 1200,
AdamW lr 5e-5, batch 4, 150 batches; argparse defaults c = 20, α = 100) and locuslab/open-unlearning
``src/trainer/unlearn/rmu.py`` (whose config — c = 2, α = 1, all parameters trainable — is not the paper's).
Small-model defaults (spec: c and ℓ must be re-tuned): ℓ at the paper's relative depth, round(7n/32) of n blocks
(block 1 of gpt_tiny's 4, block 0 of a one-block model), c and α re-tuned on the facts benchmark, lr re-scaled —
see the field help.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from expunge._hparams import hp
from expunge.data.access import DataAccess, UnlearningData
from expunge.data.batches import Batch
from expunge.errors import IncompatibleModel, InvalidHyperparameter
from expunge.methods._shared.lm import ForgetRetainBatches, LMParams, reference_copy
from expunge.methods._shared.optim import optimizer_for
from expunge.methods.base import RunContext, UnlearningMethod, register_method
from expunge.tasks.token_logprobs import IGNORE_INDEX, PAD_ID
from expunge.train.loop import train_loop


@dataclass(frozen=True, kw_only=True)
class RMUParams(LMParams):
    layer: int | None = hp(None, "block ℓ (0-based) whose output is steered (paper: 7 of zephyr's 32; none = the "
                                 "same relative depth, round(7n/32) of n blocks)", low=0)
    window: int = hp(3, "update the MLP output weights of blocks ℓ-window+1 .. ℓ (paper: 3)", low=1)
    steering_coeff: float = hp(20.0, "c: norm of the random target activation (paper: 6.5 on zephyr; WMDP's "
                                     "argparse default 20, about twice gpt_tiny's residual norm on facts)",
                               low=0.0, low_open=True, search=(2.0, 100.0), log=True)
    alpha: float = hp(1.0, "weight α of the retain activation loss (paper: 1200 on zephyr, argparse 100; "
                           "OpenUnlearning 1; on facts α = 10 or more left the forget answers untouched)",
                      low=0.0, search=(1.0, 2000.0), log=True)
    positions: Literal["tokens", "answer"] = hp("tokens", "token positions averaged: all non-padding tokens, or "
                                                          "answer tokens only (OpenUnlearning)",
                                                choices=("tokens", "answer"))
    epochs: int = hp(5, "passes over the forget set (the paper runs 150 batches of 4)", low=1, search=(1, 20))
    batch_size: int = hp(4, "forget (and paired retain) batch size (paper: 4)", low=1)
    lr: float = hp(1e-3, "AdamW learning rate (paper 5e-5 on zephyr-7b; re-scaled for a tiny GPT)", low=0.0,
                   low_open=True, search=(1e-5, 3e-3), log=True)


def transformer_blocks(model: nn.Module) -> nn.ModuleList:
    """The block stack of a (wrapped) Hugging Face causal LM: GPT-2's ``transformer.h`` or Llama's ``model.layers``.

    Raises:
        IncompatibleModel: no known block stack."""
    lm = getattr(model, "lm", model)
    for path in ("transformer.h", "model.layers", "gpt_neox.layers", "model.decoder.layers"):
        with contextlib.suppress(AttributeError):
            blocks = lm.get_submodule(path)
            if isinstance(blocks, nn.ModuleList):
                return blocks
    raise IncompatibleModel(f"rmu needs a transformer causal LM with a block stack (GPT-2 transformer.h, Llama "
                            f"model.layers); {type(lm).__name__} has none. Fix: run rmu on an llm model (gpt_tiny)")


def mlp_out_weight(block: nn.Module) -> nn.Parameter:
    """The MLP output-projection weight of one block (``mlp.down_proj`` in Llama, ``mlp.c_proj`` in GPT-2)."""
    for path in ("mlp.down_proj", "mlp.c_proj", "mlp.dense_4h_to_h", "fc2"):
        with contextlib.suppress(AttributeError):
            return block.get_submodule(path).weight
    raise IncompatibleModel(f"rmu found no MLP output projection in {type(block).__name__}")


def steered_layer(model: nn.Module, layer: int | None) -> int:
    """``layer``, or the paper's relative depth (block 7 of 32) on this model's block count."""
    n = len(transformer_blocks(model))
    return min(n - 1, round(7 * n / 32)) if layer is None else layer


def selected_parameters(model: nn.Module, layer: int, window: int) -> list[nn.Parameter]:
    blocks = transformer_blocks(model)
    if layer >= len(blocks):
        raise InvalidHyperparameter(f"the 'layer' parameter of rmu is {layer} but the model has {len(blocks)} "
                                    f"blocks. Fix: set layer to at most {len(blocks) - 1}")
    return [mlp_out_weight(blocks[i]) for i in range(max(0, layer - window + 1), layer + 1)]


@contextlib.contextmanager
def capture(block: nn.Module) -> Iterator[list[torch.Tensor]]:
    """Record the output hidden states of ``block`` on each forward inside the context."""
    cache: list[torch.Tensor] = []

    def hook(_: nn.Module, __: object, output: object) -> None:
        cache.append(output[0] if isinstance(output, tuple) else output)  # type: ignore[arg-type]

    handle = block.register_forward_hook(hook)
    try:
        yield cache
    finally:
        handle.remove()


def activations(model: nn.Module, block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with capture(block) as cache:
        model(x)
    return cache[0]


def activation_loss(h: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over masked tokens of ‖h − target‖²/d (``target`` broadcast to ``h``)."""
    per_token = (h - target).pow(2).mean(dim=-1)
    mask = mask.to(per_token.dtype)
    return (per_token * mask).sum() / mask.sum().clamp_min(1)


RMU_SALT = 0x524D55  # the run's generator salt for u


def random_direction(dim: int, generator: torch.Generator) -> torch.Tensor:
    """u ~ U(0, 1)^d normalised to unit length (the reference's ``torch.rand`` / ``norm``), from ``generator``."""
    u = torch.rand(dim, generator=generator)
    return u / u.norm()


def token_mask(x: torch.Tensor, y: torch.Tensor, positions: str) -> torch.Tensor:
    return (y != IGNORE_INDEX) if positions == "answer" else (x != PAD_ID)


@register_method
class RMU(UnlearningMethod[RMUParams]):
    """Steer layer-ℓ forget activations to a scaled random vector, keep retain activations; MLP-out weights only."""

    name = "rmu"
    paper = "Li et al., The WMDP Benchmark (RMU), ICML 2024, arXiv 2403.03218"
    reference = "centerforaisafety/wmdp rmu/unlearn.py; locuslab/open-unlearning src/trainer/unlearn/rmu.py"
    access = DataAccess.FORGET | DataAccess.RETAIN
    Params = RMUParams
    tasks = frozenset({"llm"})

    def unlearn(self, model: nn.Module, data: UnlearningData, ctx: RunContext) -> nn.Module:
        p = self.params
        layer = steered_layer(model, p.layer)
        trainable = selected_parameters(model, layer, p.window)
        ref = reference_copy(model)
        block, ref_block = transformer_blocks(model)[layer], transformer_blocks(ref)[layer]
        flags = {id(q): q.requires_grad for q in model.parameters()}
        chosen = {id(q) for q in trainable}
        u: torch.Tensor | None = None
        generator = ctx.generator(salt=RMU_SALT)

        def loss(m: nn.Module, batch: Batch) -> torch.Tensor:
            nonlocal u
            xf, yf, xr, yr = batch
            hf = activations(m, block, xf)
            if u is None:  # drawn once per request, at the first batch (d read from the activations)
                u = random_direction(hf.shape[-1], generator)
            forget = activation_loss(hf, p.steering_coeff * u.to(hf.dtype), token_mask(xf, yf, p.positions))
            if p.alpha == 0:
                return forget
            with torch.no_grad():
                hr_ref = activations(ref, ref_block, xr)
            retain = activation_loss(activations(m, block, xr), hr_ref, token_mask(xr, yr, p.positions))
            return forget + p.alpha * retain

        try:
            for q in model.parameters():
                q.requires_grad_(id(q) in chosen)
            batches = ForgetRetainBatches(data.forget_loader(p.batch_size), data.retain_loader(p.batch_size))
            log = train_loop(model, batches, loss, optimizer_for(model, p), epochs=p.epochs,
                             clip_grad_norm=p.clip_grad_norm, progress=self.name if ctx.progress else None)
        finally:
            for q in model.parameters():
                q.requires_grad_(flags[id(q)])
        ctx.notes.update(steps=log.steps, skipped_nonfinite=log.skipped_nonfinite, stopped=log.stopped,
                         layer=layer, updated=len(trainable))
        return model
