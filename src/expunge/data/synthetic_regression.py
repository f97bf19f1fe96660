"""``synthetic-regression``: a seeded regression set whose true function is known.

1,000 examples (750 train / 250 test, ids 0..749 and 750..999), 8 features x ~ N(0, I); the target is

    f(x) = sin(2·x₀) + x₁·x₂ + 0.5·(x₃² − 1) + 0.8·x₄          (x₅, x₆, x₇ are irrelevant)
    y = f(x) + ε,   ε ~ N(0, NOISE_STD²),  NOISE_STD = 1.0,

drawn once from a fixed seed (a property of the dataset, like digits' split), then standardized with the *training*
mean and std (as ``diabetes``), so the ``regression`` task's parity tolerances keep their meaning (an MSE of 1 is
predicting the mean). Why this shape: a smooth non-linear part an MLP can learn (sine, interaction, square), a linear
part, and distractor features; the noise is what a model memorises on its training rows — with it the Original fits
its forget set better than a retrain does, so unlearning has something to remove; without it there would be nothing
to forget. The irreducible test MSE is NOISE_STD² / std(y)² ≈ 0.29 in standardized units (training std of y ≈ 1.87).
NOISE_STD = 1 is chosen so the memorised noise is measurable: with the dataset's recipe (30 epochs, batch 32, Adam
1e-3; ``expunge.train.oracle.DEFAULT_RECIPES``) and the ``mlp`` on ``random:0.1``, seeds 0-2, the Original's forget MSE
is 0.12-0.14 and the Retrain's 0.37-0.51, a gap above the task's 0.15 forget tolerance on every seed (at
NOISE_STD = 0.3 the gap was 0.10-0.17: the forget criterion would have had no power on some seeds).

:func:`true_function` gives f on raw features (tests check the data against it).
"""

from __future__ import annotations

import numpy as np

from expunge.data.datasets import Dataset, LabelSet, from_arrays, register_dataset

SEED = 20261207
N_TRAIN, N_TEST, N_FEATURES = 750, 250, 8
NOISE_STD = 1.0


def true_function(x: np.ndarray) -> np.ndarray:
    """f(x) on raw features of shape (n, 8) (float64)."""
    x = np.asarray(x, dtype=np.float64)
    return np.sin(2 * x[:, 0]) + x[:, 1] * x[:, 2] + 0.5 * (x[:, 3] ** 2 - 1) + 0.8 * x[:, 4]


def raw_arrays() -> tuple[np.ndarray, np.ndarray]:
    """The raw features (n, 8) and unstandardized targets (n,) of all 1,000 examples, train rows first."""
    rng = np.random.default_rng(SEED)
    x = rng.standard_normal((N_TRAIN + N_TEST, N_FEATURES))
    y = true_function(x) + NOISE_STD * rng.standard_normal(N_TRAIN + N_TEST)
    return x, y


@register_dataset("synthetic-regression")
def load_synthetic_regression(*, data_dir: str | None = None, labels: LabelSet = "fine") -> Dataset:
    x, y = raw_arrays()
    mean, std = y[:N_TRAIN].mean(), y[:N_TRAIN].std()
    ys = (y - mean) / std
    return from_arrays("synthetic-regression", x_train=x[:N_TRAIN], y_train=ys[:N_TRAIN], x_test=x[N_TRAIN:],
                       y_test=ys[N_TRAIN:], labels=labels, task="regression")
