"""LAF: no labels (permuting the labels of D_f and D_r gives a bit-identical model), the representation and losses
as specified, the head untouched, and forgetting on digits."""

from __future__ import annotations

import math

import pytest
import torch
from method_helpers import permuted_labels
from torch import nn

from expunge.data.access import DataAccess
from expunge.methods.base import RunContext, get_method
from expunge.methods.laf import (
    LAF,
    LAFParams,
    Representation,
    RepresentationVAE,
    alignment_loss,
    reconstruction_term,
)
from expunge.protocols.runner import run_method
from expunge.store.artifacts import state_hash

SMALL = {"epochs": "2", "vae_epochs": "1", "temperature": "5", "lr_ra": "1e-3"}


def test_permuting_labels_of_forget_and_retain_gives_a_bit_identical_model(prepared_class3):
    prep = prepared_class3
    hashes = []
    for ds in (prep.dataset, permuted_labels(prep.dataset, 0), permuted_labels(prep.dataset, 1)):
        # same positions (splits), different labels on every forget and retain example
        res = run_method(get_method("laf", SMALL), prep.original.model, ds, prep.splits, RunContext(seed=3))
        hashes.append(state_hash(res.model))
    assert hashes[0] == hashes[1] == hashes[2]
    assert hashes[0] != state_hash(prep.original.model)


def test_access_is_forget_and_retain_and_the_head_is_never_updated(prepared_class3):
    prep = prepared_class3
    assert LAF.access == DataAccess.FORGET | DataAccess.RETAIN
    res = run_method(get_method("laf", SMALL), prep.original.model, prep.dataset, prep.splits, RunContext(seed=0))
    assert res.access["train_stats"] == [] and res.access["retain_seen"] > 0
    assert res.notes["representation"] == "head" and res.notes["representation_dim"] == 128
    n_pairs = min(math.ceil(prep.splits.forget.size / 32), math.ceil(prep.splits.retain.size / 32))
    assert res.notes["steps"] == 2 * 2 * n_pairs  # epochs x (ue step + ra step) per batch pair
    original = dict(prep.original.model.named_parameters())
    changed = {n for n, p in res.model.named_parameters() if not torch.equal(p, original[n])}
    assert changed and all(n.startswith("body.") for n in changed)  # the classifier head gets no gradient


def test_representation_is_the_input_of_the_last_linear(prepared_class3):
    model = prepared_class3.original.model
    x = prepared_class3.dataset.train.x[:7]
    rep = Representation(model)
    assert rep.layer == "head"
    with torch.no_grad():
        assert torch.equal(rep(x), model.features(x))
    assert Representation(model, "body.3").layer == "body.3"
    with pytest.raises(ValueError, match=r"nn\.Linear"):
        Representation(nn.Sequential(nn.Flatten()))


def test_alignment_loss_known_values_and_direction():
    torch.manual_seed(0)
    e_r, e_f = torch.randn(4, 6), torch.randn(3, 6)
    # identical representations: c = 0 everywhere -> Σ_i log(1 / Σ_j e^0) = -B_r log B_f
    assert alignment_loss(e_r, e_r, e_f, e_f, 5.0).item() == pytest.approx(-4 * math.log(3), rel=1e-6)
    # pushing forget representations away from the original's lowers the loss; drifting retain ones raises it
    base = alignment_loss(e_r, e_r, e_f, e_f, 5.0)
    assert alignment_loss(e_r, e_r, -e_f, e_f, 5.0) < base
    assert alignment_loss(-e_r, e_r, e_f, e_f, 5.0) > base


def test_reconstruction_term_is_bounded_per_example_and_vae_decodes_the_mean_when_frozen():
    torch.manual_seed(0)
    vae = RepresentationVAE(6, (5, 3), 2).eval()
    e = torch.randn(10, 6)
    value = reconstruction_term(vae, e).item()
    assert 10 * 1.0 <= value < 10 * math.e
    assert torch.equal(vae(e)[0], vae(e)[0])  # no generator -> deterministic (posterior mean)
    recon, mu, _ = vae(e)
    assert torch.equal(recon, vae.decoder(mu))
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    assert torch.equal(vae(e, g1)[0], vae(e, g2)[0]) and not torch.equal(vae(e, g1)[0], recon)


def test_params_validate_the_vae_widths():
    from expunge.errors import InvalidHyperparameter

    with pytest.raises(InvalidHyperparameter, match="vae_hidden"):
        LAFParams(vae_hidden=())
    assert LAFParams.from_overrides({"vae_hidden": "64,16"}).vae_hidden == (64, 16)


def test_laf_forgets_a_class(prepared_class3):
    from expunge.protocols.pipeline import run_step

    # τ = 5 (the paper's random-forgetting value) and a 10x lr_ra: digits' forget class gives 5 batches per epoch,
    # ~40x fewer steps than MNIST's with the paper's budget (see the module docstring); smaller VAE budget for speed
    params = {"temperature": "5", "lr_ra": "1e-3", "epochs": "10", "vae_epochs": "3"}
    record, _ = run_step(prepared_class3, "laf", params, save=False)
    assert record.metrics["forget_acc"] < 0.3
    assert record.metrics["retain_acc"] > 0.85
