"""UnSTAR-style anti-samples: fine-tune on misleading answers that reverse the learned association.

Seed abstract: "UnSTAR: Unlearning with Self-Taught Anti-Sample Reasoning for Large Language Models" (respAI lab;
``../shared/papers/respailab-unlearning-abstracts.txt``, first entry): unlearning through *anti-samples* — misleading
rationales/answers used as fine-tuning targets, which "reverse learned associations and accelerate the unlearning
process" and allow "fine-grained targeted unlearning" of specific associations. Reference code: none public (read the
abstract only). Spec: issue 26 ("say every choice the abstract leaves open").

Algorithm (self-taught rounds, as STaR's generate–filter–fine-tune loop, inverted):

1. **Fact tokens.** In each forget answer, the tokens that carry the association: answer tokens whose document
   frequency among the retain answers is ≤ ``common_frac`` and that the row's question does not contain (the
   person-specific birthplace, book, award; template words such as "was born in" are shared by most answers, and the
   person's name is repeated from the question: both kept). A row with no such token uses all its answer
   tokens but EOS.
2. **Anti-samples from the model itself.** For every forget row the current model still *remembers* (its
   teacher-forced argmax equals the true token at some fact position), the anti-answer replaces each fact token by
   the model's own top-ranked alternative at that position (the highest-probability token that is not the true one,
   padding, EOS or a fact token of any forget row — else persons forgotten together swap their facts), predicted
   from the true prefix. The question is kept. Nothing else is read: never the dataset's
   paraphrased or perturbed answers (those are the evaluation's inputs), never another person's answer.
3. **Fine-tune** the model on the anti-samples (answer-token cross-entropy, the task's HF mean-token loss) for
   ``steps_per_round`` steps, plus ``retain_weight`` × the retain NLL (a retain batch per step); then regenerate
   anti-samples with the updated model for the rows still remembered (self-taught) and repeat, for at most
   ``epochs`` rounds or until no forget row is remembered.

Choices the abstract leaves open (ours): the anti-answer source (the model's top alternative token — a plausible
wrong fact of the same kind, e.g. another city — rather than an external LLM's generated text); no rationale text
(a tiny model trained from scratch cannot write one; the anti-answer is the whole target); which tokens carry the
association (the document-frequency rule above); the stopping rule ("remembered" = teacher-forced argmax on a fact
token); optimiser Adam, lr 1e-3, 5 rounds × 10 steps, batch 32, grad-norm clip 1.0 (untuned, sized for gpt_tiny;
``expunge tune`` searches lr and the number of rounds, ``epochs``); a retain NLL term with weight 1 by default
(the abstract is silent; without it, ``retain_weight=0``, anti-samples alone wrecked the retained people's answers
of a 2-block gpt_tiny on facts-tiny — ``benchmarks/results/llm_guards_audits.md`` — and lose some on the tests'
toy). Data: the forget rows and the retain rows (the retain answers define the template words, and the retain term).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from expunge._hparams import hp
from expunge.data.access import DataAccess, UnlearningData
from expunge.data.batches import Batch, Batches
from expunge.methods._shared.optim import GradientParams, optimizer_for
from expunge.methods._shared.prompt_guard import forget_specific_tokens
from expunge.methods.base import RunContext, UnlearningMethod, register_method
from expunge.models.inference import eval_mode
from expunge.tasks.token_logprobs import EOS_ID, IGNORE_INDEX, PAD_ID, lm_loss
from expunge.train.loop import train_loop


@dataclass(frozen=True, kw_only=True)
class UnstarParams(GradientParams):
    epochs: int = hp(5, "self-taught rounds: regenerate anti-samples, then fine-tune", low=1, search=(1, 10))
    steps_per_round: int = hp(10, "fine-tuning steps per round", low=1, search=(1, 50))
    lr: float = hp(1e-3, "learning rate", low=0.0, low_open=True, search=(1e-5, 1e-2), log=True)
    optimizer: Literal["sgd", "adam", "adamw"] = hp("adam", "optimiser", choices=("sgd", "adam", "adamw"))
    weight_decay: float = hp(0.0, "weight decay", low=0.0)
    batch_size: int = hp(32, "mini-batch size", low=1)
    clip_grad_norm: float | None = hp(1.0, "gradient-norm clip", low=0.0, low_open=True)
    common_frac: float = hp(0.05, "a forget answer token is a fact token when at most this share of retain "
                                  "answers has it", low=0.0, high=1.0)
    retain_weight: float = hp(1.0, "weight of the retain NLL added to every step (0 = anti-samples only)", low=0.0)


def fact_positions(forget_ids: torch.Tensor, forget_labels: torch.Tensor, retain_labels: torch.Tensor,
                   common_frac: float) -> tuple[torch.Tensor, int]:
    """``[N, L]`` bool: the fact tokens of each forget row (the rule of the module docstring), and the number of rows
    without a specific token (all their answer tokens but EOS are used)."""
    specific = forget_specific_tokens(forget_ids, forget_labels, retain_labels, common_frac)
    answer = (forget_labels != IGNORE_INDEX) & (forget_labels != EOS_ID) & (forget_labels != PAD_ID)
    out = torch.zeros_like(answer)
    for i, toks in enumerate(specific):
        out[i] = answer[i] & torch.isin(forget_labels[i], torch.tensor(toks, dtype=torch.long)) if toks else answer[i]
    return out, sum(not toks for toks in specific)


@torch.no_grad()
def anti_samples(model: nn.Module, x: torch.Tensor, y: torch.Tensor, facts: torch.Tensor) \
        -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(anti input_ids, anti labels, remembered [N]): each fact token replaced by the model's top alternative."""
    with eval_mode(model):
        logits = model(x).float()
    pred = torch.zeros_like(x)
    pred[:, 1:] = logits[:, :-1].argmax(-1)  # the token predicted at each position from its true prefix
    remembered = (facts & (pred == x)).any(dim=1)
    ranked = logits[:, :-1].clone()
    ranked.scatter_(-1, x[:, 1:].unsqueeze(-1), float("-inf"))  # not the true token
    ranked[..., [PAD_ID, EOS_ID]] = float("-inf")
    ranked[..., x[facts].unique()] = float("-inf")  # nor any forget fact (it would teach another forgotten one)
    alt = torch.zeros_like(x)
    alt[:, 1:] = ranked.argmax(-1)
    anti_x = torch.where(facts, alt, x)
    anti_y = torch.where(y != IGNORE_INDEX, anti_x, y)
    return anti_x, anti_y, remembered


