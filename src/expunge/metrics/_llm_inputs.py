"""What the language-model metrics (``llm_*``) read from a context, computed once per (model, set) and cached.

Evaluation sets (all from :func:`expunge.data.facts.facts_corpus`, whose ``train_items`` are aligned with the
dataset's training rows and ``test_items`` with its held-out people):

* ``forget``: the forget split's question–answer items (every forget row with a question: "qa", and "world" when a
  request forgets world facts); bios have no question and are left to the sequence metrics.
* ``retain``: the retain split's "qa" items of people; ``world``: its world facts ("world"). Both are subsampled to
  at most :data:`EVAL_ITEMS_MAX` items (``ctx.extras["llm_eval_items"]`` overrides it) with the evaluation seed
  (TOFU evaluates a 400-question retain subset, not the whole retain set): generation for ROUGE is the costly part
  of an evaluation.
* Sequence metrics (exact memorisation, extraction strength, membership attacks) read the stored rows: every forget
  row (qa, bio, world) and every held-out row (the test split: never-seen people).

A context may carry its corpus in ``ctx.extras["llm_corpus"]`` (a user's own corpus, test doubles); otherwise it is
``facts_corpus(ctx.dataset)``. Generation goes only through the model's ``generate_greedy`` so an inference-time guard
that overrides it is what the metrics see.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from expunge.errors import NonFiniteOutputs
from expunge.metrics.base import EvalContext, Metric, MetricValue, MissingInput
from expunge.tasks.token_logprobs import EOS_ID, IGNORE_INDEX, answer_nll

LLM = frozenset({"llm"})
EVAL_ITEMS_MAX = 200  # retain / world items evaluated (seeded subsample); the forget set is always whole
GEN_EXTRA_TOKENS = 4  # greedy generation budget beyond the reference answer's length
SCORE_BATCH = 64  # rows per forward pass: [B, L, V] logits stay small


def corpus_of(ctx: EvalContext) -> Any:
    """The facts corpus of the context's dataset (or ``extras["llm_corpus"]``); MissingInput with the reason if
    there is none."""
    given = ctx.extras.get("llm_corpus")
    if given is not None:
        return given
    try:
        from expunge.data.facts import facts_corpus
    except ImportError as exc:  # the facts generator is not installed in this tree
        raise MissingInput(f"no facts corpus for the llm metrics ({exc})") from None
    try:
        return ctx.cached(("llm_corpus",), lambda: facts_corpus(ctx.dataset))
    except Exception as exc:  # not a facts dataset: whatever the generator refuses, the metric has no input
        raise MissingInput(f"no facts corpus for dataset {ctx.dataset.name!r}: {exc}") from None


@dataclass(frozen=True)
class QASet:
    """The items of one evaluation set and their positions in ``dataset.train``."""

    name: str
    positions: np.ndarray
    items: tuple[Any, ...]

    def __len__(self) -> int:
        return len(self.items)


def qa_set(ctx: EvalContext, name: str) -> QASet:
    """The ``forget`` / ``retain`` / ``world`` question–answer items of the request (module docstring)."""

    def compute() -> QASet:
        items = corpus_of(ctx).train_items
        if name == "forget":
            pos = [int(p) for p in ctx.splits.forget if items[p].kind != "bio"]
        elif name in ("retain", "world"):
            kind = "qa" if name == "retain" else "world"
            pos = [int(p) for p in ctx.splits.retain if items[p].kind == kind]
            cap = int(ctx.extras.get("llm_eval_items", EVAL_ITEMS_MAX))
            if len(pos) > cap:
                rng = np.random.default_rng(ctx.seed)
                pos = sorted(rng.choice(pos, size=cap, replace=False).tolist())
        else:
            raise ValueError(f"unknown llm evaluation set {name!r}: forget, retain or world")
        arr = np.asarray(pos, dtype=np.int64)
        return QASet(name, arr, tuple(items[p] for p in arr))

    return ctx.cached(("llm_qa_set", name), compute)


def _eval_mode(model: nn.Module) -> bool:
    was = model.training
    model.eval()
    return was


def batched_nll(model: nn.Module, input_ids: torch.Tensor, labels: torch.Tensor) -> np.ndarray:
    """ℓ̄ (mean answer-token NLL) of every row, in batches, float64."""
    was = _eval_mode(model)
    out = []
    try:
        with torch.no_grad():
            for i in range(0, len(input_ids), SCORE_BATCH):
                ids = input_ids[i:i + SCORE_BATCH].long()
                out.append(answer_nll(model(ids), labels[i:i + SCORE_BATCH].long()).double())
    finally:
        model.train(was)
    return torch.cat(out).numpy() if out else np.zeros(0)


def _finite(values: np.ndarray, role: str, what: str) -> np.ndarray:
    if not np.isfinite(values).all():
        raise NonFiniteOutputs(f"the {role} model's answer log-probabilities on {what} are not finite: a collapsed "
                               "model")
    return values


def answer_nlls(ctx: EvalContext, role: str, set_name: str, target: str) -> np.ndarray | list[np.ndarray]:
    """ℓ̄ of the ``target`` answer ("answer", "paraphrase") of each item of the set, or for "perturbed" one array of
    ℓ̄(ã_k) per item (ragged if the items have different numbers of perturbed answers)."""

    def compute() -> np.ndarray | list[np.ndarray]:
        corpus, items = corpus_of(ctx), qa_set(ctx, set_name).items
        if target == "perturbed":
            counts = [len(it.perturbed) for it in items]
            questions = [it.question for it, c in zip(items, counts, strict=True) for _ in range(c)]
            answers = [a for it in items for a in it.perturbed]
        else:
            questions, answers = [it.question for it in items], [getattr(it, target) for it in items]
        if not answers:
            flat = np.zeros(0)
        else:
            ids, labels = corpus.encode(questions, answers)
            flat = _finite(batched_nll(ctx.models[role], ids, labels), role, f"the {set_name} set")
        if target != "perturbed":
            return flat
        return np.split(flat, np.cumsum(counts)[:-1]) if counts else []

    return ctx.cached(("llm_nll", set_name, target), compute, role=role)


def generations(ctx: EvalContext, role: str, set_name: str) -> list[str]:
    """Greedy answers of the ``role`` model to the set's questions (decoded), through its ``generate_greedy``; at
    most the reference answer's length + :data:`GEN_EXTRA_TOKENS` new tokens, stopping at end-of-sequence."""
    model = ctx.models[role]
    if not callable(getattr(model, "generate_greedy", None)):
        raise MissingInput(f"the {role} model has no generate_greedy (not a causal language model wrapper)")
    answer_nlls(ctx, role, set_name, "answer")  # a collapsed model is refused before generating

    def compute() -> list[str]:
        corpus, items = corpus_of(ctx), qa_set(ctx, set_name).items
        tok = corpus.tokenizer
        eos = getattr(tok, "eos_id", EOS_ID)
        prompts = corpus.prompts([it.question for it in items]) if items else []
        was = _eval_mode(model)
        try:
            out = [tok.decode(model.generate_greedy(p, max_new_tokens=len(tok.encode(it.answer)) + GEN_EXTRA_TOKENS,
                                                    eos_id=eos))
                   for p, it in zip(prompts, items, strict=True)]
        finally:
            model.train(was)
        return out

    return ctx.cached(("llm_generations", set_name), compute, role=role)


