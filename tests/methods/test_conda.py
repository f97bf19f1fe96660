"""ConDa (spec 4.5): the dampening rule's edge cases, the direction of the ratio and the retain group (the two
reference pitfalls), and the issue's test — ConDa lowers the backdoor's success on a tiny federation."""

from __future__ import annotations

import pytest
import torch

from expunge.data.datasets import load_dataset
from expunge.data.federated import federated_dataset
from expunge.methods.conda import MissingServerRecord, client_groups, dampen
from expunge.scenarios.base import get_scenario
from expunge.store import ArtifactStore
from expunge.train.loop import TrainRecipe


def _dampen(c_f, c_r, **kw):
    p = torch.ones(len(c_f))
    dampen(p, torch.tensor(c_f), torch.tensor(c_r), **{"constant": 0.5, "upper_bound": 0.5, "cutoff": 0.5, **kw})
    return p.tolist()


def test_edge_cases_of_the_rule():
    # only the forgotten client moved it → 0; the forgotten client never moved it (x/0, 0/0) → untouched
    assert _dampen([1.0, 0.0, 0.0], [0.0, 1.0, 0.0]) == [0.0, 1.0, 1.0]


def test_ratio_is_retain_over_forget():
    # forget-dominated (C_r/C_f = 0.2) is dampened by λ·ρ = 0.1; retain-dominated (ρ = 5) is not — the reference's
    # swapped arguments (ρ = C_f/C_r) would do the opposite
    assert _dampen([1.0, 0.2], [0.2, 1.0]) == pytest.approx([0.1, 1.0])


def test_factor_is_capped_and_cutoff_selects():
    assert _dampen([1.0, 1.0], [0.8, 1.6], constant=2.0, upper_bound=0.5, cutoff=1.0) == pytest.approx([0.5, 1.0])


def test_retain_group_is_every_other_client():
    record = {"clients": torch.tensor([0, 3, 5, 7])}
    assert client_groups(record, (3, 7)) == ([1, 3], [0, 2])
    with pytest.raises(MissingServerRecord, match="owners"):
        client_groups(record, (4,))
    with pytest.raises(MissingServerRecord, match="every client"):
        client_groups(record, (0, 3, 5, 7))


def test_conda_lowers_backdoor_success_on_a_tiny_federation(tmp_path):
    # 4 IID clients of digits (one of them the attacker, 1/4 of the data), 6 FedAvg rounds: the Original learns the
    # trigger (ASR ≈ 0.6) and the federation without the attacker does not (≈ 0)
    ds = federated_dataset(load_dataset("digits"), name="digits-fed-4", clients=4, alpha=None)
    sc = get_scenario("client_backdoor", {"trigger_size": 3})
    setting = sc.prepare(ds, "mlp_small", seed=0, store=ArtifactStore(tmp_path), progress=False,
                         recipe=TrainRecipe(epochs=6, batch_size=32, lr=1e-2))
    rec = sc.run(setting, "conda", save=False)[0]
    original, retrain, unlearned = (r["backdoor_asr"] for r in (rec.original, rec.retrain, rec.metrics))
    assert original > 0.3 and retrain < 0.05
    assert unlearned < original / 3 and unlearned < retrain + 0.1
    assert rec.metrics["test_acc"] >= rec.original["test_acc"] - 0.02  # clean accuracy stays
    assert rec.access["forget_seen"] == rec.access["retain_seen"] == 0  # no client's data
    assert rec.notes["dampened"] > 0 and rec.notes["server_record_bytes"] > 0
