"""Contract suite over every registered method (scikit-learn's ``test_common`` idea): a new method file gets these
checks for free. Each method runs on a tiny digits/mlp request with a small budget."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from expunge.data.access import DataAccess, UnlearningData
from expunge.errors import InvalidHyperparameter, UndeclaredDataAccess
from expunge.methods.base import METHODS, RunContext, get_method
from expunge.protocols.runner import load_result, run_method
from expunge.store.artifacts import state_hash

NAMES = METHODS.names()
SMALL = {"epochs": 1}  # budget override applied where the method has an `epochs` field


def _small_params(cls):
    fields = {f.name for f in dataclasses.fields(cls.Params)}
    return cls.Params.from_overrides({k: v for k, v in SMALL.items() if k in fields})


def test_registry_has_the_foundation_methods():
    assert {"retrain", "finetune", "neggrad", "neggrad_plus", "random_label", "ssd"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_metadata_and_params(name):
    cls = METHODS.get(name)
    assert cls.name == name and cls.paper and cls.reference and cls.__doc__
    assert cls.__module__.rsplit(".", 1)[-1] == name, "one method per module, module named after the method"
    p = cls.Params()
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.__setattr__(next(iter(p.to_dict()), "x"), 1)
    assert cls.Params(**p.to_dict()) == p
    with pytest.raises(InvalidHyperparameter, match="no parameter"):
        cls.Params.from_overrides({"definitely_not_a_param": "1"})
    d = cls.describe()
    assert d["access"] and isinstance(d["params"], list)


@pytest.mark.parametrize("name", NAMES)
def test_numeric_bounds_are_enforced(name):
    cls = METHODS.get(name)
    for f in dataclasses.fields(cls.Params):
        low = f.metadata.get("low")
        if low is not None:
            with pytest.raises(InvalidHyperparameter, match=f.name):
                cls.Params.from_overrides({f.name: str(low - 1)})


@pytest.mark.parametrize("name", NAMES)
def test_runs_does_not_mutate_and_is_deterministic(name, prepared_for):
    cls = METHODS.get(name)
    prep = prepared_for(cls.tasks)  # digits class:3, or a recsys request for recsys-only methods
    params = _small_params(cls)
    before = state_hash(prep.original.model)
    hashes = []
    for _ in range(2):
        ctx = RunContext(seed=1, model_spec=prep.spec, recipe=prep.recipe, store=prep.store,
                         original_manifest=prep.original.manifest)
        res = run_method(cls(params), prep.original.model, prep.dataset, prep.splits, ctx,
                         original_key=prep.original.key)
        assert all(torch.isfinite(p).all() for p in res.model.parameters())
        assert res.time_s > 0
        hashes.append(state_hash(res.model))
    assert state_hash(prep.original.model) == before
    assert hashes[0] == hashes[1], "same seed, same result"
    # a stored result comes back as the method built it (state buffers, ensembles): `expunge evaluate` and the
    # tier-2 caches rebuild it through get_method(name, stored params).restore
    stored = json.loads(json.dumps(params.to_dict()))
    prep.store.save_model("unlearned", f"contract-{name}", res.model, {"method": name})
    restored, _ = load_result(prep.store, "unlearned", f"contract-{name}", get_method(name, stored), prep.spec)
    x = prep.dataset.test.x[:32]
    with torch.no_grad():
        assert torch.equal(restored(x), res.model.eval()(x))


@pytest.mark.parametrize("name", NAMES)
def test_undeclared_data_is_refused(name, prepared_for):
    cls = METHODS.get(name)
    prep = prepared_for(cls.tasks)
    data = UnlearningData(prep.dataset, prep.splits, cls.access)
    probes = {DataAccess.FORGET: lambda: data.forget_loader(8), DataAccess.RETAIN: lambda: data.retain_loader(8),
              DataAccess.TRAIN_STATS: lambda: data.train_statistic("x", lambda b: {}, batch_size=8)}
    for flag, probe in probes.items():
        if flag not in cls.access:
            with pytest.raises(UndeclaredDataAccess):
                probe()


def test_access_log_counts_served_examples(prepared_class3):
    prep = prepared_class3
    ctx = RunContext(seed=0, model_spec=prep.spec, recipe=prep.recipe, store=prep.store)
    res = run_method(get_method("neggrad", {"epochs": "2"}), prep.original.model, prep.dataset, prep.splits, ctx)
    assert res.access["forget_seen"] == 2 * prep.splits.forget.size and res.access["retain_seen"] == 0


def test_unknown_method_suggests():
    from expunge.errors import UnknownName

    with pytest.raises(UnknownName, match="Did you mean 'neggrad'"):
        METHODS.get("negrad")
