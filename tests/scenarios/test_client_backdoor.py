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


@pytest.mark.slow  # ~20 s: two CLI processes, each training two 20-round federations
def test_runs_from_the_cli(tmp_path):
    """`expunge scenario client_backdoor` and `expunge unlearn --task federated --forget owners:1` on a federation."""
    import json
    import os
    import subprocess
    import sys

    env = {**os.environ, "EXPUNGE_CACHE": str(tmp_path), "OMP_NUM_THREADS": "1"}
    base = ["--data", "digits-fed-iid", "--model", "mlp_small", "--method", "conda", "--json"]
    for args in (["scenario", "client_backdoor", *base], ["unlearn", "--task", "federated", "--forget", "owners:1",
                                                           *base]):
        out = subprocess.run([sys.executable, "-m", "expunge.cli.main", *args], capture_output=True, text=True,
                             env=env, timeout=300)
        assert out.returncode in (0, 3), out.stderr  # 3: "no change" is a legitimate ConDa outcome on a client
        doc = json.loads(out.stdout)
        rec = doc[0] if isinstance(doc, list) else doc
        assert rec["task"] == "federated" and rec["forget"] == "owners:1" and rec["method"] == "conda"
        assert rec["retrain_time_s"] > 0 and "client_mia_auc" in rec["metrics"]
