"""ECO: embedding-corrupted prompts — an inference-time guard; the language model's weights never change.

Liu, Wang, Flanigan, Liu, "Large Language Model Unlearning via Embedding-Corrupted Prompts", NeurIPS 2024
(arXiv 2406.07933); spec ``methods.md`` §6.7. Reference code: chrisliu298/llm-unlearn-eco (the authors'; not
read for this implementation, which follows the paper's description as the spec summarises it).

(1) A prompt classifier C (:mod:`expunge.methods._shared.prompt_guard`: an MLP on the mean ‖ max of a frozen copy of
the Original's token embeddings over the prompt) is trained on the forget rows' prompts (forget scope) against the
retain rows' prompts (retain scope). (2) A prompt is flagged when p_C(forget | x) > ``threshold``. (3) A flagged
prompt's token embeddings are corrupted, e_i ← e_i + σ·s·ε_i with ε_i ~ N(0, I) and s the root-mean-square of the
Original's token-embedding table (so σ is in units of a typical embedding); un-flagged prompts pass unchanged.

The returned :class:`EcoGuardedLM` keeps ``model(input_ids) -> logits``: inside ``forward`` every row's prompt is
delimited from ``input_ids`` alone (``prompt_guard``: up to the learned prompt-end token, else the whole row), the
flagged rows are re-run from corrupted embeddings — the answer tokens' embeddings are never corrupted — and the other
rows' logits are the base model's, bit-identical (tested). ``generate_greedy`` classifies the prompt once and decodes
from the corrupted prompt embeddings followed by the clean generated tokens. The noise of a prompt is a function of
its tokens and the stored ``noise_seed`` (a generator seeded per prompt), so scoring and generation of the same
prompt see the same corruption and every evaluation is deterministic.

Choices the paper leaves open or that we simplify (documented, tested where testable):
- classifier: the paper fine-tunes RoBERTa; here the shared embedding-MLP (no external model); threshold a fixed
  parameter (default 0.5 on class-balanced training) instead of conformal calibration on held-out prompts;
- σ: the paper tunes σ offline by zeroth-order optimisation against a retain-model target; here a parameter (default
  2.0 embedding-RMS units) that ``expunge tune`` can search; corruption type: Gaussian noise on every prompt token
  and dimension (the paper's main variant; zeroing / sign flips and token or dimension selection not implemented);
- the stored guard (classifier, embedding copy, σ, prompt-end token, noise seed) lives in buffers and parameters of the
  returned model, so it is saved and restored like any model (:meth:`EcoPrompts.restore`).
"""

from __future__ import annotations

import hashlib
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
    prompt_mask,
)
from expunge.methods.base import RunContext, UnlearningMethod, register_method
from expunge.models import ModelSpec
from expunge.models.causal_lm import CausalLM


