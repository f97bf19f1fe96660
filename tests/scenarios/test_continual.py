"""continual: the stream's plan (parsing, the fixed buffer's invariants, the validation stream), which data a method
sees at a forget step, and the issue's test — on a tiny digits stream ckd's accuracy on a removed class drops to the
oracle's while its kept-class accuracy stays within a bound of the oracle's."""

from __future__ import annotations

import numpy as np
import pytest

from expunge.data.datasets import load_dataset
from expunge.errors import InvalidForgetRequest, InvalidHyperparameter
from expunge.scenarios._stream import parse_stream, plan_stream, validation_events
from expunge.scenarios.base import get_scenario
from expunge.scenarios.continual import DEFAULT_STREAM
from expunge.store import ArtifactStore
from expunge.train.loop import TrainRecipe

TINY_STREAM = "learn:0,1; learn:2,3; forget:class:1; learn:4,5; forget:samples:0.05"
RECIPE = TrainRecipe(epochs=5, batch_size=64, optimizer="adam", lr=3e-3)


@pytest.mark.parametrize("text, match", [
    ("learn:0,1; forget:class", "cannot read"), ("forget:class:1; learn:0,1", "must start with a learn"),
    ("learn:0,1; learn:2,3", "no forget step"), ("learn:0,0; forget:class:0", "cannot read"),
    ("learn:0,1; forget:samples:1.5", "cannot read")])
def test_stream_parse_errors(text, match):
    with pytest.raises(InvalidForgetRequest, match=match):
        parse_stream(text)


def test_bad_stream_is_a_hyperparameter_error_naming_the_key():
    with pytest.raises(InvalidHyperparameter, match="stream"):
        get_scenario("continual", {"stream": "learn:0,1"})


@pytest.mark.parametrize("text, match", [
    ("learn:0,1; forget:class:5", "not learned and kept"), ("learn:0,1; learn:1,2; forget:class:0", "learned before"),
    ("learn:0,12; forget:class:0", "do not exist"), ("learn:0,1; forget:class:1; forget:class:1", "not learned")])
def test_plan_refuses_impossible_streams(text, match):
    with pytest.raises(InvalidForgetRequest, match=match):
        plan_stream(load_dataset("digits"), parse_stream(text), buffer=100, seed=0, buffer_seed=0)


def test_buffer_never_exceeds_its_size_and_never_holds_a_forgotten_example():
    ds = load_dataset("digits")
    labels = ds.train.y.numpy()
    plan = plan_stream(ds, parse_stream(DEFAULT_STREAM), buffer=100, seed=3, buffer_seed=3)
    for i, ev in enumerate(plan.events):
        buf = plan.buffer_after[i]
        assert buf.size <= 100 and np.unique(buf).size == buf.size
        assert not np.intersect1d(buf, plan.forgotten_after[i]).size, f"forgotten example kept after {ev.text}"
        assert set(np.unique(labels[buf])) <= set(plan.kept_after[i])
        if ev.kind == "learn":  # class-balanced: floor(size / kept classes) per kept class
            quota = 100 // len(plan.kept_after[i])
            counts = np.bincount(labels[buf], minlength=10)[list(plan.kept_after[i])]
            assert counts.max() == quota and counts.min() >= quota - 5  # fewer only where samples were forgotten
        else:
            assert np.isin(plan.targets[i], plan.forgotten_after[i]).all()
            assert not np.isin(plan.targets[i], plan.allowed_after[i]).any()
    # the class forgotten first is never learned again and its examples never come back
    first = plan.forget_events[0]
    assert np.isin(plan.targets[first], plan.forgotten_after[-1]).all() and 1 in plan.removed_after[-1]
    # the plan is a function of the seeds
    again = plan_stream(ds, parse_stream(DEFAULT_STREAM), buffer=100, seed=3, buffer_seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(plan.buffer_after, again.buffer_after, strict=True))


def test_validation_stream_forgets_other_classes_on_the_same_learning_steps():
    events = parse_stream(DEFAULT_STREAM)
    val = validation_events(events, seed=0)
    assert [e.text for e in val if e.kind == "learn"] == [e.text for e in events if e.kind == "learn"]
    assert [e.cls for e in val if e.kind == "forget_class"] == [0, 7]  # the other class of each task


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    sc = get_scenario("continual", {"stream": TINY_STREAM, "buffer": 150})
    store = ArtifactStore(tmp_path_factory.mktemp("continual"))
    setting = sc.prepare("digits", "mlp_small", seed=0, store=store, recipe=RECIPE, progress=False,
                         metrics=["forget_acc", "test_acc"])
    return sc, setting


def test_a_method_sees_the_buffer_and_an_exact_one_everything_allowed(tiny):
    sc, setting = tiny
    plan = setting.plan
    for k, i in enumerate(plan.forget_events):
        ms = setting.method_splits[k]
        assert np.array_equal(ms.forget, plan.targets[i])
        assert np.isin(ms.retain, plan.buffer_before[i]).all() and ms.retain.size <= 150
        assert np.array_equal(setting.steps[k].splits.retain, plan.allowed_after[i])  # the oracle's training set
    records = sc.run(setting, "retrain", {"same_seeds_as_oracle": True}, metrics=["forget_acc", "test_acc"],
                     save=False)
    assert all(r.gap_to_retrain["cl_avg_acc"] == 0 and r.gap_to_retrain["forget_acc"] == 0 for r in records)
    assert all(r.extra["learner"] == "replay fine-tuning" for r in records)  # no learn hook: the default learner


def test_ckd_forgets_a_removed_class_like_the_oracle_and_keeps_the_kept_ones(tiny):
    sc, setting = tiny
    ckd = sc.run(setting, "ckd", None, metrics=["forget_acc", "test_acc"], save=False)
    assert [r.extra["learner"] for r in ckd] == ["method"] * 2  # ckd learns with its own hook
    step = ckd[0]  # forget:class:1
    assert step.original["cl_removed_acc"] >= 0.6 and step.retrain["cl_removed_acc"] == 0.0
    assert step.metrics["cl_removed_acc"] <= step.retrain["cl_removed_acc"] + 0.05
    assert abs(step.metrics["cl_avg_acc"] - step.retrain["cl_avg_acc"]) <= 0.1
    # the removed class stays forgotten after a later learning step (its examples never return to the buffer)
    assert ckd[1].metrics["cl_removed_acc"] <= 0.05
    assert ckd[1].metrics["cl_bwt"] is not None and ckd[1].retrain["cl_bwt"] is None
    assert abs(ckd[1].metrics["cl_avg_acc"] - ckd[1].retrain["cl_avg_acc"]) <= 0.15


@pytest.mark.slow  # ~30 s: one CLI process training a three-step digits stream and its oracle with the default recipe
def test_cli_runs_the_continual_scenario(tmp_path):
    """`expunge scenario continual --stream ... --buffer ...` prints the stream's measures for each forget step."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "EXPUNGE_CACHE": str(tmp_path), "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-m", "expunge.cli.main", "scenario", "continual", "--data", "digits",
                          "--model", "mlp_small", "--method", "ckd", "--stream", "learn:0,1; learn:2,3; forget:class:1",
                          "--buffer", "100"], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "continual step 1/1" in out.stdout and "cl_removed_acc" in out.stdout
