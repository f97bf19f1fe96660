"""Corrective unlearning: a planted backdoor works on the poisoned Original, not on the clean model, and retraining
without *all* poisoned examples brings the attack success rate back to the clean level."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from expunge.data.request import ForgetRequest
from expunge.metrics.backdoor import EXTRAS_KEY, BackdoorASR, TriggeredInputs
from expunge.metrics.base import EvalContext
from expunge.metrics.functional.backdoor import attack_success_rate
from expunge.scenarios.base import get_scenario
from expunge.scenarios.corrective import poison_dataset, trigger_side
from expunge.tasks import get_task

METRICS = tuple(get_task("classification").parity_criteria)  # the metrics a parity verdict reads


def test_poisoned_dataset(digits):
    p = poison_dataset(digits, fraction=0.05, target=0, seed=0)
    again = poison_dataset(digits, fraction=0.05, target=0, seed=0)
    assert np.array_equal(p.poison_ids, again.poison_ids) and p.dataset.fingerprint == again.dataset.fingerprint
    assert p.dataset.fingerprint != digits.fingerprint and p.side == 2 and p.value == 1.0
    pos = digits.train.positions_of(p.poison_ids)
    assert p.poison_ids.size == round(0.05 * len(digits.train)) and (digits.train.y.numpy()[pos] != 0).all()
    assert (p.dataset.train.y.numpy()[pos] == 0).all()
    assert torch.all(p.dataset.train.x[pos][..., -2:, -2:] == 1.0)
    clean_pos = np.setdiff1d(np.arange(len(digits.train)), pos)
    assert torch.equal(p.dataset.train.x[clean_pos], digits.train.x[clean_pos])
    assert torch.equal(p.dataset.test.x, digits.test.x)  # the test set is never poisoned
    probe = p.triggered_test()
    assert len(probe.x) == int((digits.test.y != 0).sum()) and torch.all(probe.x[..., -2:, -2:] == 1.0)
    assert trigger_side((1, 28, 28)) == 3 and trigger_side((1, 8, 8)) == 2


def test_attack_success_rate_known_answer():
    assert attack_success_rate(np.array([[0, 2], [3, 1], [0, 1]]), 1) == pytest.approx(2 / 3)


def test_backdoor_asr_needs_the_scenario_trigger(digits):
    splits = ForgetRequest.parse("class:3").resolve(digits)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    with torch.no_grad():
        model[1].weight.zero_()
        model[1].bias.copy_(torch.arange(10.0) == 7)  # always predicts 7
    plain = EvalContext(digits, splits, {"original": model})
    value = BackdoorASR()(plain, "original")
    assert value.value is None and "corrective" in value.reason
    probe = TriggeredInputs(digits.test.x[:20], target=7)
    assert BackdoorASR()(EvalContext(digits, splits, {"original": model}, extras={EXTRAS_KEY: probe}),
                         "original").value == 1.0


@pytest.fixture(scope="module")
def fully_identified(session_store, fast_recipe):
    sc = get_scenario("corrective", {"poison": 0.05, "identified": 1.0})
    return sc, sc.prepare("digits", "mlp", seed=0, store=session_store, recipe=fast_recipe, metrics=METRICS,
                          progress=False)


def test_original_is_backdoored_and_clean_model_is_not(fully_identified):
    _, st = fully_identified
    asr = st.steps[0].baseline["backdoor_asr"]
    assert asr["original"].value > 0.8 and asr["clean"].value < 0.1
    acc = st.steps[0].baseline["test_acc"]
    assert abs(acc["original"].value - acc["clean"].value) < 0.05  # the backdoor costs little clean accuracy
    assert st.info["n_identified"] == st.info["n_poisoned"]


def test_retrain_without_all_poison_brings_asr_to_the_clean_level(fully_identified):
    sc, st = fully_identified
    (rec,) = sc.run(st, "retrain", None, metrics=METRICS, save=False)
    assert rec.extra["scenario"] == "corrective" and rec.request["n_forget"] == st.info["n_poisoned"]
    assert rec.metrics["backdoor_asr"] <= rec.extra["clean"]["backdoor_asr"] + 0.1
    assert rec.original["backdoor_asr"] > 0.8
    assert rec.extra["gap_to_clean"]["test_acc"] < 0.05
    assert sc.objective([rec]) < 0.1


def test_partial_identification_leaves_the_retrain_backdoored(session_store, fast_recipe):
    sc = get_scenario("corrective", {"poison": 0.05, "identified": 0.3})
    st = sc.prepare("digits", "mlp", seed=0, store=session_store, recipe=fast_recipe, metrics=METRICS,
                    progress=False)
    assert st.steps[0].baseline["backdoor_asr"]["retrain"].value > 0.5  # Goel et al.: retraining is not enough


def test_stored_corrective_run_is_re_evaluated_with_the_rebuilt_poisoned_data(fully_identified):
    from expunge.evaluation import evaluate_run

    sc, st = fully_identified
    (rec,) = sc.run(st, "finetune", {"epochs": 1}, metrics=METRICS, save=True)
    manifest = st.steps[0].store.load_tensors("unlearned", rec.unlearned_key)[1]
    assert manifest["dataset"] == "digits+backdoor" and manifest["dataset_derivation"]["kind"] == "backdoor"
    again = evaluate_run(rec.unlearned_key, store=st.steps[0].store, metrics=[*METRICS, "backdoor_asr"])
    for role in ("metrics", "original", "retrain"):  # same poisoned data (fingerprint checked), same numbers
        for name in ("backdoor_asr", "test_acc", "forget_acc"):
            assert getattr(again, role)[name] == pytest.approx(getattr(rec, role)[name], abs=1e-12), (role, name)
