"""Contract suite over every registered scenario (like the methods' one): metadata, request kinds, preset fallback,
derived datasets, typed records, a validation request that differs from the evaluation request, and exact retraining
at zero gap on every step. A new scenario file gets these checks for free."""

from __future__ import annotations

import json

import numpy as np
import pytest

from expunge.data.request import REQUEST_KINDS, ForgetRequest
from expunge.errors import InvalidHyperparameter
from expunge.record import RunRecord
from expunge.scenarios.base import SCENARIOS, Scenario, SingleRequest, get_scenario
from expunge.train.loop import TrainRecipe

NAMES = SCENARIOS.names()
METRICS = ("forget_acc", "test_acc", "mia_loss_auc")
TINY = TrainRecipe(epochs=5, batch_size=64, optimizer="adam", lr=3e-3)
# Smaller than the defaults where a default would train many models (each sequential step has its own oracle).
SMALL = {"sequential": {"k": 2}, "hard-forget": {"k": 10},
         "continual": {"stream": "learn:0,1; learn:2,3; forget:class:1; forget:samples:0.1", "buffer": 100}}
# Where a scenario that does not run on classification is checked: (dataset, model) by task.
DATA_FOR_TASK = {"classification": ("digits", "mlp"), "recsys": ("recsys-synth", "mf"), "graph": ("sbm", "gcn"),
                 "federated": ("digits-fed-iid", "mlp_small")}


def data_and_metrics(sc: Scenario) -> tuple[str, str, tuple[str, ...]]:
    """The contract request's dataset, model and metrics: digits/mlp and classification's criteria for every
    scenario that runs on classification, else the first task of ``DATA_FOR_TASK`` it supports and its criteria."""
    from expunge.tasks import get_task

    task = "classification" if "classification" in sc.tasks else sorted(sc.tasks & DATA_FOR_TASK.keys())[0]
    metrics = METRICS if task == "classification" else tuple(get_task(task).parity_criteria)
    return (*DATA_FOR_TASK[task], metrics)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """Evaluation and validation settings per scenario, built once."""
    from expunge.store import ArtifactStore

    store = ArtifactStore(tmp_path_factory.mktemp("scenario-contract"))
    cache: dict[tuple[str, bool], object] = {}

    def get(name: str, validation: bool):
        if (name, validation) not in cache:
            sc = get_scenario(name, SMALL.get(name))
            data, model, metrics = data_and_metrics(sc)
            cache[name, validation] = (sc, sc.prepare(data, model, seed=0, store=store, recipe=TINY,
                                                      metrics=metrics, progress=False, validation=validation))
        return cache[name, validation]

    return get


@pytest.mark.parametrize("name", NAMES)
def test_metadata_params_and_plug_ins(name):
    cls = SCENARIOS.get(name)
    assert issubclass(cls, Scenario) and cls.name == name and cls.summary()
    assert cls.__module__.startswith("expunge.scenarios."), "one scenario per module of expunge.scenarios"
    sc = get_scenario(name)
    assert sc.params == cls.Params() and cls.describe()["params"] == cls.Params.describe()
    with pytest.raises(InvalidHyperparameter, match=f"scenario {name} has no parameter"):
        get_scenario(name, {"definitely_not_a_param": "1"})
    assert cls.preset_fallback is None or cls.preset_fallback in NAMES
    assert set(cls.objective_metrics) and all(isinstance(m, str) for m in cls.objective_metrics)
    if cls.derivation_kind is not None:  # a scenario that derives a dataset knows how to rebuild it
        assert cls.rebuild_dataset.__func__ is not Scenario.rebuild_dataset.__func__
    if issubclass(cls, SingleRequest):  # its request kind is registered and belongs to it
        kind = REQUEST_KINDS.get(cls.request_kind)
        assert kind.scenario == name and kind.syntax in cls.describe()["request_kinds"]
        example = kind.syntax.split(" | ")[0]
        assert ForgetRequest.parse(example).kind == kind.name


@pytest.mark.parametrize("name", NAMES)
def test_exact_retraining_has_zero_gap_and_typed_tagged_records(name, prepared):
    sc, st = prepared(name, False)
    metrics = data_and_metrics(sc)[2]
    records = sc.run(st, "retrain", {"same_seeds_as_oracle": True}, metrics=metrics, save=False)
    assert len(records) == len(st.steps) >= 1
    for rec in records:
        assert isinstance(rec, RunRecord)
        assert rec.extra["scenario"] == name and rec.extra["validation"] is False
        assert rec.extra["scenario_params"] == sc.params.to_dict()
        for metric in metrics:
            if rec.retrain[metric] is None:  # undefined on this request (e.g. too few examples): said, not guessed
                assert rec.reasons[metric]["retrain"], metric
                continue
            assert rec.gap_to_retrain[metric] == pytest.approx(0.0, abs=1e-12), (metric, rec.forget)
        doc = json.loads(json.dumps(rec.to_json()))  # the JSON form round-trips
        assert RunRecord.from_json(doc) == RunRecord.from_json(rec.to_json())
        assert doc["scenario"] == name and doc["schema_version"] == rec.schema_version
    objective = sc.objective(records)  # the tuning objective is defined (corrective's target is the clean model)
    assert objective is None or objective >= 0.0


@pytest.mark.parametrize("name", NAMES)
def test_validation_request_differs_on_the_same_original(name, prepared):
    _, ev = prepared(name, False)
    _, val = prepared(name, True)
    assert val.validation and not ev.validation
    assert ev.steps[0].original.key == val.steps[0].original.key, "tuning must not change the Original"
    for e, v in zip(ev.steps, val.steps, strict=True):
        assert not np.array_equal(e.splits.forget_ids, v.splits.forget_ids), "tuned on the evaluated request"