@dataclass(frozen=True)
class RowStats:
    """Per stored row of a split: ℓ̄ over every labelled token, and over the labelled tokens but the last (the
    end-of-sequence token: OpenUnlearning's ``tokenwise_logprobs``) the token log-probabilities, the teacher-forced
    argmax predictions, the labels and the next-token log-probability moments μ, σ² (Min-K%++)."""

    mean_nll: np.ndarray
    logprobs: list[np.ndarray]
    preds: list[np.ndarray]
    labels: list[np.ndarray]
    mu: list[np.ndarray]
    sigma2: list[np.ndarray]


def _row_stats(model: nn.Module, input_ids: torch.Tensor, labels: torch.Tensor) -> RowStats:
    was = _eval_mode(model)
    nll: list[np.ndarray] = []
    lps, preds, labs, mus, s2s = [], [], [], [], []
    try:
        with torch.no_grad():
            for i in range(0, len(input_ids), SCORE_BATCH):
                ids, y = input_ids[i:i + SCORE_BATCH].long(), labels[i:i + SCORE_BATCH].long()
                logits = model(ids)
                nll.append(answer_nll(logits, y).double().numpy())
                logp = torch.log_softmax(logits[:, :-1].double(), dim=-1)
                target = y[:, 1:]
                mu = (logp.exp() * logp).sum(-1)
                s2 = (logp.exp() * logp * logp).sum(-1) - mu * mu
                picked = logp.gather(-1, target.clamp_min(0).unsqueeze(-1)).squeeze(-1)
                argmax = logp.argmax(-1)
                for r in range(len(ids)):
                    where = torch.nonzero(target[r] != IGNORE_INDEX).flatten()[:-1]  # the final EOS excluded
                    lps.append(picked[r, where].numpy())
                    preds.append(argmax[r, where].numpy())
                    labs.append(target[r, where].numpy())
                    mus.append(mu[r, where].numpy())
                    s2s.append(s2[r, where].numpy())
    finally:
        model.train(was)
    return RowStats(np.concatenate(nll) if nll else np.zeros(0), lps, preds, labs, mus, s2s)


def row_stats(ctx: EvalContext, role: str, split: str) -> RowStats:
    """:class:`RowStats` of the stored ``split`` rows ("forget" or "test") for the ``role`` model (cached)."""

    def compute() -> RowStats:
        x, y = ctx.split_tensors(split)
        stats = _row_stats(ctx.models[role], x, y)
        _finite(stats.mean_nll, role, f"the {split} split")
        return stats

    return ctx.cached(("llm_row_stats", split), compute, role=role)


def value_with_se(per_example: np.ndarray | list[float], **details: Any) -> MetricValue:
    """The mean of per-example values with its standard error s/√n; None with a reason for an empty set."""
    v = np.asarray(per_example, dtype=np.float64).reshape(-1)
    if v.size == 0:
        return MetricValue(None, reason="empty evaluation set", details=details)
    se = float(v.std(ddof=1) / np.sqrt(v.size)) if v.size > 1 else None
    return MetricValue(float(v.mean()), se=se, details={"n": int(v.size), **details})


class LLMMetric(Metric):
    """A metric of the ``llm`` task (tier 0: forward passes and greedy generation only)."""

    tasks: ClassVar[frozenset[str]] = LLM
