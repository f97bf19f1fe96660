"""Gradient ascent on a causal LM's forget answers (the LLM-unlearning baseline "GA").

Minimise −NLL_f, with NLL_f the Hugging Face mean-token loss of a forget batch (answer tokens only, prompt masked;
:func:`~expunge.tasks.token_logprobs.lm_loss`): the forget-answer likelihood is pushed down without bound, which is
why it collapses the model (NPO's motivation). Guards (``../shared/spec/methods.md`` §6.1 and the conventions): the
gradient norm is clipped (1.0, Hugging Face's default), non-finite steps are skipped (the training loop), and a
collapse guard stops after an epoch once the mean retain ℓ̄ on a seeded subset of ``guard_examples`` retain rows rises
more than ``collapse_margin`` nats above its value before unlearning (set ``collapse_margin=none`` for the paper's fixed
budget; the subset is then never read). OpenUnlearning has no such guard.

Paper: the GA baseline of Maini et al., "TOFU: A Task of Fictitious Unlearning for LLMs", COLM 2024, arXiv 2401.06121
(after Jang et al. 2023, "Knowledge Unlearning"). Reference: locuslab/open-unlearning
``src/trainer/unlearn/grad_ascent.py`` and ``configs/trainer/GradAscent.yaml`` (finetune recipe: AdamW, lr 1e-5,
effective batch 32, 10 epochs). Defaults re-scaled for a tiny GPT trained from scratch: lr 2e-4 (see
:class:`~expunge.methods._shared.lm.LMParams`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from expunge._hparams import hp
from expunge.data.access import DataAccess, UnlearningData
from expunge.data.batches import Batch
from expunge.methods._shared.lm import LMParams, collapse_guard
from expunge.methods._shared.optim import optimizer_for
from expunge.methods.base import RunContext, UnlearningMethod, register_method
from expunge.tasks.token_logprobs import lm_loss
from expunge.train.loop import train_loop


@dataclass(frozen=True, kw_only=True)
class LLMGradAscentParams(LMParams):
    collapse_margin: float | None = hp(1.0, "stop after an epoch once the retain-subset mean NLL rose by more than "
                                            "this many nats (none = never; the paper's fixed budget)",
                                       low=0.0, low_open=True, search=(0.25, 4.0), log=True)
    guard_examples: int = hp(64, "retain rows the collapse guard watches (seeded subset)", low=1)


def ascent_loss(model: nn.Module, batch: Batch) -> torch.Tensor:
    """−NLL_f: the negated token-mean answer loss of a forget batch."""
    return -lm_loss(model(batch[0]), batch[1])


@register_method
class LLMGradAscent(UnlearningMethod[LLMGradAscentParams]):
    """Gradient ascent on forget answers (−NLL, clipped) with a retain-NLL collapse guard."""

    name = "llm_grad_ascent"
    paper = "GA baseline of Maini et al., TOFU, COLM 2024, arXiv 2401.06121"
    reference = "locuslab/open-unlearning src/trainer/unlearn/grad_ascent.py"
    access = DataAccess.FORGET | DataAccess.RETAIN_SUBSET  # the subset only for the collapse guard
    Params = LLMGradAscentParams
    tasks = frozenset({"llm"})

    def unlearn(self, model: nn.Module, data: UnlearningData, ctx: RunContext) -> nn.Module:
        p = self.params
        guard = collapse_guard(model, data, p.collapse_margin, p.guard_examples, ctx.seed)
        log = train_loop(model, data.forget_loader(p.batch_size), ascent_loss,
                         optimizer_for(model, p), epochs=p.epochs, clip_grad_norm=p.clip_grad_norm,
                         on_epoch_end=guard, progress=self.name if ctx.progress else None)
        ctx.notes.update(steps=log.steps, skipped_nonfinite=log.skipped_nonfinite, stopped=log.stopped,
                         collapse_guard=None if guard is None else guard.tripped)
        return model
