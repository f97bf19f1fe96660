"""The concealment audits on a memorised tiny GPT (issue 26, metrics.md §5): UDS is exactly 0 for the Original and
1 for the retain oracle; quantisation recovery is 0 for a model already on the quantisation grid; a shallow
unlearner relearns faster than the oracle; inference-time guards keep their weights, so their depth is 0."""

from __future__ import annotations

import copy

import pytest
import torch
from llm_guard_toys import PEOPLE, FakeData, FakeEvalContext, trained_model

from expunge.methods.base import RunContext, get_method
from expunge.metrics import llm_audit_quant, llm_audit_relearn, llm_audit_uds
from expunge.metrics._llm_audit import quantisable_weights


@pytest.fixture(scope="module")
def models():
    original = trained_model()
    retrain = trained_model(people=range(2, PEOPLE))  # never saw persons 0 and 1
    unstar = get_method("unstar").unlearn(copy.deepcopy(original), FakeData(), RunContext(seed=0)).eval()
    eco = get_method("eco_prompts").unlearn(copy.deepcopy(original), FakeData(), RunContext(seed=0)).eval()
    return {"original": original, "retrain": retrain, "unlearned": unstar, "eco": eco}


def test_uds_is_zero_for_the_original_one_for_the_oracle(models):
    ctx = FakeEvalContext(models)
    uds = llm_audit_uds.UnlearningDepthScore()
    assert uds.compute(ctx, "original").value == 0.0
    assert uds.compute(ctx, "retrain").value == 1.0
    shallow = uds.compute(ctx, "unlearned")
    assert 0.0 < shallow.value <= 1.0 and shallow.details["rows_with_ke_layer"] == 4
    assert uds.compute(ctx, "eco").value == 0.0  # a guard leaves the weights: the knowledge is intact in them


def test_quantisation_touches_projection_weights_only():
    model = copy.deepcopy(trained_model())
    names = {n for n, _, _ in quantisable_weights(model)}
    assert names == {"transformer.h.0.attn.c_attn", "transformer.h.0.attn.c_proj", "transformer.h.0.mlp.c_fc",
                     "transformer.h.0.mlp.c_proj"}  # lm_head is tied to the embedding: kept in float
    q, n = llm_audit_quant.quantize_lm(model, "nf4")
    assert n == 4
    assert torch.equal(q.lm.transformer.wte.weight, model.lm.transformer.wte.weight)
    assert not torch.equal(q.lm.transformer.h[0].mlp.c_fc.weight, model.lm.transformer.h[0].mlp.c_fc.weight)


@pytest.mark.parametrize("scheme", ["int8", "nf4"])
def test_quant_recovery_known_answers(models, scheme):
    on_grid, _ = llm_audit_quant.quantize_lm(models["unlearned"], scheme)
    ctx = FakeEvalContext({**models, "unlearned": on_grid})
    metric = {"int8": llm_audit_quant.LlmQuantRecoveryInt8, "nf4": llm_audit_quant.LlmQuantRecoveryNf4}[scheme]()
    v = metric.compute(ctx, "unlearned")
    assert v.value == pytest.approx(0.0, abs=1e-9)  # quantising a quantised model changes nothing
    assert v.details["prob_forget_before"] < v.details["prob_original"]
    with pytest.warns(UserWarning, match="nothing was forgotten"):
        assert metric.compute(ctx, "original").value is None
    assert abs(metric.compute(ctx, "retrain").value) < 0.1  # the floor: quantisation teaches the oracle nothing


def test_relearning_a_shallow_unlearner_is_fast(models):
    ctx = FakeEvalContext(models)
    steps = llm_audit_relearn.LlmRelearnSteps()
    assert steps.compute(ctx, "original").value == 0.0  # already at the target
    fast, oracle = steps.compute(ctx, "unlearned"), steps.compute(ctx, "retrain")
    assert fast.value < oracle.value
    ain = llm_audit_relearn.LlmAnamnesisIndex().compute(ctx, "unlearned")
    assert ain.value == pytest.approx(fast.value / oracle.value)
    attack = llm_audit_relearn.LlmRelearnAttackK10().compute(ctx, "unlearned")
    assert attack.details["k"] == 3 and attack.details["n_heldout"] == 1 and attack.value is not None


def test_a_collapsed_model_is_refused_not_measured(models):
    from expunge.errors import NonFiniteOutputs

    broken = copy.deepcopy(models["unlearned"])
    with torch.no_grad():
        broken.lm.transformer.h[0].mlp.c_fc.weight.fill_(float("nan"))
    ctx = FakeEvalContext({**models, "unlearned": broken})
    for metric in (llm_audit_uds.UnlearningDepthScore(), llm_audit_quant.LlmQuantRecoveryInt8()):
        with pytest.raises(NonFiniteOutputs, match="collapsed"):
            metric.compute(ctx, "unlearned")
