"""Shadow pools: balanced membership, batched (torch.func) training equal to one-by-one training, caching/resume."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from expunge.shadows import batched as batched_mod
from expunge.shadows.batched import ModelJob, batching_blocker, train_batched, train_models, train_one
from expunge.shadows.pool import POOL_KIND, SHADOW_KIND, Pool, ShadowSet, membership_matrix, unpack_row
from expunge.train.loop import TrainRecipe
from expunge.train.oracle import model_spec_for

TINY = TrainRecipe(epochs=1, batch_size=64, optimizer="adam", lr=3e-3)


def test_membership_is_balanced_and_seeded():
    m = membership_matrix(8, 101, seed=3)
    assert m.shape == (8, 101) and m.dtype == bool
    assert np.all(m.sum(0) == 4)  # every example IN for exactly K/2 models
    assert np.all(np.abs(m.sum(1) - 101 / 2) < 25)  # each model on about half the pool
    assert np.array_equal(m, membership_matrix(8, 101, seed=3))
    assert not np.array_equal(m, membership_matrix(8, 101, seed=4))
    for bad in (3, 0):
        with pytest.raises(ValueError, match="even"):
            membership_matrix(bad, 10, seed=0)


def _jobs(n_total: int, sizes: tuple[int, ...]) -> list[ModelJob]:
    rng = np.random.default_rng(0)
    return [ModelJob(np.sort(rng.choice(n_total, size=s, replace=False)), 10 + k, 20 + k)
            for k, s in enumerate(sizes)]


@pytest.mark.parametrize(("arch", "recipe"), [
    ("mlp", TrainRecipe(epochs=2, batch_size=16, optimizer="sgd", lr=0.1, momentum=0.0)),
    ("mlp", TrainRecipe(epochs=2, batch_size=16, optimizer="sgd", lr=0.05, momentum=0.9, weight_decay=1e-3)),
    ("mlp", TrainRecipe(epochs=2, batch_size=16, optimizer="adam", lr=3e-3, weight_decay=1e-4, schedule="cosine")),
    ("mlp", TrainRecipe(epochs=2, batch_size=16, optimizer="adamw", lr=3e-3, weight_decay=1e-2)),
    ("cnn", TrainRecipe(epochs=2, batch_size=16, optimizer="adam", lr=3e-3)),
])
def test_batched_equals_one_by_one(digits, arch, recipe):
    """Each model sees its own rows in its own order; sizes differ, so last batches are ragged (padding + masks)."""
    _assert_batched_equals_one_by_one(digits, arch, recipe, (50, 57, 64))


@pytest.mark.parametrize("recipe", [TrainRecipe(epochs=2, batch_size=16, optimizer="adam", lr=3e-3),
                                    TrainRecipe(epochs=2, batch_size=16, optimizer="adam", lr=3e-3,
                                                schedule="cosine")])
def test_batched_equals_one_by_one_when_models_have_different_step_counts(digits, recipe):
    """2 vs 4 steps per epoch: the short model sits out steps, so Adam's per-model step counts and LRs differ
    (the general update path, not the shared-scalar one)."""
    _assert_batched_equals_one_by_one(digits, "mlp", recipe, (30, 57, 64))


def test_vmap_fallback_equals_one_by_one(digits, monkeypatch):
    """When the stacked forward pass is unavailable (unsupported op), vmap trains the same models."""
    monkeypatch.setattr(batched_mod, "compile_stacked_forward", lambda model, x: (None, "forced by the test"))
    recipe = TrainRecipe(epochs=2, batch_size=16, optimizer="adam", lr=3e-3)
    out = _assert_batched_equals_one_by_one(digits, "cnn", recipe, (30, 57, 64), trainer="batched-vmap")
    assert out[0].log["stacked_forward_unavailable"] == "forced by the test"


def _assert_batched_equals_one_by_one(digits, arch, recipe, sizes, trainer="batched-stacked"):
    spec = model_spec_for(digits, arch)
    x, y = digits.train.x, digits.train.y
    jobs = _jobs(len(x), sizes)
    fast = train_batched(spec, recipe, x, y, jobs)
    for job, b in zip(jobs, fast, strict=True):
        ref = train_one(spec, recipe, x, y, job)
        for (name, p), q in zip(ref.model.state_dict().items(), b.model.state_dict().values(), strict=True):
            # Adam divides by sqrt(v): a gradient entry near 0 turns float rounding (~1e-8) into a visible share of
            # its ±lr step, so parameters agree to a few % of lr (measured 2e-5 at lr 3e-3); a wrong row, order or
            # update would differ by O(lr) = 3e-3
            torch.testing.assert_close(q, p, atol=1e-4 if recipe.optimizer != "sgd" else 1e-5, rtol=0, msg=name)
        assert b.log["steps"] == ref.log["steps"] and b.log["examples_seen"] == ref.log["examples_seen"]
        np.testing.assert_allclose(b.log["epoch_losses"], ref.log["epoch_losses"], atol=1e-5)
        assert b.log["trainer"] == trainer
    # the models really differ from each other (own data, own init)
    assert not torch.allclose(fast[0].model.head.weight, fast[1].model.head.weight)
    return fast


def test_resnet_falls_back_to_one_by_one(digits):
    spec = model_spec_for(digits, "resnet")
    assert "buffers" in str(batching_blocker(spec.build(seed=0), TINY))
    assert batching_blocker(model_spec_for(digits, "cnn").build(seed=0), TINY) is None
    cnn = model_spec_for(digits, "cnn").build(seed=0)
    assert "onecycle" in str(batching_blocker(cnn, TrainRecipe(schedule="onecycle")))
    out = train_models(spec, TINY, digits.train.x, digits.train.y, _jobs(len(digits.train), (40,)))
    assert out[0].log["trainer"] == "one-by-one" and "buffers" in out[0].log["batching_blocker"]
    with pytest.raises(ValueError, match="buffers"):
        train_batched(spec, TINY, digits.train.x, digits.train.y, _jobs(len(digits.train), (40,)))


def test_shadow_set_is_cached_per_shadow_and_resumes(digits, store, monkeypatch):
    spec = model_spec_for(digits, "mlp")
    pool = Pool.of(digits)
    assert len(pool) == len(digits.train) + len(digits.test) and pool.n_train == len(digits.train)
    calls: list[int] = []
    real = batched_mod.train_models

    def spy(*args, **kwargs):
        calls.append(len(args[4]))
        return real(*args, **kwargs)

    monkeypatch.setattr(batched_mod, "train_models", spy)
    shadows = ShadowSet(digits, pool, spec, TINY, 4, seed=0, store=store)
    assert shadows.ensure(group_size=2) == 4 and calls == [2, 2]
    # the membership matrix is recorded with the pool and in each shadow's manifest
    _, manifest = store.load_tensors(POOL_KIND, shadows.key)
    rows = np.stack([unpack_row(r, len(pool)) for r in manifest["membership_rows"]])
    assert np.array_equal(rows, shadows.membership) and manifest["models_per_example"] == 2
    _, m1 = store.load_tensors(SHADOW_KIND, shadows.shadow_key(1))
    assert np.array_equal(unpack_row(m1["membership_row"], len(pool)), shadows.membership[1])
    assert m1["n_train_examples"] == int(shadows.membership[1].sum())
    assert m1["train_log"]["trainer"] == "batched-stacked"
    # an interrupted run: one shadow missing -> only that one is trained
    shutil.rmtree(store.path(SHADOW_KIND, shadows.shadow_key(2)))
    again = ShadowSet(digits, pool, spec, TINY, 4, seed=0, store=store)
    assert again.key == shadows.key and again.missing() == [2]
    assert again.ensure() == 1 and calls == [2, 2, 1]
    assert again.ensure() == 0 and calls == [2, 2, 1]
    torch.testing.assert_close(again.model(2).head.weight, shadows.model(2).head.weight, atol=1e-5, rtol=0)
    # shadow k's world: it trains on its IN rows; other rows are its test split
    sds = again.shadow_dataset(3)
    assert np.array_equal(sds.train.ids, pool.ids[shadows.membership[3]])
    assert np.intersect1d(sds.train.ids, sds.test.ids).size == 0 and len(sds.train) + len(sds.test) == len(pool)
    # a different K or seed is a different pool
    assert ShadowSet(digits, pool, spec, TINY, 6, seed=0, store=store).key != shadows.key
    assert ShadowSet(digits, pool, spec, TINY, 4, seed=1, store=store).key != shadows.key
