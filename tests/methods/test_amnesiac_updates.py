"""amnesiac_updates: θ′ = θ_T − Σ Δθ_b over logged batches holding forget data; the log comes from a bitwise replay."""

from __future__ import annotations

import copy
import functools

import numpy as np
import pytest
import torch
from torch import nn

from expunge._seeds import derive_seed
from expunge.data.batches import Batches
from expunge.data.request import ForgetRequest
from expunge.methods.amnesiac_updates import ReplayMismatch, replay_training, subtract_updates
from expunge.methods.base import RunContext, get_method
from expunge.protocols.runner import run_method
from expunge.store.artifacts import state_hash
from expunge.train.loop import TrainRecipe, cross_entropy_loss, make_optimizer, train_loop

PLAIN_SGD = TrainRecipe(epochs=1, batch_size=10, optimizer="sgd", lr=0.1, momentum=0.0)


def _toy():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(40, 4, generator=g), torch.randint(0, 3, (40,), generator=g)
    torch.manual_seed(1)
    return x, y, nn.Linear(4, 3)


def _batch_positions(n: int, seed: int) -> list[torch.Tensor]:
    """The positions of each batch of the replay's first epoch (same permutation as the original's training)."""
    return [b[2] for b in Batches(torch.zeros(n), torch.zeros(n), torch.arange(n), batch_size=10, seed=seed)]


def _theta_after(init: nn.Module, x, y, steps: int, seed: int) -> nn.Module:
    model = copy.deepcopy(init)
    opt = make_optimizer(model.parameters(), "sgd", lr=0.1, momentum=0.0)
    train_loop(model, Batches(x, y, batch_size=10, seed=seed), cross_entropy_loss, opt, max_steps=steps)
    return model


def test_one_logged_last_batch_with_plain_sgd_restores_theta_before_it_exactly():
    x, y, init = _toy()
    last = _batch_positions(40, seed=7)[-1]
    is_forget = torch.zeros(40, dtype=torch.bool)
    is_forget[last[0]] = True  # one forget example, in the last batch only
    trained = copy.deepcopy(init)
    log = replay_training(trained, x, y, is_forget, PLAIN_SGD, order_seed=7)
    assert log.affected == 1 and log.steps == 4
    assert state_hash(trained) == state_hash(_theta_after(init, x, y, 4, seed=7))  # the replay is the training
    subtract_updates(trained, log.sums)
    before_last = _theta_after(init, x, y, 3, seed=7)
    for p, q in zip(trained.parameters(), before_last.parameters(), strict=True):
        assert torch.equal(p, q)


def test_one_logged_middle_batch_subtracts_exactly_its_update():
    x, y, init = _toy()
    second = _batch_positions(40, seed=7)[1]
    is_forget = torch.zeros(40, dtype=torch.bool)
    is_forget[second] = True
    trained = copy.deepcopy(init)
    log = replay_training(trained, x, y, is_forget, PLAIN_SGD, order_seed=7)
    theta1, theta2 = _theta_after(init, x, y, 1, seed=7), _theta_after(init, x, y, 2, seed=7)
    for (n, _), p1, p2 in zip(trained.named_parameters(), theta1.parameters(), theta2.parameters(), strict=True):
        assert torch.equal(log.sums[n], p2.detach().double() - p1.detach().double())
    expected = {n: p.detach().double() - log.sums[n] for n, p in trained.named_parameters()}
    subtract_updates(trained, log.sums)
    for n, p in trained.named_parameters():
        assert torch.equal(p, expected[n].float())


def _run(prep, splits, seed, store=None, **params):
    manifest = prep.original.manifest if store is not None else None
    ctx = RunContext(seed=seed, model_spec=prep.spec, recipe=prep.recipe, store=store, original_manifest=manifest)
    return run_method(get_method("amnesiac_updates", params), prep.original.model, prep.dataset, splits, ctx,
                      original_key=prep.original.key if store is not None else None)