@register_method
class Unstar(UnlearningMethod[UnstarParams]):
    """UnSTAR-style anti-samples: fine-tune on the model's own most likely wrong answers to the forget questions
    (fact tokens replaced), regenerated for the still-remembered rows each round."""

    name = "unstar"
    paper = ("UnSTAR: Unlearning with Self-Taught Anti-Sample Reasoning for Large Language Models (respAI lab, "
             "abstract)")
    reference = "- (no public code; abstract only)"
    access = DataAccess.FORGET | DataAccess.RETAIN
    Params = UnstarParams
    tasks = frozenset({"llm"})

    def unlearn(self, model: nn.Module, data: UnlearningData, ctx: RunContext) -> nn.Module:
        p = self.params
        self.check_task(data.task.name, p)
        fx, fy = data.forget_tensors()
        fx, fy = fx.long(), fy.long()
        rx, ry = data.retain_tensors()
        facts, fallback = fact_positions(fx, fy, ry.long(), p.common_frac)
        retain_iter = self._retain_batches(rx.long(), ry.long(), p, ctx) if p.retain_weight > 0 else None

        def loss(m: nn.Module, batch: Batch) -> torch.Tensor:
            out = lm_loss(m(batch[0]), batch[1])
            if retain_iter is not None:
                xr, yr = next(retain_iter)
                out = out + p.retain_weight * lm_loss(m(xr), yr)
            return out

        opt = optimizer_for(model, p)
        steps, history = 0, []
        for r in range(p.epochs):
            ax, ay, remembered = anti_samples(model, fx, fy, facts)
            history.append(int(remembered.sum()))
            if not remembered.any():
                break
            batches = Batches(ax[remembered], ay[remembered], batch_size=p.batch_size, shuffle=True,
                              seed=ctx.seed * 1000 + r, role="forget")
            log = train_loop(model, batches, loss, opt, epochs=-(-p.steps_per_round // len(batches)),
                             max_steps=p.steps_per_round, clip_grad_norm=p.clip_grad_norm)
            steps += log.steps
        else:
            history.append(int(anti_samples(model, fx, fy, facts)[2].sum()))
        ctx.notes.update(steps=steps, remembered_per_round=history, fact_tokens=int(facts.sum()),
                         rows_without_specific_tokens=fallback)
        return model

    @staticmethod
    def _retain_batches(rx: torch.Tensor, ry: torch.Tensor, p: UnstarParams, ctx: RunContext) \
            -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        batches = Batches(rx, ry, batch_size=p.batch_size, shuffle=True, seed=ctx.seed, role="retain")
        while True:
            yield from ((b[0], b[1]) for b in batches)
