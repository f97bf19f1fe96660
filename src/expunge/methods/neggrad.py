"""NegGrad: gradient ascent on the forget set.

θ ← θ − η ∇_θ(−L(f_θ(x_f), y_f)) with L the task's training loss: cross-entropy for classification (``F.cross_entropy``,
as before tasks existed), mean squared error for regression (gradient ascent on the forget error; Tarun et al.,
"Deep Regression Unlearning", ICML 2023, use it as a regression baseline). The objective is unbounded, so the
gradient norm is clipped (default 1.0), non-finite steps are skipped (the trainer's guard), and training can stop
early once forget accuracy falls to ``stop_at_forget_acc`` (off by default: the paper runs a fixed number of epochs).
That option is classification-only — a regression model has no accuracy — and setting it on another task is an
:class:`~expunge.errors.InvalidHyperparameter` raised before anything is trained.

Paper: Golatkar et al., "Eternal Sunshine of the Spotless Net", CVPR 2020 (baseline); "GA" in Jia et al. NeurIPS 2023.
Defaults: Unlearn-Sparse README (5 epochs, lr 1e-4, SGD momentum 0.9, wd 5e-4); maintainers advise 5e-4–1e-3 (SalUn
issue #8) — tune per model (``expunge tune``).
Reference: OPTML-Group/Unlearn-Saliency ``Classification/unlearn/GA.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from expunge._hparams import Hyperparams, hp
from expunge.data.access import DataAccess, UnlearningData
from expunge.data.batches import Batch
from expunge.errors import InvalidHyperparameter, NonFiniteOutputs
from expunge.methods._shared.optim import GradientParams, optimizer_for
from expunge.methods.base import RunContext, UnlearningMethod, register_method
from expunge.models.inference import accuracy
from expunge.train.loop import train_loop


@dataclass(frozen=True, kw_only=True)
class NegGradParams(GradientParams):
    epochs: int = hp(5, "passes over the forget set", low=1, search=(1, 10))
    lr: float = hp(1e-4, "learning rate", low=0.0, low_open=True, search=(1e-5, 1e-2), log=True)
    batch_size: int = hp(256, "mini-batch size", low=1)
    clip_grad_norm: float | None = hp(1.0, "gradient-norm clip (ascent guard)", low=0.0, low_open=True)
    stop_at_forget_acc: float | None = hp(None, "stop after an epoch once forget accuracy <= this (None = never)",
                                          low=0.0, high=1.0)


@register_method
class NegGrad(UnlearningMethod[NegGradParams]):
    """Gradient ascent on the forget-set loss (cross-entropy, MSE; clipped, with a non-finite guard)."""

    name = "neggrad"
    paper = "Golatkar et al., CVPR 2020 (NegGrad baseline); 'GA' of Jia et al., NeurIPS 2023"
    reference = "OPTML-Group/Unlearn-Saliency Classification/unlearn/GA.py"
    access = DataAccess.FORGET
    Params = NegGradParams
    tasks = frozenset({"classification", "regression", "graph", "llm"})

    @classmethod
    def check_task(cls, task: str, params: Hyperparams | None = None) -> None:
        super().check_task(task, params)
        if task != "classification" and getattr(params, "stop_at_forget_acc", None) is not None:
            raise InvalidHyperparameter(
                f"the 'stop_at_forget_acc' parameter of neggrad stops on forget *accuracy*, which a {task} model does "
                "not have. Fix: drop it (neggrad then runs its fixed number of epochs)")

    def unlearn(self, model: nn.Module, data: UnlearningData, ctx: RunContext) -> nn.Module:
        p = self.params
        self.check_task(data.task.name, p)
        loss = data.task.loss

        def ascent(m: nn.Module, batch: Batch) -> torch.Tensor:
            return -loss(m(batch[0]), batch[1])

        stop = None
        if p.stop_at_forget_acc is not None:
            xf, yf = data.forget_tensors()
            target = p.stop_at_forget_acc

            def stop(_: int) -> bool:
                try:
                    return accuracy(model, xf, yf) <= target  # type: ignore[operator]  # the forget set is not empty
                except NonFiniteOutputs:  # outputs overflowed with finite weights: stop; the run reports "diverged"
                    return True

        log = train_loop(model, data.forget_loader(p.batch_size), ascent, optimizer_for(model, p), epochs=p.epochs,
                         clip_grad_norm=p.clip_grad_norm, on_epoch_end=stop,
                         progress="neggrad" if ctx.progress else None)
        ctx.notes.update(steps=log.steps, stopped=log.stopped, skipped_nonfinite=log.skipped_nonfinite)
        return model
