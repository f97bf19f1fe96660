"""``fashion-rotation``: a small image regressor — predict the angle by which a Fashion-MNIST image was rotated.

Built from the Fashion-MNIST IDX files (found like ``fashion-mnist``: ``data_dir``, ``$EXPUNGE_DATA``, or Debian's
``/usr/share/datasets/fashion-mnist/``): a seeded sample of N_TRAIN = 4,000 training and N_TEST = 1,000 test images,
each rotated about its centre by θ ~ U(−45°, 45°) (``scipy.ndimage.rotate``, bilinear, black fill, same size); the
target is θ, standardized with the training mean and std (as ``diabetes``; θ/std ≈ θ/26°). Inputs are normalized
like ``fashion-mnist``. Ids are the source images' ids in ``fashion-mnist`` (train 0..59,999, test 60,000..69,999),
so a request on this set names the same pictures. Images, angles and the sample are drawn once from a fixed seed
(a property of the dataset).

Why the rotation angle and not a pixel statistic such as the mean ink intensity: mean ink is a *linear* function of
the pixels, which any model fits exactly on train and test alike — the Original and a retrain would both be perfect
and there would be nothing to forget. The angle needs the garment's shape (a symmetric bag rotated by 40° looks like
one rotated by −50°, outside the range, and some items are nearly rotation-invariant), so a CNN generalises
imperfectly and fits its own training images better than unseen ones — the memorisation unlearning removes, as in
the paper's age regression on AgeDB faces. Small (4,000 images): with its recipe (15 epochs, batch 64, Adam 1e-3;
``expunge.train.oracle.DEFAULT_RECIPES``) the ``cnn`` Original and its oracle train in about 40 s each on one CPU
thread.

Measured (``cnn``, ``random:0.1``, seed 0): Original forget / test MSE 0.010 / 0.043, Retrain 0.059 / 0.044 — the
angle is learnable enough that the memorised part is small in standardized units, below the ``regression`` task's
0.15 forget tolerance, so on this dataset the forget criterion has no power at the default tolerances: pass tighter
``criteria`` to :func:`expunge.verdict.judge`, or read ``mse_to_retrain_forget`` and the MIAs. (It is not in
``configs/regression.yaml`` for that reason and for its cost: two trainings per seed take longer than the whole
diabetes + synthetic grid's Originals.)
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from expunge.data.datasets import (
    FASHION_DEFAULT_DIR,
    FASHION_MEAN,
    FASHION_STD,
    Dataset,
    LabelSet,
    _check_fashion,
    _find_idx,
    from_arrays,
    read_idx,
    register_dataset,
)

SEED = 20261208
N_TRAIN, N_TEST = 4000, 1000
MAX_ANGLE = 45.0
N_FASHION_TRAIN = 60000


def rotate_images(images: np.ndarray, angles: np.ndarray) -> np.ndarray:
    """``images`` (n, 28, 28) in [0, 1] rotated by ``angles`` degrees (counter-clockwise), same shape, float32."""
    from scipy.ndimage import rotate

    return np.stack([rotate(img, float(a), reshape=False, order=1, mode="constant", cval=0.0)
                     for img, a in zip(images, angles, strict=True)]).astype(np.float32)


@register_dataset("fashion-rotation")
def load_fashion_rotation(*, data_dir: str | None = None, labels: LabelSet = "fine") -> Dataset:
    dirs = [Path(p) for p in (data_dir, os.environ.get("EXPUNGE_DATA"), FASHION_DEFAULT_DIR) if p]
    if data_dir:
        dirs = dirs[:1]
    files = [(_find_idx(f"{split}-images-idx3-ubyte", dirs), _find_idx(f"{split}-labels-idx1-ubyte", dirs))
             for split in ("train", "t10k")]
    parts = []
    for image_file, label_file in files:
        x, y = read_idx(image_file), read_idx(label_file)
        _check_fashion(x, y, image_file, label_file)
        parts.append(x)
    rng = np.random.default_rng(SEED)
    tr = np.sort(rng.choice(len(parts[0]), size=N_TRAIN, replace=False))
    te = np.sort(rng.choice(len(parts[1]), size=N_TEST, replace=False))
    angles = rng.uniform(-MAX_ANGLE, MAX_ANGLE, size=N_TRAIN + N_TEST)
    raw_tr, raw_te = parts[0][tr], parts[1][te]
    rotated = rotate_images(np.concatenate([raw_tr, raw_te]).astype(np.float32) / 255.0, angles)
    x = ((rotated - FASHION_MEAN) / FASHION_STD)[:, None, :, :]
    mean, std = angles[:N_TRAIN].mean(), angles[:N_TRAIN].std()
    y = (angles - mean) / std
    return from_arrays("fashion-rotation", x_train=x[:N_TRAIN], y_train=y[:N_TRAIN], x_test=x[N_TRAIN:],
                       y_test=y[N_TRAIN:], train_ids=tr, test_ids=N_FASHION_TRAIN + te, labels=labels,
                       raw_for_fingerprint=(raw_tr, raw_te), task="regression",
                       input_range=(-FASHION_MEAN / FASHION_STD, (1 - FASHION_MEAN) / FASHION_STD))
