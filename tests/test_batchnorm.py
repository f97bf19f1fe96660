"""BatchNorm running statistics during unlearning (issue 23): forget-only train-mode steps keep the Original's running
statistics (NegGrad on the ResNet rewrote all 27 BN buffers with forget-set statistics); a method with retain access
still updates them; the run's notes say what was done."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from expunge.data.datasets import from_arrays
from expunge.data.request import Splits
from expunge.methods.base import RunContext, get_method
from expunge.protocols.runner import run_method
from expunge.train import batchnorm
from expunge.train.loop import cross_entropy_loss, make_optimizer, train_loop


class BNNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


@pytest.fixture(scope="module")
def bn_setup():
    rng = np.random.default_rng(0)
    y, y_test = np.repeat(np.arange(4), 40), np.repeat(np.arange(4), 10)
    x = (rng.normal(size=(160, 1, 2, 4)) + 3.0 * y[:, None, None, None]).astype(np.float32)
    x_test = (rng.normal(size=(40, 1, 2, 4)) + 3.0 * y_test[:, None, None, None]).astype(np.float32)
    ds = from_arrays("bn-toy", x_train=x, y_train=y, x_test=x_test, y_test=y_test, class_names=("a", "b", "c", "d"))
    torch.manual_seed(0)
    model = BNNet()
    train_loop(model, [(ds.train.x, ds.train.y)] * 20, cross_entropy_loss, make_optimizer(model.parameters(), "adam",
                                                                                          lr=1e-2))
    model.eval()
    splits = Splits.from_ids(ds, ds.train.ids[ds.train.y.numpy() == 3])  # a whole class: far from the rest
    return ds, model, splits


def _changed(before: dict[str, torch.Tensor], model: nn.Module) -> list[str]:
    after = batchnorm.running_stats(model)
    return [n for n in before if not torch.equal(before[n], after[n])]


def test_neggrad_leaves_batchnorm_running_stats_unchanged(bn_setup):
    ds, model, splits = bn_setup
    before = batchnorm.running_stats(model)
    res = run_method(get_method("neggrad", {"epochs": "3", "lr": "0.01", "batch_size": "16"}), model, ds, splits,
                     RunContext())
    assert _changed(before, res.model) == []  # old code: running_mean, running_var, num_batches_tracked all rewritten
    assert any(not torch.equal(p, q) for p, q in zip(res.model.parameters(), model.parameters(), strict=True))
    assert res.notes["batchnorm"].startswith(batchnorm.FROZEN_NO_RETAIN) and "0 of 3" in res.notes["batchnorm"]
    assert all(m.track_running_stats for m in res.model.modules() if isinstance(m, nn.BatchNorm1d))  # restored


def test_a_retain_using_method_still_updates_them(bn_setup):
    ds, model, splits = bn_setup
    before = batchnorm.running_stats(model)
    res = run_method(get_method("finetune", {"epochs": "1", "batch_size": "16"}), model, ds, splits, RunContext())
    assert len(_changed(before, res.model)) == 3
    assert batchnorm.UPDATED_OTHER in res.notes["batchnorm"] and "3 of 3" in res.notes["batchnorm"]


def test_scrub_max_steps_on_the_forget_loader_are_frozen(bn_setup):
    ds, model, splits = bn_setup
    res = run_method(get_method("scrub", {"epochs": "1", "msteps": "1"}), model, ds, splits, RunContext())
    assert batchnorm.FROZEN_FORGET in res.notes["batchnorm"] and batchnorm.UPDATED_OTHER in res.notes["batchnorm"]


def test_train_loop_freezes_on_forget_batches_and_keeps_batch_statistics_in_the_forward(bn_setup):
    from expunge.data.batches import Batches

    ds, model, splits = bn_setup
    x, y = ds.train.x[splits.forget], ds.train.y[splits.forget]
    frozen, free = [__import__("copy").deepcopy(model) for _ in range(2)]
    before = batchnorm.running_stats(model)
    with batchnorm.recording_batchnorm() as events:
        for m, role in ((frozen, "forget"), (free, None)):
            opt = torch.optim.SGD(m.parameters(), lr=0.1)
            train_loop(m, Batches(x, y, batch_size=len(x), shuffle=False, role=role), cross_entropy_loss, opt)
    assert _changed(before, frozen) == [] and len(_changed(before, free)) == 3
    assert events == {batchnorm.FROZEN_FORGET, batchnorm.UPDATED_OTHER}
    # same gradient step either way: the forward still normalises with the batch's statistics (as the reference)
    for p, q in zip(frozen.parameters(), free.parameters(), strict=True):
        assert torch.allclose(p, q)
    assert frozen.body[2].track_running_stats  # restored after the loop


def test_forwards_of_forget_inputs_are_frozen_whatever_the_batching(bn_setup):
    import copy

    from expunge.data.access import DataAccess, UnlearningData

    ds, model, splits = bn_setup
    data = UnlearningData(ds, splits, DataAccess.FORGET | DataAccess.RETAIN)
    xf, _ = data.forget_tensors()
    xr, _ = data.retain_tensors()
    net = copy.deepcopy(model).train()
    before = batchnorm.running_stats(net)
    with batchnorm.recording_batchnorm() as events, batchnorm.frozen_on_forget_inputs(net):
        net(xf)                                       # a forget forward (NegGrad+'s second forward): frozen
        assert _changed(before, net) == [] and events == {batchnorm.FROZEN_FORGET}
        inner = copy.deepcopy(net)                    # a copy the method makes inside: its hooks see its own layers
        inner(next(iter(data.forget_loader(16)))[0])
        assert _changed(before, inner) == []
        net(xr)                                       # a retain forward: updated
        assert len(_changed(before, net)) == 3
    assert net.body[2].track_running_stats and not net._forward_pre_hooks  # hooks removed, flags restored


def test_neggrad_plus_notes_its_forget_forwards_frozen(bn_setup):
    ds, model, splits = bn_setup
    res = run_method(get_method("neggrad_plus", {"epochs": "1", "batch_size": "16"}), model, ds, splits,
                     RunContext())
    assert batchnorm.FROZEN_FORGET in res.notes["batchnorm"] and batchnorm.UPDATED_OTHER in res.notes["batchnorm"]


def test_a_copy_returned_by_a_forget_only_method_tracks_statistics_again(bn_setup, monkeypatch):
    import copy

    from expunge.methods.neggrad import NegGrad

    ds, model, splits = bn_setup
    monkeypatch.setattr(NegGrad, "unlearn", lambda self, m, data, ctx: copy.deepcopy(m))  # copied while frozen
    res = run_method(get_method("neggrad"), model, ds, splits, RunContext())
    assert all(m.track_running_stats for m in res.model.modules() if isinstance(m, nn.BatchNorm1d))
