"""Fine-tune on the retain set ("catastrophic forgetting" baseline).

The loss is the task's training loss (:meth:`expunge.tasks.Task.batch_loss`): cross-entropy for classification
(``F.cross_entropy``, as before tasks existed), mean squared error for regression — fine-tuning on the retain set is
the same baseline in the regression setting (Tarun et al., "Deep Regression Unlearning", ICML 2023).

Paper: Warnecke et al. / Golatkar et al., "Eternal Sunshine of the Spotless Net", CVPR 2020 (FT baseline);
defaults from Jia et al., "Model Sparsity Can Simplify Machine Unlearning", NeurIPS 2023 (arXiv 2304.04934) README for
CIFAR-10/ResNet-18: 10 epochs, SGD lr 0.01, momentum 0.9, weight decay 5e-4, batch 256.
Reference: OPTML-Group/Unlearn-Saliency ``Classification/unlearn/FT.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from expunge.data.access import DataAccess, UnlearningData
from expunge.methods._shared.optim import GradientParams, optimizer_for
from expunge.methods.base import RunContext, UnlearningMethod, register_method
from expunge.train.loop import train_loop


@dataclass(frozen=True, kw_only=True)
class FinetuneParams(GradientParams):
    pass


@register_method
class Finetune(UnlearningMethod[FinetuneParams]):
    """Minimise the task's loss (cross-entropy, MSE) on the retain set for a few epochs, starting from the original."""

    name = "finetune"
    paper = "Golatkar et al., CVPR 2020 (FT baseline); defaults of Jia et al., NeurIPS 2023, arXiv 2304.04934"
    reference = "OPTML-Group/Unlearn-Saliency Classification/unlearn/FT.py"
    access = DataAccess.RETAIN
    Params = FinetuneParams
    tasks = frozenset({"classification", "regression", "recsys", "graph", "llm"})

    def unlearn(self, model: nn.Module, data: UnlearningData, ctx: RunContext) -> nn.Module:
        p = self.params
        log = train_loop(model, data.retain_loader(p.batch_size), data.task.batch_loss, optimizer_for(model, p),
                         epochs=p.epochs, clip_grad_norm=p.clip_grad_norm,
                         progress="finetune" if ctx.progress else None)
        ctx.notes.update(steps=log.steps, epoch_losses=log.epoch_losses)
        return model