class EcoGuardedLM(CausalLM):
    """A :class:`CausalLM` whose flagged prompts are read from Gaussian-corrupted token embeddings."""

    def __init__(self, lm: nn.Module, classifier: PromptClassifier, *, sigma: float, prompt_end_id: int,
                 noise_seed: int) -> None:
        super().__init__(lm)
        self.classifier = classifier
        table = classifier.token_embeddings
        self.register_buffer("sigma", torch.tensor(float(sigma)))
        self.register_buffer("embed_scale", table.pow(2).mean().sqrt())
        self.register_buffer("prompt_end_id", torch.tensor(int(prompt_end_id)))
        self.register_buffer("noise_seed", torch.tensor(int(noise_seed)))

    def prompt_mask(self, input_ids: torch.Tensor) -> torch.Tensor:
        return prompt_mask(input_ids, int(self.prompt_end_id))

    def _noise(self, prompt_ids: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
        """ε [len, d] for one prompt: a generator seeded by the noise seed and the prompt's tokens."""
        digest = hashlib.sha256(prompt_ids.long().numpy().tobytes() + int(self.noise_seed).to_bytes(8, "little"))
        g = torch.Generator().manual_seed(int.from_bytes(digest.digest()[:8], "little") & 0x7FFFFFFFFFFFFFFF)
        return torch.randn(shape, generator=g)

    def corrupted_embeds(self, input_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Token embeddings of ``input_ids`` [N, L] with every row's prompt positions (``mask``) corrupted."""
        emb = self.embed(input_ids)
        noise = torch.zeros_like(emb)
        for i in range(input_ids.shape[0]):
            pos = mask[i].nonzero().squeeze(-1)
            if pos.numel():
                noise[i, pos] = self._noise(input_ids[i, pos], (pos.numel(), emb.shape[-1])).to(emb.dtype)
        return emb + (self.sigma * self.embed_scale).to(emb.dtype) * noise

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        ids = input_ids.long()
        logits = self.lm(input_ids=ids).logits
        mask = self.prompt_mask(ids)
        flags = self.classifier.flags(ids, mask)
        if not bool(flags.any()):
            return logits
        rows = flags.nonzero().squeeze(-1)
        corrupted = self.lm(inputs_embeds=self.corrupted_embeds(ids[rows], mask[rows])).logits
        return logits.index_put((rows,), corrupted)

    @torch.no_grad()
    def generate_greedy(self, prompt: torch.Tensor, *, max_new_tokens: int, eos_id: int) -> list[int]:
        ids = prompt.long().unsqueeze(0)
        mask = torch.ones_like(ids, dtype=torch.bool)  # the caller's prompt is the prompt (no padding)
        if not bool(self.classifier.flags(ids, mask)[0]):
            return super().generate_greedy(prompt, max_new_tokens=max_new_tokens, eos_id=eos_id)
        embeds = self.corrupted_embeds(ids, mask)
        out: list[int] = []
        for _ in range(max_new_tokens):
            if embeds.shape[1] >= self.max_length:
                break
            nxt = int(self.lm(inputs_embeds=embeds).logits[0, -1].argmax())
            if nxt == eos_id:
                break
            out.append(nxt)
            embeds = torch.cat([embeds, self.embed(ids.new_tensor([[nxt]]))], dim=1)
        return out


@dataclass(frozen=True, kw_only=True)
class EcoParams(Hyperparams):
    sigma: float = hp(2.0, "noise std on flagged prompts' token embeddings, in units of the embedding RMS", low=0.0,
                      search=(0.25, 8.0), log=True)
    threshold: float = hp(0.5, "flag a prompt when p(forget | prompt) > this", low=0.0, high=1.0)
    hidden: int = hp(64, "prompt classifier's hidden width", low=1)
    classifier_steps: int = hp(300, "full-batch Adam steps of the prompt classifier", low=1)
    classifier_lr: float = hp(1e-2, "prompt classifier's learning rate", low=0.0, low_open=True)


@register_method
class EcoPrompts(UnlearningMethod[EcoParams]):
    """ECO: a prompt classifier flags forget-scope prompts, whose token embeddings are corrupted with Gaussian noise;
    weights unchanged."""

    name = "eco_prompts"
    paper = "Liu, Wang, Flanigan, Liu, Large Language Model Unlearning via Embedding-Corrupted Prompts, NeurIPS 2024"
    reference = "chrisliu298/llm-unlearn-eco"
    access = DataAccess.FORGET | DataAccess.RETAIN
    Params = EcoParams
    tasks = frozenset({"llm"})

    def unlearn(self, model: nn.Module, data: UnlearningData, ctx: RunContext) -> nn.Module:
        p = self.params
        self.check_task(data.task.name, p)
        check_causal_lm(model, self.name)
        fx, fy = data.forget_tensors()
        rx, ry = data.retain_tensors()
        clf, end_id, notes = fit_guard_classifier(model, fx, fy, rx, ry, hidden=p.hidden, steps=p.classifier_steps,
                                                  lr=p.classifier_lr, threshold=p.threshold, seed=ctx.seed)
        ctx.notes.update(notes)
        return EcoGuardedLM(model.lm, clf, sigma=p.sigma, prompt_end_id=end_id, noise_seed=ctx.seed)

    def restore(self, spec: ModelSpec, tensors: Mapping[str, torch.Tensor]) -> nn.Module:
        if "classifier.token_embeddings" not in tensors:
            raise RuntimeError("the tensors hold no ECO guard (no 'classifier.token_embeddings')")
        base = spec.build(seed=0)
        clf = PromptClassifier(tensors["classifier.token_embeddings"],
                               hidden=int(tensors["classifier.mlp.0.weight"].shape[0]))
        model = EcoGuardedLM(base.lm, clf, sigma=0.0, prompt_end_id=-1, noise_seed=0)
        model.load_state_dict(dict(tensors), strict=True)
        return model
