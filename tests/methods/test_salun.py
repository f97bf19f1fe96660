"""SalUn: m = 0 weights end bit-identical to θ₀; k = 1 is random_label exactly; the mask is |Σ g| (not Σ|g|)."""

from __future__ import annotations

import torch
from method_helpers import accuracy
from torch import nn

from expunge.data.batches import Batches
from expunge.methods._shared.saliency import MaskedUpdates, saliency_mask
from expunge.methods.base import RunContext, get_method
from expunge.protocols.runner import run_method
from expunge.store.artifacts import state_hash

SHORT = {"epochs": "2", "lr": "0.05"}


def test_masked_out_weights_are_bit_identical_to_theta0(prepared_random):
    prep = prepared_random
    res = run_method(get_method("salun", {**SHORT, "k": "0.3"}), prep.original.model, prep.dataset, prep.splits,
                     RunContext(seed=3))
    tr = prep.dataset.train
    forget = Batches(tr.x[prep.splits.forget], tr.y[prep.splits.forget], batch_size=256, shuffle=False)
    mask = saliency_mask(prep.original.model, forget, 0.3)
    total = sum(m.numel() for m in mask.values())
    assert res.notes["mask_kept"] == sum(int(m.sum()) for m in mask.values()) == int(0.3 * total)
    moved = 0
    for (name, p0), p1 in zip(prep.original.model.named_parameters(), res.model.parameters(), strict=True):
        m = mask[name]
        assert torch.equal(p1[~m], p0[~m]), name  # weight decay and momentum did not move them
        moved += int((p1[m] != p0[m]).sum())
    assert moved > 0.9 * res.notes["mask_kept"]


def test_k_one_reproduces_random_label(prepared_class3):
    prep = prepared_class3
    a = run_method(get_method("salun", {**SHORT, "k": "1"}), prep.original.model, prep.dataset, prep.splits,
                   RunContext(seed=5))
    b = run_method(get_method("random_label", SHORT), prep.original.model, prep.dataset, prep.splits,
                   RunContext(seed=5))
    assert state_hash(a.model) == state_hash(b.model)


def test_mask_ranks_the_signed_sum_not_the_sum_of_magnitudes():
    # W = 0 ⇒ p = (½, ½) and ∇_W CE = (p − e_y) xᵀ. Batch 1: x = (1, 1), y = 0 → [[-½, -½], [½, ½]];
    # batch 2: x = (-1, 1), y = 0 → [[½, -½], [-½, ½]]. Column 0 cancels (|Σg| = 0 although Σ|g| = 1), column 1 adds.
    model = nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        model.weight.zero_()
    x, y = torch.tensor([[1.0, 1.0], [-1.0, 1.0]]), torch.tensor([0, 0])
    mask = saliency_mask(model, Batches(x, y, batch_size=1, shuffle=False), 0.5)
    assert mask["weight"].tolist() == [[False, True], [False, True]]


def test_masked_updates_freeze_weights_and_state_under_adam_with_decay():
    torch.manual_seed(0)
    model = nn.Linear(4, 3)
    theta0 = {n: p.detach().clone() for n, p in model.named_parameters()}
    mask = {"weight": torch.rand(3, 4) < 0.5, "bias": torch.tensor([True, False, True])}
    opt = torch.optim.Adam(model.parameters(), lr=0.1, weight_decay=0.1)
    x, y = torch.randn(16, 4), torch.randint(0, 3, (16,))
    with MaskedUpdates(model, mask, opt) as masked:
        for _ in range(5):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            assert (model.weight.grad[~mask["weight"]] == 0).all()
            opt.step()
            masked.after_step()
    for n, p in model.named_parameters():
        assert torch.equal(p[~mask[n]], theta0[n][~mask[n]]) and (p[mask[n]] != theta0[n][mask[n]]).all()
        assert all((s[~mask[n]] == 0).all() for s in opt.state[p].values() if s.shape == p.shape)
    assert not model.weight._backward_hooks  # hooks removed on exit


def test_forgets_and_keeps_utility(prepared_class3):
    prep = prepared_class3
    res = run_method(get_method("salun", {"epochs": "3"}), prep.original.model, prep.dataset, prep.splits,
                     RunContext(seed=0))
    tr = prep.dataset.train
    assert accuracy(res.model, tr.x[prep.splits.forget], tr.y[prep.splits.forget]) < 0.3
    assert accuracy(res.model, tr.x[prep.splits.retain], tr.y[prep.splits.retain]) > 0.9
