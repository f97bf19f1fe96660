"""SISA is exact: after a request the affected constituent is bitwise the one SISA trains from scratch on its shard
minus the forgotten positions (same seeds, same order), every other constituent is bit-identical to before, and
superseded checkpoints are replaced. Deterministic CPU, digits/mlp, one epoch per stage."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from method_helpers import accuracy
from torch import nn

from expunge.data.request import Splits
from expunge.errors import ExpungeError
from expunge.methods._shared.sisa_ensemble import SISAEnsemble, sisa_plan, stage_epochs
from expunge.methods.base import RunContext, get_method
from expunge.methods.sisa import ensemble_from_state, train_sisa_state
from expunge.protocols.runner import run_method
from expunge.store import ArtifactStore
from expunge.train.oracle import model_spec_for

S, R, SEED = 4, 3, 7
PARAMS = {"shards": S, "slices": R, "epochs_per_stage": 1}


@pytest.fixture(scope="module")
def sisa_env(digits, fast_recipe, tmp_path_factory):
    spec = model_spec_for(digits, "mlp")
    tr = digits.train
    full = train_sisa_state(tr.x, tr.y, spec=spec, recipe=fast_recipe, shards=S, slices=R, epochs=[1] * R, seed=SEED)
    return {"spec": spec, "recipe": fast_recipe, "full": full, "store": ArtifactStore(tmp_path_factory.mktemp("s")),
            "order": full["order"].numpy(), "bounds": full["bounds"].numpy()}


def _run(env, digits, positions, model=None, retain_ids=None):
    tr = digits.train
    splits = Splits.from_ids(digits, tr.ids[np.asarray(positions)], retain_ids=retain_ids)
    ctx = RunContext(seed=SEED, model_spec=env["spec"], recipe=env["recipe"], store=env["store"])
    original = model if model is not None else env["spec"].build(seed=0)  # SISA replaces a monolithic original
    return run_method(get_method("sisa", PARAMS), original, digits, splits, ctx, original_key="stub-original")


def _scratch(env, digits, removed_positions):
    removed = np.zeros(len(digits.train), dtype=bool)
    removed[np.asarray(removed_positions)] = True
    tr = digits.train
    return train_sisa_state(tr.x, tr.y, spec=env["spec"], recipe=env["recipe"], shards=S, slices=R, epochs=[1] * R,
                            seed=SEED, removed=removed)


def _stage(state, k, r):
    prefix = f"ckpt.{k}.{r}."
    return {n[len(prefix):]: t for n, t in state.items() if n.startswith(prefix)}


def _max_diff(ens: SISAEnsemble, k: int, r: int, ref: dict[str, torch.Tensor]) -> float:
    got = ens.checkpoint(k, r)
    assert got is not None and got.keys() == ref.keys()
    return max(float((got[n].double() - ref[n].double()).abs().max()) for n in ref)


def _pick(env, shard, slice_, count=3):
    lo, hi = env["bounds"][shard, slice_], env["bounds"][shard, slice_ + 1]
    return env["order"][lo:hi][:count]


def test_plan_is_a_balanced_partition():
    order, bounds = sisa_plan(103, 4, 3, seed=0)
    assert np.array_equal(np.sort(order), np.arange(103))
    shard_sizes = bounds[:, -1] - bounds[:, 0]
    slice_sizes = np.diff(bounds, axis=1)
    assert shard_sizes.sum() == 103 and np.ptp(shard_sizes) <= 1 and np.all(np.ptp(slice_sizes, axis=1) <= 1)
    assert np.array_equal(bounds[1:, 0], bounds[:-1, -1])
    assert not np.array_equal(order, sisa_plan(103, 4, 3, seed=1)[0])


def test_stage_epochs_follow_the_reference_schedule():
    for e_total, slices in [(20, 1), (20, 4), (30, 2), (10, 5), (1, 2)]:
        avg = 2 * slices / (slices + 1) * e_total / slices  # cleverhans sisa.py
        ref = [int((s + 1) * avg) - int(s * avg) for s in range(slices)]
        assert stage_epochs(e_total, slices) == ref
    # compute ~ E full-shard epochs: sum_r e_r * r / R
    e = stage_epochs(20, 4)
    assert abs(sum(er * (r + 1) / 4 for r, er in enumerate(e)) - 20) <= 1


@pytest.mark.parametrize("slice_", [0, R - 1])
def test_affected_constituent_equals_scratch_and_others_are_untouched(sisa_env, digits, slice_):
    env, k = sisa_env, 1
    forget = _pick(env, k, slice_)
    res = _run(env, digits, forget)
    ens, full, scratch = res.model, env["full"], _scratch(env, digits, forget)
    assert isinstance(ens, SISAEnsemble)
    for r in range(1, R + 1):
        assert _max_diff(ens, k, r, _stage(scratch, k, r)) == 0.0  # bitwise equal to SISA from scratch on shard\D_f
        for j in set(range(S)) - {k}:
            assert _max_diff(ens, j, r, _stage(full, j, r)) == 0.0  # other constituents bit-identical
    # stages before the earliest affected slice are reused as is; later ones were replaced (they saw D_f)
    for r in range(1, R + 1):
        changed = _max_diff(ens, k, r, _stage(full, k, r)) > 0
        assert changed == (r > slice_)
    assert res.notes["shards_affected"] == 1 and res.notes["stages_retrained"] == R - slice_
    assert res.notes["checkpoints_deleted"] == R - slice_
    assert bool(ens.sisa_removed[torch.from_numpy(forget)].all()) and int(ens.sisa_removed.sum()) == forget.size
    assert res.access["forget_seen"] == 0 and res.notes["retain_used"] < res.access["retain_seen"]


@pytest.mark.parametrize("retain", ["without-earlier-requests", "complement-of-this-request"])
def test_sequential_requests_equal_one_joint_deletion(sisa_env, digits, retain):
    env, tr = sisa_env, digits.train
    first = _pick(env, 2, 1)
    second = np.concatenate([_pick(env, 2, 0, 2), _pick(env, 0, 2, 2), first[:1]])  # first[:1]: already removed
    res1 = _run(env, digits, first)
    # the sequential scenario's retain set lacks every earlier request's examples; a superset is fine too
    gone = np.union1d(first, second) if retain == "without-earlier-requests" else second
    retain_ids = np.setdiff1d(tr.ids, tr.ids[gone])
    res2 = _run(env, digits, np.setdiff1d(second, first[:1]) if retain == "without-earlier-requests" else second,
                model=res1.model, retain_ids=retain_ids)
    assert res2.notes["continued"] and res2.notes["shards_affected"] == 2
    scratch = _scratch(env, digits, np.union1d(first, second))
    for k in range(S):
        for r in range(1, R + 1):
            assert _max_diff(res2.model, k, r, _stage(scratch, k, r)) == 0.0


def test_vote_and_softmax_aggregation():
    class Fixed(nn.Module):
        def __init__(self, logits):
            super().__init__()
            self.register_buffer("z", torch.tensor(logits))

        def forward(self, x):
            return self.z.expand(len(x), -1)

    members = [Fixed([2.0, 0.0, 0.0]), Fixed([0.0, 3.0, 0.0]), Fixed([0.0, 3.0, 0.0]), Fixed([5.0, 0.0, 0.0])]
    kw = {"order": np.arange(8), "bounds": np.array([[0, 2], [2, 4], [4, 6], [6, 8]]), "epochs": [1], "seed": 0}
    ens = SISAEnsemble(members, 3, smoothing=0.5, **kw)
    out = ens(torch.zeros(2, 1))
    # votes (2, 2, 0): a tie goes to the lowest class index, as np.argmax in the reference's aggregation.py
    assert out.argmax(1).tolist() == [0, 0]
    assert torch.allclose(out.softmax(1)[0], torch.tensor([2.5, 2.5, 0.5]) / 5.5)
    ens.sisa_active[3] = False  # an emptied shard does not vote
    assert ens(torch.zeros(1, 1)).argmax(1).tolist() == [1]
    soft = SISAEnsemble(members, 3, aggregation="softmax", **kw)
    expected = torch.stack([m(torch.zeros(1, 1)).softmax(1) for m in members]).mean(0)
    assert torch.allclose(soft(torch.zeros(1, 1)).exp(), expected)


def test_retain_set_must_be_the_complement(sisa_env, digits):
    tr = digits.train
    forget = _pick(sisa_env, 3, 0)
    retain = np.setdiff1d(tr.ids, tr.ids[forget])[5:]
    with pytest.raises(ExpungeError, match="every training example not forgotten"):
        _run(sisa_env, digits, forget, retain_ids=retain)


def test_forgets_a_class(prepared_class3):
    prep = prepared_class3
    ctx = RunContext(seed=0, model_spec=prep.spec, recipe=prep.recipe, store=prep.store)
    res = run_method(get_method("sisa", {"epochs": "3"}), prep.original.model, prep.dataset, prep.splits, ctx,
                     original_key=prep.original.key)
    tr, te, f = prep.dataset.train, prep.dataset.test, prep.splits.forget
    assert accuracy(res.model, tr.x[f], tr.y[f]) < 0.02  # no constituent has seen a 3 any more
    assert accuracy(res.model, te.x, te.y) > 0.6
    assert res.notes["shards_affected"] == 4 and res.notes["sisa_ensemble_train_s"] > 0


def test_forgotten_random_examples_look_unseen(prepared_random):
    prep = prepared_random
    ctx = RunContext(seed=0, model_spec=prep.spec, recipe=prep.recipe, store=prep.store)
    res = run_method(get_method("sisa", {"epochs": "3"}), prep.original.model, prep.dataset, prep.splits, ctx,
                     original_key=prep.original.key)
    state, _ = prep.store.load_tensors("train_stats", _stat_key(prep, res))
    before = ensemble_from_state(state, prep.spec)
    tr, te, f = prep.dataset.train, prep.dataset.test, prep.splits.forget
    forget_acc, test_acc = accuracy(res.model, tr.x[f], tr.y[f]), accuracy(res.model, te.x, te.y)
    assert abs(forget_acc - test_acc) < 0.1
    assert accuracy(before, tr.x[f], tr.y[f]) > forget_acc  # the ensemble trained on D had memorised them


def _stat_key(prep, res):
    name = res.access["train_stats"][0]
    return prep.store.key({"stat": name, "original": prep.original.key, "batch_size": prep.recipe.batch_size})
