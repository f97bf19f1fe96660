"""fisher: θ' = θ + σ⊙n with σ² = α·min(1/(F + 1e-8), v_max) (F the retain-set true Fisher); the forgotten class's head
rows are reset to ~0 for class requests only; the shared per-example Fisher matches an explicit per-example loop."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from method_helpers import split_accuracy
from torch import nn

from expunge.data.batches import Batches
from expunge.methods._shared.fisher import _layer_names, per_example_fisher
from expunge.methods.base import RunContext, get_method
from expunge.methods.fisher import HEAD_VAR, noise_std, output_layer
from expunge.protocols.runner import run_method
from expunge.store.artifacts import state_hash


def _explicit_fisher(model, x, y, kind):
    out = {n: torch.zeros_like(p) for n, p in model.named_parameters()}
    for i in range(len(x)):
        lp = F.log_softmax(model(x[i:i + 1]), -1)[0]
        for c in range(lp.numel()) if kind == "true" else [int(y[i])]:
            g = torch.autograd.grad(lp[c], list(model.parameters()), retain_graph=True)
            w = float(lp[c].detach().exp()) if kind == "true" else 1.0
            for (n, _), gi in zip(model.named_parameters(), g, strict=True):
                out[n] += w * gi**2 / len(x)
    return out


def _arch(name):
    if name == "mlp":  # hooked fast path (Linear)
        return nn.Sequential(nn.Flatten(), nn.Linear(36, 7), nn.ReLU(), nn.Linear(7, 3)), True
    if name == "cnn_bn":  # hooked fast path (Conv2d with stride/padding/dilation, BatchNorm2d, Linear)
        return nn.Sequential(nn.Conv2d(1, 3, 3, stride=2, padding=1), nn.BatchNorm2d(3), nn.ReLU(),
                             nn.Conv2d(3, 2, 2, padding=1, dilation=2), nn.Flatten(), nn.Linear(18, 3)), True
    # generic vmap path: Conv1d is not a hooked layer
    return nn.Sequential(nn.Flatten(), nn.Unflatten(1, (1, 36)), nn.Conv1d(1, 2, 3), nn.ReLU(), nn.Flatten(),
                         nn.Linear(68, 3)), False


@pytest.mark.parametrize("kind", ["true", "empirical"])
@pytest.mark.parametrize("arch", ["mlp", "cnn_bn", "conv1d"])
def test_per_example_fisher_matches_an_explicit_loop(kind, arch):
    torch.manual_seed(0)
    model, hooked = _arch(arch)
    if arch == "cnn_bn":  # non-trivial running statistics
        model[1].running_mean.uniform_(-0.5, 0.5)
        model[1].running_var.uniform_(0.5, 2.0)
    model.eval()
    assert (_layer_names(model) is not None) == hooked
    x, y = torch.randn(11, 1, 6, 6), torch.randint(0, 3, (11,))
    expected = _explicit_fisher(model, x, y, kind)
    for fast in (True, False):
        got = per_example_fisher(model, Batches(x, y, batch_size=4, shuffle=False), kind=kind, max_chunk_elems=64,
                                 fast=fast)
        for n in expected:
            assert torch.allclose(got[n], expected[n], rtol=1e-5, atol=1e-8), (arch, kind, fast, n)


def test_noise_std_formula():
    f = torch.tensor([0.0, 1e-4, 1.0, 100.0])
    expected = torch.tensor([(1e-6 * 1e3) ** 0.5, (1e-6 * 1e3) ** 0.5, (1e-6 / (1.0 + 1e-8)) ** 0.5,
                             (1e-6 / (100 + 1e-8)) ** 0.5])
    assert torch.allclose(noise_std(f, 1e-6, 1e3), expected)


def test_noise_has_the_declared_variance_and_the_forgotten_head_row_is_reset(prepared_class3):
    prep = prepared_class3
    alpha = 1e-5
    res = run_method(get_method("fisher", {"alpha": str(alpha)}), prep.original.model, prep.dataset, prep.splits,
                     RunContext(seed=7))
    tr = prep.dataset.train
    retain = Batches(tr.x[prep.splits.retain], tr.y[prep.splits.retain], batch_size=128, shuffle=False)
    fisher = per_example_fisher(prep.original.model, retain)
    head = output_layer(res.model, 10)
    zs = []
    for (name, p0), p1 in zip(prep.original.model.named_parameters(), res.model.parameters(), strict=True):
        z = (p1 - p0).detach() / noise_std(fisher[name], alpha, 1e3)
        if p1 is head.weight or p1 is head.bias:
            assert (p1[3].abs() < 6 * HEAD_VAR**0.5).all()  # mean 0, std 0.01 for the forgotten class 3
            z = torch.cat([z[:3].flatten(), z[4:].flatten()])
        zs.append(z.flatten())
    z = torch.cat(zs)
    assert abs(float(z.mean())) < 0.02 and abs(float(z.std()) - 1.0) < 0.02  # ~50k standard normal draws
    assert res.notes["head_rows_reset"] == 2


def test_no_head_reset_for_random_requests_or_when_disabled(prepared_random, prepared_class3):
    r = run_method(get_method("fisher", {}), prepared_random.original.model, prepared_random.dataset,
                   prepared_random.splits, RunContext(seed=0))
    assert r.notes["head_rows_reset"] == 0
    c = run_method(get_method("fisher", {"reset_forgotten_head": "false", "fisher_fraction": "0.2"}),
                   prepared_class3.original.model, prepared_class3.dataset, prepared_class3.splits, RunContext(seed=0))
    assert c.notes["head_rows_reset"] == 0 and c.model.head.weight[3].abs().mean() > 0.02


def test_seed_changes_the_noise(prepared_random):
    prep = prepared_random
    hashes = {state_hash(run_method(get_method("fisher", {"fisher_fraction": "0.2"}), prep.original.model,
                                    prep.dataset, prep.splits, RunContext(seed=s)).model) for s in (0, 1)}
    assert len(hashes) == 2


def test_forgets_a_class_and_keeps_utility(prepared_class3):
    prep = prepared_class3
    res = run_method(get_method("fisher", {}), prep.original.model, prep.dataset, prep.splits, RunContext(seed=0))
    acc_f, acc_r = split_accuracy(res.model, prep, "forget"), split_accuracy(res.model, prep, "retain")
    assert acc_f < 0.1 and acc_r > 0.9
