"""FedEraser: the calibrated step's known answer, and the replay without the client on a tiny federation."""

from __future__ import annotations

import pytest
import torch

from expunge.methods.federaser import calibrated_step


def test_calibrated_step_takes_the_old_length_and_the_new_direction():
    new_global, old_global = {"w": torch.tensor([1.0, 1.0])}, {"w": torch.tensor([0.0, 0.0])}
    new_mean = {"w": torch.tensor([1.0, 3.0])}  # new update (0, 2): direction (0, 1)
    old_mean = {"w": torch.tensor([3.0, 4.0])}  # old update (3, 4): length 5
    assert calibrated_step(new_global, new_mean, old_global, old_mean)["w"].tolist() == pytest.approx([1.0, 6.0])
    # a zero calibration update leaves the tensor where it is
    assert calibrated_step(new_global, new_global, old_global, old_mean)["w"].tolist() == [1.0, 1.0]


def test_replays_without_the_client(prepared_federated):
    from expunge.methods.base import RunContext, get_method
    from expunge.protocols.runner import run_method

    prep = prepared_federated
    ctx = RunContext(seed=0, model_spec=prep.spec, recipe=prep.recipe, store=prep.store,
                     original_manifest=prep.original.manifest)
    res = run_method(get_method("federaser"), prep.original.model, prep.dataset, prep.splits, ctx,
                     original_key=prep.original.key)
    # rounds 2 and 4 are calibrated with half a local epoch each: about one pass over the retain set in all
    assert res.access["forget_seen"] == 0 and 0.9 < res.access["retain_seen"] / prep.splits.retain.size < 1.5
    assert res.notes["replayed_rounds"] == 3 and res.notes["calibration_steps"] > 0  # rounds 0, 2, 4 of 5
    assert res.notes["forgotten_clients"] == list(prep.dataset.train.owners[prep.splits.forget[:1]])