def test_small_deletion_subtracts_exactly_the_batches_that_held_it(prepared_random):
    prep = prepared_random
    splits = ForgetRequest.parse("owners:1").resolve(prep.dataset, seed=0)
    res = _run(prep, splits, seed=prep.seed, finetune_epochs=0)  # no store: seeds derived from ctx.seed
    order = Batches(torch.arange(len(prep.dataset.train)), batch_size=prep.recipe.batch_size,
                    seed=derive_seed(prep.seed, "original-order"))
    forget = torch.as_tensor(splits.forget)
    expected = sum(bool(torch.isin(b[0], forget).any()) for _ in range(prep.recipe.epochs) for b in order)
    assert res.notes["seeds_from"] == "ctx.seed" and res.notes["forget_rows_matched"] == splits.forget.size
    assert res.notes["affected_batches"] == expected < res.notes["logged_steps"]
    assert res.access["retain_seen"] == 0 and state_hash(res.model) != state_hash(prep.original.model)


def test_replay_that_does_not_reproduce_the_original_is_refused(prepared_random):
    wrong_seed = prepared_random.seed + 1  # no manifest to read the original's seeds from
    with pytest.raises(ReplayMismatch, match="bit for bit"):
        _run(prepared_random, prepared_random.splits, seed=wrong_seed)


def test_forgets_and_fine_tune_recovers_with_log_cached_per_request(prepared_random):
    prep = prepared_random
    first = _run(prep, prep.splits, seed=prep.seed + 5, store=prep.store, finetune_epochs=0)
    second = _run(prep, prep.splits, seed=prep.seed + 5, store=prep.store, finetune_epochs=2)
    assert first.notes["seeds_from"] == "manifest"  # from the original's manifest although ctx.seed differs
    assert second.access["precompute_s"] == 0.0 and second.time_s < first.time_s + first.access["precompute_s"]
    tr = prep.dataset.train

    def acc(model, pos):
        with torch.no_grad():
            return float((model(tr.x[pos]).argmax(1) == tr.y[pos]).float().mean())

    f, r = prep.splits.forget, prep.splits.retain
    assert acc(first.model, f) < acc(prep.original.model, f) - 0.3  # ~all batches held forget data: back near init
    assert acc(second.model, r) > acc(first.model, r) + 0.3


def _ids_splits(prep, ids):
    from expunge.data.request import Splits

    return Splits.from_ids(prep.dataset, np.asarray(ids, dtype=np.int64), seed=0)


def test_sequential_requests_equal_one_joint_request_and_never_subtract_a_batch_twice(prepared_random, tmp_path):
    from expunge.protocols.runner import load_result
    from expunge.store import ArtifactStore

    prep = prepared_random
    ids = prep.dataset.train.ids
    first, second = ids[:3], ids[3:6]  # a few examples each: some batches hold both, most neither
    run = functools.partial(_run, prep, seed=prep.seed, finetune_epochs=0)
    step1 = run(_ids_splits(prep, first))
    ctx = RunContext(seed=prep.seed, model_spec=prep.spec, recipe=prep.recipe)
    step2 = run_method(get_method("amnesiac_updates", {"finetune_epochs": 0}), step1.model, prep.dataset,
                       _ids_splits(prep, second), ctx)
    joint = run(_ids_splits(prep, np.concatenate([first, second])))
    n1, n2, nj = (r.notes["affected_batches"] for r in (step1, step2, joint))
    assert step2.notes["subtracted_before"] == n1 and n1 + n2 == nj  # shared batches removed once
    assert torch.equal(step2.model.amnesiac_subtracted, joint.model.amnesiac_subtracted)
    for p, q in zip(step2.model.parameters(), joint.model.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-6)  # float32 rounding of the intermediate model only
    # the state survives a save/load, so a stored result can be evaluated or continued
    store = ArtifactStore(tmp_path)
    store.save_model("unlearned", "k", step2.model, {"method": "amnesiac_updates"})
    restored, _ = load_result(store, "unlearned", "k", get_method("amnesiac_updates"), prep.spec)
    assert state_hash(restored) == state_hash(step2.model)


def test_sequential_state_from_another_recipe_is_refused(prepared_random):
    prep = prepared_random
    step1 = _run(prep, _ids_splits(prep, prep.dataset.train.ids[:3]), seed=prep.seed, finetune_epochs=0)
    step1.model.amnesiac_subtracted = torch.zeros(5, dtype=torch.bool)  # wrong length: not this training's log
    with pytest.raises(ReplayMismatch, match="logged steps"):
        run_method(get_method("amnesiac_updates", {"finetune_epochs": 0}), step1.model, prep.dataset,
                   _ids_splits(prep, prep.dataset.train.ids[3:6]),
                   RunContext(seed=prep.seed, model_spec=prep.spec, recipe=prep.recipe))
