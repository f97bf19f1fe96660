"""The regression task: known losses, shapes, and refusals of targets it cannot train on."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from expunge.metrics.base import METRICS
from expunge.tasks import TASKS, get_task
from expunge.tasks.regression import Regression, as_targets_shape

TASK = get_task("regression")


def test_registered_and_stateless():
    assert isinstance(TASK, Regression) and get_task("regression") is TASK and "regression" in TASKS.names()
    d = TASK.describe()
    assert d["name"] == "regression" and d["parity_criteria"] == {"forget_mse": 0.15, "test_mse": 0.10,
                                                                  "mia_loss_auc": 0.10}


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_headline_and_parity_metrics_exist_for_the_task(task: str):
    """A task may only lead with (and judge parity on) metrics that are registered and defined for it."""
    t = get_task(task)
    for name in (*t.headline_metrics, *t.parity_criteria):
        assert task in METRICS.get(name).tasks, name


def test_loss_known_answer_one_output():
    # the mlp's (n, 1) outputs against (n,) targets: ((1 - 0)² + (3 - 1)²) / 2 = 2.5
    outputs, targets = torch.tensor([[1.0], [3.0]]), torch.tensor([0.0, 1.0])
    assert TASK.loss(outputs, targets).item() == pytest.approx(2.5)
    np.testing.assert_array_equal(TASK.example_losses(outputs.numpy(), targets.numpy()), [1.0, 4.0])


def test_loss_known_answer_two_outputs():
    # squared errors [[1, 4], [0, 4]]: loss = 9/4 over all elements; per example the mean over outputs [2.5, 2]
    outputs, targets = torch.tensor([[1.0, 2.0], [3.0, 4.0]]), torch.tensor([[0.0, 0.0], [3.0, 6.0]])
    assert TASK.loss(outputs, targets).item() == pytest.approx(2.25)
    losses = TASK.example_losses(outputs.numpy(), targets.numpy())
    assert losses.dtype == np.float64
    np.testing.assert_array_equal(losses, [2.5, 2.0])


def test_gradient_is_twice_the_residual_over_n():
    outputs = torch.tensor([[1.0], [3.0], [-1.0]], requires_grad=True)
    TASK.loss(outputs, torch.tensor([0.0, 1.0, 1.0])).backward()
    np.testing.assert_allclose(outputs.grad.numpy().ravel(), [2 * 1 / 3, 2 * 2 / 3, 2 * -2 / 3], rtol=1e-6)


@given(n=st.integers(1, 20), d=st.integers(0, 3), seed=st.integers(0, 2**16))
def test_batch_loss_is_the_mean_of_the_example_losses(n: int, d: int, seed: int):
    rng = np.random.default_rng(seed)
    shape = (n,) if d == 0 else (n, d)
    targets = rng.normal(size=shape).astype(np.float32)
    outputs = rng.normal(size=(n, max(d, 1))).astype(np.float32)
    loss = TASK.loss(torch.as_tensor(outputs), torch.as_tensor(targets)).item()
    assert loss == pytest.approx(TASK.example_losses(outputs, targets).mean(), rel=1e-5)


def test_example_losses_are_not_clipped():
    assert TASK.example_losses(np.array([[1000.0]]), np.array([0.0]))[0] == 1e6  # CE is clipped at 100; this is not


def test_batch_loss_runs_the_model():
    model = nn.Linear(2, 1)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, -1.0]]))
        model.bias.zero_()
    x, y = torch.tensor([[2.0, 1.0], [0.0, 0.0]]), torch.tensor([0.0, 1.0])  # predictions 1, 0
    assert TASK.batch_loss(model, (x, y)).item() == pytest.approx(1.0)


@pytest.mark.parametrize(("y", "dim"), [([1, 2, 3], 1), ([[0.5, 1.0], [2.0, 3.0]], 2), (np.zeros((4, 1)), 1)])
def test_targets_are_float32_of_the_same_shape(y, dim: int):
    t = TASK.targets(y)
    assert t.dtype == torch.float32 and tuple(t.shape) == np.shape(y)
    assert TASK.num_outputs(t, 0) == dim


def test_targets_accept_a_tensor():
    assert TASK.targets(torch.tensor([1.5, 2.5], dtype=torch.float64)).tolist() == [1.5, 2.5]


@pytest.mark.parametrize(
    ("y", "fragment"),
    [
        (["a", "b"], "real numbers"),
        (np.array([True, False]), "real numbers"),
        (np.array([1.0, 2.0], dtype=object), "real numbers"),
        (3.0, "must have shape"),
        (np.zeros((2, 2, 2)), "must have shape"),
        (np.zeros((3, 0)), "d >= 1"),
        ([1.0, float("nan"), 2.0], r"rows \[1\]"),
        ([1.0, 2.0, float("inf")], r"rows \[2\]"),
        ([1e39, 0.0], "finite in float32"),  # finite in float64, inf once stored as float32
    ],
)
def test_bad_targets_raise_value_error(y, fragment: str):
    with pytest.raises(ValueError, match=fragment):
        TASK.targets(y)


@pytest.mark.parametrize("outputs", [torch.zeros(3, 10), torch.zeros(2, 1), torch.zeros(3, 2)])
def test_outputs_of_the_wrong_shape_raise(outputs: torch.Tensor):
    with pytest.raises(ValueError, match="num_outputs"):
        TASK.loss(outputs, torch.zeros(3))


def test_outputs_are_reshaped_to_the_targets_shape():
    assert as_targets_shape(np.zeros((4, 1)), np.zeros(4)).shape == (4,)
    assert as_targets_shape(torch.zeros(4), torch.zeros((4, 1))).shape == (4, 1)
