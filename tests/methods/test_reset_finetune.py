"""reset_finetune: the damage phase really re-initialises (or shrinks) what it says before any repair, the selection
is seeded, BatchNorm statistics are re-estimated on retained data, and the repair reads only retained data and
restores utility."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from expunge.errors import ExpungeError
from expunge.methods.base import RunContext, get_method
from expunge.methods.reset_finetune import ResetFinetuneParams, choose_layers, damage, reestimate_batchnorm
from expunge.models import build_model
from expunge.protocols.pipeline import run_step
from expunge.protocols.runner import run_method


def cnn() -> nn.Module:
    return build_model("cnn", input_shape=(1, 8, 8), num_classes=10, seed=0)


def changed(a: nn.Module, b: nn.Module) -> set[str]:
    """Module names (prefix of the parameter name) whose parameters differ between two models."""
    pb = dict(b.named_parameters())
    return {n.rsplit(".", 1)[0] for n, t in a.named_parameters() if not torch.equal(t, pb[n])}


def test_reset_damage_reinitialises_exactly_the_chosen_layers_before_any_repair() -> None:
    model = cnn()
    before = copy.deepcopy(model)
    p = ResetFinetuneParams(reset_share=0.5)
    chosen = damage(model, p, cycle=1, seed=3)
    assert len(chosen) == 2  # half of conv1, conv2, fc, head
    assert changed(model, before) == set(chosen)
    again = copy.deepcopy(before)
    assert damage(again, p, cycle=1, seed=3) == chosen and changed(again, model) == set()  # seeded, bit for bit


def test_the_share_grows_over_cycles_and_the_selection_varies_with_the_seed() -> None:
    model = cnn()
    p = ResetFinetuneParams(reset_share=1.0, cycles=4)
    assert [len(choose_layers(model, p, c, seed=0)) for c in (1, 2, 3, 4)] == [1, 2, 3, 4]
    picks = {tuple(choose_layers(model, ResetFinetuneParams(reset_share=0.25), 1, seed=s)) for s in range(12)}
    assert len(picks) > 1


def test_named_layers_override_the_random_share_and_unknown_names_are_refused() -> None:
    model = cnn()
    before = copy.deepcopy(model)
    assert damage(model, ResetFinetuneParams(reset_layers=("head",)), cycle=1, seed=0) == ["head"]
    assert changed(model, before) == {"head"}
    with pytest.raises(ExpungeError, match=r"\['nope'\].*conv1"):
        damage(model, ResetFinetuneParams(reset_layers=("nope",)), cycle=1, seed=0)


def test_shrink_and_perturb_is_lambda_theta_plus_sigma_noise() -> None:
    model = cnn()
    before = copy.deepcopy(model)
    damage(model, ResetFinetuneParams(damage="shrink", shrink=0.5, perturb=0.01), cycle=1, seed=0)
    for (name, t), t0 in zip(model.named_parameters(), before.parameters(), strict=True):
        resid = (t - 0.5 * t0).detach()
        assert abs(float(resid.std()) - 0.01) < 0.004 + 0.5 / t.numel() ** 0.5 * 0.01, name
        assert abs(float(resid.mean())) < 0.01


def test_batchnorm_statistics_are_recomputed_on_the_given_batches() -> None:
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    x = torch.randn(64, 3) * 5 + 2
    assert reestimate_batchnorm(model, lambda: [(x[:32],), (x[32:],)])
    with torch.no_grad():
        h = model[0](x)
    torch.testing.assert_close(model[1].running_mean, h.mean(0))
    assert model[1].momentum == 0.1 and not reestimate_batchnorm(nn.Linear(2, 2), lambda: [])


def test_reads_only_retained_data_and_restores_utility(prepared_random) -> None:
    prep = prepared_random
    m = get_method("reset_finetune", {"epochs": "3", "reset_share": "0.3"})
    res = run_method(m, prep.original.model, prep.dataset, prep.splits, RunContext(seed=0))
    assert res.access["forget_seen"] == 0 and res.access["retain_seen"] == 3 * prep.splits.retain.size
    assert res.notes["repair_epochs"] == 3 and len(res.notes["reset_layers"][0]) >= 1
    record, _ = run_step(prep, "reset_finetune", {"epochs": "3", "reset_share": "0.3"}, save=False)  # 1 of 3 layers
    assert record.metrics["test_acc"] > 0.8 and record.metrics["retain_acc"] > 0.85  # chance is 0.1
