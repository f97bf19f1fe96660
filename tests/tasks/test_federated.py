"""The federated task: FedAvg over the owners as clients, the server record, the trainer hook's default, and the
federated datasets' partitions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from expunge.data.datasets import load_dataset
from expunge.data.federated import dirichlet_partition, iid_partition
from expunge.errors import InvalidDataset
from expunge.models import ModelSpec
from expunge.tasks import get_task
from expunge.tasks.federated import clients_of, fedavg, record_table, weighted_average


def test_default_hook_is_plain_fit():
    calls = []

    def fit_on(model, positions, *, seed, epochs):
        calls.append((positions.tolist(), seed, epochs))
        return {"wall_s": 0.0}

    log, state = get_task("classification").train_from_scratch(torch.nn.Linear(2, 2), np.arange(3), fit_on,
                                                                owners=None, seed=7, epochs=4)
    assert calls == [([0, 1, 2], 7, 4)] and log == {"wall_s": 0.0} and state == {}


def test_weighted_average_known_answer():
    a = {"w": torch.tensor([0.0, 2.0]), "n": torch.tensor(3)}
    b = {"w": torch.tensor([4.0, 6.0]), "n": torch.tensor(5)}
    out = weighted_average([a, b], np.array([0.25, 0.75]))
    assert torch.allclose(out["w"], torch.tensor([3.0, 5.0])) and int(out["n"]) == 3  # integers from the first


def _fake_fit(shift_of):
    """A 'local training' that adds a client-specific constant to every parameter (client read from positions)."""
    def fit_on(model, positions, *, seed, epochs):
        with torch.no_grad():
            for p in model.parameters():
                p += shift_of(positions)
        return {"steps": 1, "examples_seen": len(positions), "epoch_losses": [1.0]}
    return fit_on


def test_fedavg_known_answer_and_record():
    owners = np.array([0, 0, 0, 1, 2, 2])  # client sizes 3, 1, 2
    shift = {0: 1.0, 1: -2.0, 2: 4.0}
    model = torch.nn.Linear(1, 1, bias=False)
    torch.nn.init.zeros_(model.weight)
    positions = np.arange(6)
    log, rec = fedavg(model, positions, _fake_fit(lambda pos: shift[int(owners[pos[0]])]), owners=owners, seed=0,
                      rounds=3)
    step = (3 * 1.0 + 1 * -2.0 + 2 * 4.0) / 6  # FedAvg weights n_k / n
    assert model.weight.item() == pytest.approx(3 * step)
    c0 = record_table(rec, "contrib_initial")["weight"][:, 0, 0]
    # client k's local model in round t is (t-1)·step + shift_k: |deviation from w0| summed over t = 1..3
    expected = [sum(abs(t * step + shift[k]) for t in range(3)) for k in (0, 1, 2)]
    assert c0.tolist() == pytest.approx(expected)
    assert record_table(rec, "contrib_round_start")["weight"][:, 0, 0].tolist() == pytest.approx(
        [3 * abs(shift[k]) for k in (0, 1, 2)])
    assert rec["history_rounds"].tolist() == [0, 2]  # FedEraser's Δt = 2
    assert record_table(rec, "history_global")["weight"][:, 0, 0].tolist() == pytest.approx([0.0, 2 * step])
    assert log["federation"]["clients"] == 3 and log["epochs"] == 3.0
    assert log["federation"]["server_bytes"] > 0


def test_fedavg_without_a_client_leaves_it_out():
    owners = np.array([0, 0, 1, 1, 2])
    seen = []

    def fit_on(model, positions, *, seed, epochs):
        seen.append(int(owners[positions[0]]))
        return {}

    _, rec = fedavg(torch.nn.Linear(1, 1), np.array([0, 1, 4]), fit_on, owners=owners, seed=0, rounds=1)
    assert sorted(set(seen)) == [0, 2] and rec["clients"].tolist() == [0, 2]
    assert {k: v.tolist() for k, v in clients_of(np.array([0, 1, 4]), owners).items()} == {0: [0, 1], 2: [4]}


def test_fedavg_trains_a_real_federation_deterministically():
    ds = load_dataset("digits-fed-iid")
    spec = ModelSpec("mlp_small", ds.input_shape, ds.num_outputs)
    task = get_task("federated")

    def fit_on(model, positions, *, seed, epochs):
        from expunge.data.batches import Batches
        from expunge.train.loop import TrainRecipe, fit

        b = Batches(ds.train.x[positions], ds.train.y[positions], batch_size=32, seed=seed)
        return fit(model, b, TrainRecipe(epochs=epochs, batch_size=32, lr=1e-2), seed=seed).to_dict()

    from expunge.train.monitor import Monitor

    states = []
    for _ in range(2):
        m = spec.build(seed=0)
        with Monitor():  # one outer block, as the oracle trains: the inner fits skip the free-memory release
            task.train_from_scratch(m, np.arange(len(ds.train)), fit_on, owners=ds.train.owners, seed=3, epochs=2)
        states.append(torch.cat([p.flatten() for p in m.parameters()]))
    assert torch.equal(states[0], states[1])


def test_partitions():
    labels = np.repeat(np.arange(10), 100)
    iid = iid_partition(1000, 10)
    assert np.bincount(iid).tolist() == [100] * 10
    assert np.array_equal(iid, iid_partition(1000, 10))  # fixed seed: a property of the dataset

    def skew(part):  # mean over clients of the largest class share
        return np.mean([np.bincount(labels[part == k], minlength=10).max() / (part == k).sum() for k in range(10)])

    d01, d05 = dirichlet_partition(labels, 10, 0.1), dirichlet_partition(labels, 10, 0.5)
    assert np.bincount(d01, minlength=10).min() >= 10 and np.bincount(d05, minlength=10).min() >= 10
    assert skew(d01) > skew(d05) > skew(iid)
    with pytest.raises(InvalidDataset, match="alpha"):
        dirichlet_partition(labels[:50], 10, 0.01, max_draws=5)


def test_federated_datasets_are_registered():
    ds = load_dataset("digits-fed-dir0.5")
    assert ds.task == "federated" and ds.num_classes == 10 and len(np.unique(ds.train.owners)) == 10
    assert ds.fingerprint != load_dataset("digits").fingerprint != load_dataset("digits-fed-iid").fingerprint


def test_the_server_record_is_stored_with_the_original_and_purged_with_it(tmp_path):
    from expunge.data.access import TRAINING_STATE, statistic_key
    from expunge.store import ArtifactStore
    from expunge.store.purge import plan_original
    from expunge.train.loop import TrainRecipe
    from expunge.train.oracle import model_spec_for, train_original

    store = ArtifactStore(tmp_path)
    ds = load_dataset("digits-fed-iid")
    original = train_original(ds, model_spec_for(ds, "mlp_small"), TrainRecipe(epochs=1, batch_size=64), seed=0,
                              store=store, progress=False)
    note = original.manifest["training_state"]
    assert note["key"] == store.key(statistic_key(TRAINING_STATE, original.key, 0)) and note["nbytes"] > 0
    assert original.manifest["train_log"]["federation"]["clients"] == 10
    plan = plan_original(store, original.key)
    assert {(i.kind, i.key) for i in plan.items} == {("original", original.key), ("train_stats", note["key"])}


def test_the_hook_keeps_todays_trainer_bit_for_bit(tmp_path):
    """A classification Original trained through Task.train_from_scratch is the model plain fit trains."""
    from expunge._seeds import derive_seed
    from expunge.store import ArtifactStore
    from expunge.store.artifacts import state_hash
    from expunge.train.loop import TrainRecipe, fit
    from expunge.train.oracle import model_spec_for, retain_batches, train_original

    ds, recipe = load_dataset("digits"), TrainRecipe(epochs=2, batch_size=64)
    spec = model_spec_for(ds, "mlp")
    original = train_original(ds, spec, recipe, seed=4, store=ArtifactStore(tmp_path), progress=False)
    direct = spec.build(seed=derive_seed(4, "original-init"))
    order = derive_seed(4, "original-order")
    fit(direct, retain_batches(ds, np.arange(len(ds.train)), recipe, order), recipe, seed=order)
    assert state_hash(direct) == state_hash(original.model) and "training_state" not in original.manifest
