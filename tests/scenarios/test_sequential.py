"""Sequential requests: step i unlearns F_i from the model of step i−1, with D \\ (F_1 ∪ … ∪ F_i) as retain set, and is
judged against its own oracle on the cumulative forget set."""

from __future__ import annotations

import numpy as np
import pytest

import expunge.protocols.pipeline as pipeline
from expunge.errors import MalformedForgetSpec
from expunge.scenarios.base import get_scenario
from expunge.scenarios.sequential import build_requests
from expunge.tasks import get_task

METRICS = get_task("classification").headline_metrics


@pytest.fixture(scope="module")
def setting(session_store, fast_recipe):
    sc = get_scenario("sequential", {"base": "random:0.05", "k": 2})
    return sc, sc.prepare("digits", "mlp", seed=0, store=session_store, recipe=fast_recipe, metrics=METRICS,
                          progress=False)


def test_requests_are_fresh_and_retain_excludes_every_earlier_request(setting, digits):
    _, st = setting
    f1, f2 = (s.forget_ids for s in st.method_splits)
    assert f1.size == f2.size == round(0.05 * len(digits.train)) and np.intersect1d(f1, f2).size == 0
    step2 = st.method_splits[1]
    retain_ids = digits.train.ids[step2.retain]
    assert np.intersect1d(retain_ids, np.union1d(f1, f2)).size == 0
    assert np.array_equal(np.sort(retain_ids), np.setdiff1d(digits.train.ids, np.union1d(f1, f2)))
    assert np.array_equal(st.steps[1].splits.forget_ids, np.union1d(f1, f2))  # step 2 is judged on F_1 ∪ F_2
    assert st.steps[0].oracle.key != st.steps[1].oracle.key  # one oracle per step
    assert st.steps[1].oracle.manifest["n_train_examples"] == retain_ids.size


def test_retrain_with_the_oracle_seeds_has_zero_gap_and_records_carry_steps(setting, monkeypatch):
    sc, st = setting
    seen = []
    real = pipeline.run_method

    def spy(method, original, dataset, splits, ctx, *, original_key=None):
        res = real(method, original, dataset, splits, ctx, original_key=original_key)
        seen.append((original, res.model, original_key, splits.forget_ids.size))
        return res

    monkeypatch.setattr(pipeline, "run_method", spy)
    records = sc.run(st, "retrain", {"same_seeds_as_oracle": True}, metrics=METRICS, save=False)
    assert [r.extra["step"] for r in records] == [1, 2] and all(r.extra["k"] == 2 for r in records)
    assert all(r.extra["scenario"] == "sequential" for r in records)
    for rec in records:
        assert all(g == pytest.approx(0.0, abs=1e-12) for g in rec.gap_to_retrain.values() if g is not None)
    n = records[0].extra["step_request"]["n_forget"]
    assert records[1].request["n_forget"] == 2 * n and records[1].extra["step_request"]["n_forget"] == n
    assert records[1].forget == "random:0.1" and records[1].extra["step_request"]["spec"] == "random:0.05"
    # the retain set the method read at step 2 is D \ (F_1 ∪ F_2)
    assert records[1].access["retain_seen"] == st.steps[1].recipe.epochs * st.method_splits[1].retain.size
    # step 2 received step 1's model; the Original's key is passed at every step
    assert seen[0][0] is st.steps[0].original.model and seen[1][0] is seen[0][1]
    assert {s[2] for s in seen} == {st.steps[0].original.key}


def test_independent_retrain_is_close_to_each_step_oracle(setting):
    sc, st = setting
    for rec in sc.run(st, "retrain", None, metrics=METRICS, save=False):
        gaps = rec.gap_to_retrain
        assert gaps["test_acc"] < 0.04 and gaps["retain_acc"] < 0.03 and gaps["forget_acc"] < 0.1, rec.extra["step"]
        assert sc.objective([rec]) < 0.1


def test_class_requests_forget_one_class_per_step(digits):
    params = get_scenario("sequential", {"base": "classes:1,2", "k": 2}).params
    method_splits, eval_splits = build_requests(digits, params, seed=0)
    assert [s.forget_classes for s in method_splits] == [(1,), (2,)]
    assert eval_splits[1].forget_classes == (1, 2) and eval_splits[1].request.spec == "classes:1,2"
    assert set(digits.train.y.numpy()[method_splits[1].retain]) == set(range(10)) - {1, 2}


def test_validation_stream_is_another_request(digits):
    params = get_scenario("sequential", {"base": "classes:1,2", "k": 2}).params
    val_splits, _ = build_requests(digits, params, seed=1000, validation=True)
    val_classes = {c for s in val_splits for c in s.forget_classes}
    assert len(val_classes) == 2 and not val_classes & {1, 2}
    rnd = get_scenario("sequential", {"base": "random:0.05", "k": 2}).params
    assert not np.array_equal(build_requests(digits, rnd, seed=0)[0][0].forget_ids,
                              build_requests(digits, rnd, seed=1000, validation=True)[0][0].forget_ids)


@pytest.mark.parametrize(("base", "k", "fragment"), [("classes:1", 2, "at least k classes"),
                                                     ("subclass:3", 2, "cannot be built")])
def test_bad_bases_are_refused_before_training(base, k, fragment):
    with pytest.raises(MalformedForgetSpec, match=fragment):
        get_scenario("sequential", {"base": base, "k": k}).prepare("digits", "mlp")


def test_sisa_continues_its_ensemble_across_steps(setting):
    """SISA's state travels on the returned ensemble; step 2's retain set lacks F_1 as well (no refusal)."""
    sc, st = setting
    records = sc.run(st, "sisa", {"epochs_per_stage": 1}, metrics=METRICS, save=False)
    assert [r.notes["continued"] for r in records] == [False, True]
    assert all(r.notes["shards_affected"] >= 1 for r in records)
    assert records[1].metrics["forget_acc"] is not None
