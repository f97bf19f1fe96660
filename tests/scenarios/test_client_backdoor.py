"""client_backdoor: the trigger goes to exactly the client owners:1 forgets, and a stored run's dataset rebuilds."""

from __future__ import annotations

import numpy as np
import pytest

from expunge.data.datasets import load_dataset
from expunge.data.request import ForgetRequest
from expunge.errors import InvalidForgetRequest
from expunge.scenarios.client_backdoor import ClientBackdoor, backdoor_client, forgotten_client


def test_poisons_only_the_forgotten_client():
    clean = load_dataset("digits-fed-iid")
    client = forgotten_client(clean, 5)
    poisoned, probe = backdoor_client(clean, client=client, fraction=0.5, target=0, seed=5)
    changed = np.flatnonzero((poisoned.train.fine != clean.train.fine)
                             | (poisoned.train.x != clean.train.x).flatten(1).any(1).numpy())
    assert changed.size > 0 and set(clean.train.owners[changed]) == {client}
    assert (poisoned.train.fine[changed] == 0).all() and (clean.train.fine[changed] != 0).all()
    splits = ForgetRequest("owners", n_owners=1).resolve(poisoned, seed=5)
    assert set(poisoned.train.owners[splits.forget]) == {client}
    assert poisoned.fingerprint != clean.fingerprint and poisoned.task == "federated"
    assert len(probe.x) == int((clean.test.y.numpy() != 0).sum())
    rebuilt, extras = ClientBackdoor.rebuild_dataset(poisoned.derivation, None)
    assert rebuilt.fingerprint == poisoned.fingerprint and "backdoor" in extras


def test_refuses_a_client_with_nothing_to_poison():
    clean = load_dataset("digits-fed-iid")
    with pytest.raises(InvalidForgetRequest, match="poisons none"):
        backdoor_client(clean, client=10_000, fraction=0.5, target=0)
