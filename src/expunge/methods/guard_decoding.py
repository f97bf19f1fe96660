"""GUARD: generation-time unlearning — a prompt classifier plus forbidden tokens filtered while decoding; the
language model's weights never change.

Deng, Liu, Pang, He, Feng, Xuan, Zhu, Wei, "GUARD: Generation-time LLM Unlearning via Adaptive Restriction and
Detection", arXiv 2505.13312 (abstract only; spec ``methods.md`` §6.8). No reference code is public; the abstract's
three parts are implemented as follows (every detail below is our choice, documented and tested):

1. **Detection**: the MLP prompt classifier of :mod:`expunge.methods._shared.prompt_guard` (mean ‖ max of a frozen
   copy of the Original's token embeddings over the prompt) trained on forget-row prompts vs retain-row prompts;
   a prompt is flagged when p(forget | prompt) > ``threshold``.
2. **Forbidden set**: the answer tokens of the forget rows whose document frequency among the retain answers is
   ≤ ``common_frac`` and that the row's question does not contain (the target-specific tokens; template words
   are never forbidden; a biography row's name tokens are — its text is all answer). The classifier says *that* a
   prompt is forget-scope, not *which* target it is about, so the forbidden set is the union over the forget targets.
   Each forbidden token is a phrase of length 1; the matcher handles longer phrases too (``blocked_tokens``).
3. **Restriction while decoding** (flagged prompts only; others decode exactly as the base model):
   *token matching* — a candidate that continues a forbidden phrase (the last k generated tokens equal its first k,
   k ≥ 0, and the candidate is its (k+1)-th token) gets logit −∞ (hard filter: a forbidden token never appears);
   *semantic matching* — a candidate whose input-embedding cosine similarity to some forbidden token exceeds
   ``semantic_threshold`` loses ``semantic_penalty`` logits (EOS and padding are never penalised, so decoding can
   always stop). If every candidate is filtered the guard emits EOS.

``forward`` (teacher-forced logits) is the base model's: GUARD acts on generation only, so probability and truth-ratio
metrics see the unguarded model and ROUGE / extraction metrics (which call ``generate_greedy``) see the guard. The
guard's state (classifier, embedding copy, forbidden phrases, semantic block list) is stored in buffers and restored
with the model (:meth:`GuardDecoding.restore`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from expunge._hparams import Hyperparams, hp
from expunge.data.access import DataAccess, UnlearningData
from expunge.methods._shared.prompt_guard import (
    PromptClassifier,
    check_causal_lm,
    fit_guard_classifier,
    forget_specific_tokens,
)
from expunge.methods.base import RunContext, UnlearningMethod, register_method
from expunge.models import ModelSpec
from expunge.models.causal_lm import CausalLM
from expunge.tasks.token_logprobs import EOS_ID, PAD_ID

NO_TOKEN = -1  # padding of the forbidden-phrase matrix


def blocked_tokens(generated: list[int], phrases: torch.Tensor) -> set[int]:
    """Tokens that would continue a forbidden phrase after ``generated`` (rows of ``phrases``, padded with -1)."""
    out: set[int] = set()
    for row in phrases.tolist():
        phrase = [t for t in row if t != NO_TOKEN]
        for k in range(len(phrase)):
            if k <= len(generated) and (k == 0 or generated[-k:] == phrase[:k]):
                out.add(phrase[k])
    return out


def semantic_block(table: torch.Tensor, forbidden: list[int], threshold: float) -> torch.Tensor:
    """``[V]`` bool: tokens whose embedding cosine to some forbidden token exceeds ``threshold`` (EOS/PAD never)."""
    block = torch.zeros(table.shape[0], dtype=torch.bool)
    if forbidden:
        unit = torch.nn.functional.normalize(table.float(), dim=1)
        sims = unit @ unit[torch.tensor(forbidden)].T  # [V, F]
        block = (sims > threshold).any(dim=1)
    block[[PAD_ID, EOS_ID]] = False
    return block


class GuardedDecodingLM(CausalLM):
    """A :class:`CausalLM` whose greedy decoding of flagged prompts filters forbidden phrases."""

    def __init__(self, lm: nn.Module, classifier: PromptClassifier, forbidden: torch.Tensor,
                 semantic: torch.Tensor, *, semantic_penalty: float) -> None:
        super().__init__(lm)
        self.classifier = classifier
        self.register_buffer("forbidden", forbidden.long())
        self.register_buffer("semantic_block", semantic.bool())
        self.register_buffer("semantic_penalty", torch.tensor(float(semantic_penalty)))

    def flagged(self, prompt: torch.Tensor) -> bool:
        ids = prompt.long().unsqueeze(0)
        return bool(self.classifier.flags(ids, torch.ones_like(ids, dtype=torch.bool))[0])

    def restrict(self, logits: torch.Tensor, generated: list[int]) -> torch.Tensor:
        """Next-token logits ``[V]`` after the semantic penalty and the token-matching filter."""
        out = logits - self.semantic_block.to(logits.dtype) * self.semantic_penalty.to(logits.dtype)
        hard = [t for t in blocked_tokens(generated, self.forbidden) if 0 <= t < out.shape[0]]
        if hard:
            out[hard] = float("-inf")
        return out

    @torch.no_grad()
    def generate_greedy(self, prompt: torch.Tensor, *, max_new_tokens: int, eos_id: int) -> list[int]:
        if not self.flagged(prompt):
            return super().generate_greedy(prompt, max_new_tokens=max_new_tokens, eos_id=eos_id)

        def guarded(logits: torch.Tensor, generated: list[int]) -> torch.Tensor:
            scores = self.restrict(logits, generated)
            if not torch.isfinite(scores).any():  # every candidate blocked: the answer ends here
                scores[eos_id] = 0.0
            return scores

        return super().generate_greedy(prompt, max_new_tokens=max_new_tokens, eos_id=eos_id, restrict=guarded)


@dataclass(frozen=True, kw_only=True)
class GuardParams(Hyperparams):
    threshold: float = hp(0.5, "flag a prompt when p(forget | prompt) > this", low=0.0, high=1.0)
    common_frac: float = hp(0.05, "an answer token is forbidden when at most this share of retain answers has it",
                            low=0.0, high=1.0)
    semantic_threshold: float = hp(0.9, "embedding cosine above which a candidate matches a forbidden token",
                                   low=-1.0, high=1.0)
    semantic_penalty: float = hp(10.0, "logits subtracted from semantically matching candidates", low=0.0)
    hidden: int = hp(64, "prompt classifier's hidden width", low=1)
    classifier_steps: int = hp(300, "full-batch Adam steps of the prompt classifier", low=1)
    classifier_lr: float = hp(1e-2, "prompt classifier's learning rate", low=0.0, low_open=True)


@register_method
class GuardDecoding(UnlearningMethod[GuardParams]):
    """GUARD: flag forget-scope prompts with a classifier and filter forbidden answer tokens while decoding
    (token matching, embedding similarity); weights unchanged."""

    name = "guard_decoding"
    paper = ("Deng et al., GUARD: Generation-time LLM Unlearning via Adaptive Restriction and Detection, "
             "arXiv 2505.13312")
    reference = "- (no public code; abstract only)"
    access = DataAccess.FORGET | DataAccess.RETAIN
    Params = GuardParams
    tasks = frozenset({"llm"})

    def unlearn(self, model: nn.Module, data: UnlearningData, ctx: RunContext) -> nn.Module:
        p = self.params
        self.check_task(data.task.name, p)
        check_causal_lm(model, self.name)
        fx, fy = data.forget_tensors()
        rx, ry = data.retain_tensors()
        clf, _, notes = fit_guard_classifier(model, fx, fy, rx, ry, hidden=p.hidden, steps=p.classifier_steps,
                                             lr=p.classifier_lr, threshold=p.threshold, seed=ctx.seed)
        tokens = sorted({t for row in forget_specific_tokens(fx, fy, ry, p.common_frac) for t in row})
        forbidden = torch.tensor(tokens, dtype=torch.long).reshape(-1, 1)
        semantic = semantic_block(clf.token_embeddings, tokens, p.semantic_threshold)
        ctx.notes.update(notes, forbidden_tokens=len(tokens), semantic_blocked=int(semantic.sum()))
        return GuardedDecodingLM(model.lm, clf, forbidden, semantic, semantic_penalty=p.semantic_penalty)

    def restore(self, spec: ModelSpec, tensors: Mapping[str, torch.Tensor]) -> nn.Module:
        if "forbidden" not in tensors or "classifier.token_embeddings" not in tensors:
            raise RuntimeError("the tensors hold no GUARD state (no 'forbidden' / 'classifier.token_embeddings')")
        base = spec.build(seed=0)
        clf = PromptClassifier(tensors["classifier.token_embeddings"],
                               hidden=int(tensors["classifier.mlp.0.weight"].shape[0]))
        model = GuardedDecodingLM(base.lm, clf, torch.empty_like(tensors["forbidden"]),
                                  torch.empty_like(tensors["semantic_block"]), semantic_penalty=0.0)
        model.load_state_dict(dict(tensors), strict=True)
        return model
