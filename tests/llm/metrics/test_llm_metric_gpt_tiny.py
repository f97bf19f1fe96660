"""Every llm metric on random ``gpt_tiny`` models over the contract-shaped test corpus: defined values (or None with
a reason), determinism, the retain oracle's forget quality against itself exactly 1, and generation through the
model's own ``generate_greedy``."""

from __future__ import annotations

import math

import pytest
import torch
from test_llm_metric_values import LLM_METRICS

from conftest import World
from expunge.metrics.base import evaluate

pytest.importorskip("transformers")


def tiny(world: World, seed: int):  # type: ignore[no-untyped-def]
    from expunge.models.registry import build_model

    return build_model("gpt_tiny", input_shape=(world.corpus.max_len,), num_classes=world.corpus.tokenizer.vocab_size,
                       seed=seed, n_layer=1, n_embd=32, n_head=2)


@pytest.fixture(scope="module")
def models(world: World):  # type: ignore[no-untyped-def]
    return {"unlearned": tiny(world, 0), "original": tiny(world, 1), "retrain": tiny(world, 2)}


def test_every_llm_metric_is_defined_and_deterministic(world: World, models):
    a = evaluate(world.ctx(**models), LLM_METRICS)
    b = evaluate(world.ctx(**models), LLM_METRICS)
    for name in LLM_METRICS:
        for role in ("unlearned", "original", "retrain"):
            v = a[name][role]
            assert v.value is not None and math.isfinite(v.value), (name, role, v.reason)
            assert v.value == b[name][role].value, (name, role)
    assert a["llm_forget_quality"]["retrain"].value == 1.0  # the oracle against itself
    assert a["llm_privleak"]["retrain"].value == 0.0
    for name in ("llm_prob_forget", "llm_rouge_retain", "llm_model_utility", "llm_exact_memorization"):
        assert 0.0 <= a[name]["original"].value <= 1.0, name


def test_rouge_reads_the_model_s_generate_greedy(world: World, models, monkeypatch: pytest.MonkeyPatch):
    model = models["unlearned"]
    calls: list[int] = []
    answer_of = {tuple(world.corpus.tokenizer.encode(it.question)): it.answer for it in world.corpus.train_items}

    def oracle_answer(prompt: torch.Tensor, *, max_new_tokens: int, eos_id: int) -> list[int]:
        calls.append(max_new_tokens)
        return world.corpus.tokenizer.encode(answer_of[tuple(prompt.tolist())])

    monkeypatch.setattr(model, "generate_greedy", oracle_answer)
    res = evaluate(world.ctx(unlearned=model), ["llm_rouge_forget", "llm_rouge_world"])
    assert res["llm_rouge_forget"]["unlearned"].value == 1.0 and res["llm_rouge_world"]["unlearned"].value == 1.0
    assert calls and set(calls) == {2 + 4}  # two-word answers + GEN_EXTRA_TOKENS
