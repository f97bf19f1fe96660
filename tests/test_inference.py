"""The shared inference helpers (expunge.models.inference): mode save/restore that survives exceptions, chunked logits,
model accuracy."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from expunge.models.inference import accuracy, eval_mode, model_mode, predict_logits


class Boom(RuntimeError):
    pass


def _models() -> list[nn.Module]:
    a, b, c = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5)), nn.Linear(2, 2), nn.BatchNorm1d(2)
    a.train(), b.eval(), c.train()
    return [a, b, c]


def test_eval_mode_sets_eval_and_restores_each_models_mode():
    models = _models()
    with eval_mode(*models):
        assert not any(m.training for m in models)
        assert not any(sub.training for sub in models[0].modules())  # submodules too
    assert [m.training for m in models] == [True, False, True]
    assert all(sub.training for sub in models[0].modules())


def test_eval_mode_restores_after_an_exception():
    models = _models()
    with pytest.raises(Boom), eval_mode(*models):
        assert not models[0].training
        raise Boom
    assert [m.training for m in models] == [True, False, True]


def test_model_mode_train_restores_after_an_exception():
    models = _models()
    with pytest.raises(Boom), model_mode(*models, training=True):
        assert all(m.training for m in models)
        raise Boom
    assert [m.training for m in models] == [True, False, True]


def test_eval_mode_nested_and_no_models():
    m = nn.Linear(2, 2).train()
    with eval_mode(m):
        with eval_mode(m):
            assert not m.training
        assert not m.training  # the inner block restores the outer block's mode
    assert m.training
    with eval_mode():
        pass


def test_predict_logits_and_accuracy_restore_mode_and_chunk():
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(3, 4), nn.Dropout(0.9)).train()
    x, y = torch.randn(10, 3), torch.randint(0, 4, (10,))
    whole = predict_logits(m, x, batch_size=100)
    assert m.training
    assert torch.allclose(predict_logits(m, x, batch_size=3), whole)  # chunks agree and dropout is off
    assert accuracy(m, x, y) == pytest.approx(float((whole.argmax(1) == y).float().mean()))
    assert accuracy(m, x[:0], y[:0]) is None
    assert m.training
