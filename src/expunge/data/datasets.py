"""Dataset registry: every example has a stable integer id; every dataset has a content fingerprint.

Built in:

* ``digits`` — scikit-learn's bundled 8×8 digits (1,797 images). Split 75/25, stratified, with a fixed seed, so
  the split (and every id) is the same on every machine. Ids are the row numbers of ``load_digits()``.
  Coarse labels (for sub-class scenarios and fast tests) are the digit's parity: even / odd — a synthetic grouping.
* ``fashion-mnist`` — the 60k/10k IDX files (gzipped or not) from ``data_dir``, ``$EXPUNGE_DATA`` or
  ``/usr/share/datasets/fashion-mnist/`` (Debian's ``dataset-fashion-mnist``). Train ids are 0..59,999, test ids
  60,000..69,999. Coarse labels: tops {T-shirt/top, Pullover, Coat, Shirt}, bottoms {Trouser, Dress},
  footwear {Sandal, Sneaker, Ankle boot}, bags {Bag}.

* ``diabetes`` — scikit-learn's bundled diabetes data (Efron et al., "Least Angle Regression", 2004): 442 patients,
  10 baseline features, target = a quantitative measure of disease progression one year after baseline (raw range
  25–346). A **regression** dataset (``task="regression"``). Split 75/25 (331 train / 111 test) with a fixed seed;
  ids are the row numbers of ``load_diabetes()``. Features: the unscaled values (age, sex, BMI, blood pressure, six
  serum measurements) standardized with the *training* mean and std (scikit-learn's ``scaled=True`` copy uses all
  442 rows, test rows included); targets standardized likewise (training mean 151.9, std 79.1 → train mean 0, std 1
  with ddof 0), so an MSE of 1 is what predicting the training mean scores and MSE × 79.1² is in raw units².

Every training example also belongs to a synthetic *owner* (a user whose data may be deleted as a group): owners are
assigned once per dataset from a fixed seed with group sizes 1 + Poisson(7), so ``owners:K`` requests have the shape
of real deletion requests (one person, several examples) and are reproducible.

The fingerprint is the sha256 of the raw example bytes, labels, ids and the label set; it is recorded with every
trained model so that a model is never evaluated or unlearned against different data by mistake.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from expunge._registry import Registry
from expunge.errors import CorruptDataFile, DatasetNotFound, InvalidDataset, InvalidForgetRequest
from expunge.tasks import get_task

LabelSet = Literal["fine", "coarse"]
# package: a module of expunge.data that registers datasets (expunge.data.interactions) is found on first lookup. A
# name ending in ":" (``"csv:"``) is a *scheme*: ``load_dataset("csv:PATH...")`` calls it with ``spec="PATH..."``.
DATASETS: Registry[Callable[..., Dataset]] = Registry("dataset", package="expunge.data")
OWNER_SEED = 20240917  # fixed: owner groups are a property of the dataset, not of a run


@dataclass(frozen=True, eq=False)
class Partition:
    """One partition (train or test) held as tensors. ``y`` are the task's targets: class labels (fine or coarse)
    for classification, float32 values for regression; ``fine`` the fine labels (regression: the targets)."""

    x: torch.Tensor
    y: torch.Tensor
    ids: np.ndarray
    fine: np.ndarray
    owners: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.ids)

    def positions_of(self, ids: np.ndarray) -> np.ndarray:
        """Positions of ``ids`` in this partition (ids must exist; see :meth:`unknown_ids`)."""
        order = np.argsort(self.ids)
        return order[np.searchsorted(self.ids, ids, sorter=order)]

    def unknown_ids(self, ids: np.ndarray) -> np.ndarray:
        return np.setdiff1d(ids, self.ids)


@dataclass(frozen=True, eq=False)
class Dataset:
    name: str
    train: Partition
    test: Partition
    class_names: tuple[str, ...]
    fine_class_names: tuple[str, ...]
    label_set: LabelSet
    fingerprint: str
    fine_to_coarse: tuple[int, ...] = field(default=())
    input_range: tuple[float, float] | None = None  # model-input values of a black and a white pixel (images)
    # How to rebuild a dataset derived from a registered one (JSON; e.g. the corrective scenario's poisoned copy),
    # saved in run manifests so that `expunge evaluate` can rebuild it. None for registered / user datasets.
    derivation: dict[str, Any] | None = None
    task: str = "classification"  # the expunge.tasks plug-in that owns targets, loss and headline metrics
    # Sizes a model of this dataset needs beyond its input shape and outputs, passed to the model factory by
    # expunge.train.oracle.model_spec_for (a recommender's n_users); {} for every classification/regression dataset.
    model_kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def num_outputs(self) -> int:
        """How many outputs a model of this dataset's task needs (the class count for classification)."""
        return get_task(self.task).num_outputs(self.train.y, self.num_classes)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.train.x.shape[1:])

    def class_index(self, label: str | int, *, fine: bool = False) -> int:
        names = self.fine_class_names if fine else self.class_names
        if isinstance(label, int) or str(label).isdigit():
            idx = int(label)
            if not 0 <= idx < len(names):
                raise InvalidForgetRequest(
                    f"class {idx} does not exist in {self.name}: classes are 0..{len(names) - 1}")
            return idx
        lowered = [n.lower() for n in names]
        if str(label).lower() not in lowered:
            raise InvalidForgetRequest(f"unknown class name {label!r} for {self.name}; known: {', '.join(names)}")
        return lowered.index(str(label).lower())

    def describe(self) -> dict[str, object]:
        return {
            "name": self.name,
            "task": self.task,
            "label_set": self.label_set,
            "fingerprint": self.fingerprint,
            "n_train": len(self.train),
            "n_test": len(self.test),
            "num_classes": self.num_classes,
            "input_shape": list(self.input_shape),
        }


def assign_owners(n: int, mean_extra: float = 7.0, seed: int = OWNER_SEED) -> np.ndarray:
    """Assign each of ``n`` examples to an owner; group sizes are 1 + Poisson(mean_extra), order shuffled."""
    rng = np.random.default_rng(seed)
    sizes = 1 + rng.poisson(mean_extra, size=n)  # more than enough groups
    owner_of_slot = np.repeat(np.arange(n), sizes)[:n]
    owners = np.empty(n, dtype=np.int64)
    owners[rng.permutation(n)] = owner_of_slot
    return owners


def fingerprint_arrays(*arrays: np.ndarray, extra: str = "") -> str:
    h = hashlib.sha256(extra.encode())
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(str((a.dtype.str, a.shape)).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def from_arrays(
    name: str,
    *,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    class_names: tuple[str, ...] = (),
    train_ids: np.ndarray | None = None,
    test_ids: np.ndarray | None = None,
    fine_to_coarse: tuple[int, ...] = (),
    coarse_names: tuple[str, ...] = (),
    labels: LabelSet = "fine",
    owners: np.ndarray | None = None,
    raw_for_fingerprint: tuple[np.ndarray, ...] | None = None,
    input_range: tuple[float, float] | None = None,
    derivation: dict[str, Any] | None = None,
    task: str = "classification",
) -> Dataset:
    """Build a :class:`Dataset` from arrays (images already scaled, shape N×C×H×W or N×D). Also the public entry
    point for users' own data.

    ``task`` names the :mod:`expunge.tasks` plug-in that owns the targets: ``"classification"`` (integer labels,
    ``class_names`` required) or ``"regression"`` (real targets of shape (n,) or (n, d), stored as float32 by the
    task's :meth:`~expunge.tasks.Task.targets`; no class names or coarse labels). The fingerprint includes the task
    for every task but classification, whose fingerprints predate the task field and are kept so cached models stay
    valid.

    Raises:
        InvalidDataset: inputs and targets of different lengths, targets the task refuses (naming ``y_train`` or
            ``y_test``), class names or a class mapping on a regression dataset.
        InvalidForgetRequest: ``labels="coarse"`` without coarse labels (always, for regression).
    """
    n_tr, n_te = len(y_train), len(y_test)
    for what, x, y in (("train", x_train, y_train), ("test", x_test, y_test)):
        if len(x) != len(y):
            raise InvalidDataset(f"{name}: x_{what} has {len(x)} rows but y_{what} has {len(y)}")
    train_ids = np.arange(n_tr, dtype=np.int64) if train_ids is None else np.asarray(train_ids, dtype=np.int64)
    test_ids = np.arange(n_tr, n_tr + n_te, dtype=np.int64) if test_ids is None else np.asarray(test_ids, np.int64)
    if get_task(task).name != "classification":
        return _task_dataset(name, task, x_train, y_train, x_test, y_test, train_ids, test_ids, class_names=class_names,
                             fine_to_coarse=fine_to_coarse, labels=labels, owners=owners, raw=raw_for_fingerprint,
                             input_range=input_range, derivation=derivation)
    y_train, y_test = np.asarray(y_train, np.int64), np.asarray(y_test, np.int64)
    if labels == "coarse":
        if not fine_to_coarse:
            raise InvalidForgetRequest(f"dataset {name!r} has no coarse labels; use labels='fine'")
        mapping = np.asarray(fine_to_coarse, dtype=np.int64)
        task_train, task_test, task_names = mapping[y_train], mapping[y_test], coarse_names
    else:
        task_train, task_test, task_names = y_train, y_test, class_names
    raw = raw_for_fingerprint if raw_for_fingerprint is not None else (x_train, x_test)
    fp = fingerprint_arrays(*raw, y_train, y_test, train_ids, test_ids, extra=f"{name}|{labels}")
    train = Partition(
        x=torch.as_tensor(np.asarray(x_train, np.float32)),
        y=torch.as_tensor(task_train),
        ids=train_ids,
        fine=y_train,
        owners=assign_owners(n_tr) if owners is None else np.asarray(owners, np.int64),
    )
    test = Partition(x=torch.as_tensor(np.asarray(x_test, np.float32)), y=torch.as_tensor(task_test),
                     ids=test_ids, fine=y_test)
    return Dataset(name=name, train=train, test=test, class_names=tuple(task_names),
                   fine_class_names=tuple(class_names), label_set=labels, fingerprint=fp,
                   fine_to_coarse=tuple(fine_to_coarse), input_range=input_range, derivation=derivation)


def _task_dataset(name: str, task: str, x_train: np.ndarray, y_train: Any, x_test: np.ndarray, y_test: Any,
                  train_ids: np.ndarray, test_ids: np.ndarray, *, class_names: tuple[str, ...],
                  fine_to_coarse: tuple[int, ...], labels: LabelSet, owners: np.ndarray | None,
                  raw: tuple[np.ndarray, ...] | None, input_range: tuple[float, float] | None,
                  derivation: dict[str, Any] | None) -> Dataset:
    """A dataset of a task without classes (regression): targets as the task builds them, no class names."""
    if labels != "fine":
        raise InvalidForgetRequest(f"{name} is a {task} dataset: it has no coarse labels (sub-class requests need a "
                                   "classification dataset). Fix: forget random:F, owners:K or ids:FILE")
    if class_names or fine_to_coarse:
        raise InvalidDataset(f"{name}: a {task} dataset has no classes; drop class_names / fine_to_coarse")
    targets = []
    for what, y in (("y_train", y_train), ("y_test", y_test)):
        try:
            targets.append(get_task(task).targets(y))
        except ValueError as exc:
            raise InvalidDataset(f"{name}: {what}: {exc}") from None
    t_train, t_test = targets
    if t_train.shape[1:] != t_test.shape[1:]:
        raise InvalidDataset(f"{name}: y_train {tuple(t_train.shape)} and y_test {tuple(t_test.shape)} differ in "
                             "target dimension")
    raw = raw if raw is not None else (x_train, x_test)
    fp = fingerprint_arrays(*raw, t_train.numpy(), t_test.numpy(), train_ids, test_ids, extra=f"{name}|{labels}|{task}")
    train = Partition(x=torch.as_tensor(np.asarray(x_train, np.float32)), y=t_train, ids=train_ids,
                      fine=t_train.numpy(),
                      owners=assign_owners(len(train_ids)) if owners is None else np.asarray(owners, np.int64))
    test = Partition(x=torch.as_tensor(np.asarray(x_test, np.float32)), y=t_test, ids=test_ids, fine=t_test.numpy())
    return Dataset(name=name, train=train, test=test, class_names=(), fine_class_names=(), label_set=labels,
                   fingerprint=fp, input_range=input_range, derivation=derivation, task=task)


def register_dataset(name: str) -> Callable[[Callable[..., Dataset]], Callable[..., Dataset]]:
    def deco(fn: Callable[..., Dataset]) -> Callable[..., Dataset]:
        return DATASETS.register(name, fn)

    return deco


@lru_cache(maxsize=8)
def _load_cached(name: str, data_dir: str | None, labels: LabelSet) -> Dataset:
    scheme, sep, spec = name.partition(":")
    if sep and name not in DATASETS and f"{scheme}:" in DATASETS:  # a scheme dataset: "csv:PATH?target=COL"
        return DATASETS.get(f"{scheme}:")(spec=spec, data_dir=data_dir, labels=labels)
    return DATASETS.get(name)(data_dir=data_dir, labels=labels)


def load_dataset(name: str, *, data_dir: str | os.PathLike[str] | None = None, labels: LabelSet = "fine") -> Dataset:
    """Load a registered dataset by name (cached per process)."""
    return _load_cached(name, None if data_dir is None else str(data_dir), labels)


@register_dataset("digits")
def load_digits(*, data_dir: str | None = None, labels: LabelSet = "fine") -> Dataset:
    from sklearn.datasets import load_digits as sk_digits
    from sklearn.model_selection import train_test_split

    bunch = sk_digits()
    images = bunch.images.astype(np.float32)  # 0..16
    ids = np.arange(len(images), dtype=np.int64)
    tr, te = train_test_split(ids, test_size=0.25, random_state=0, stratify=bunch.target)
    tr, te = np.sort(tr), np.sort(te)
    x = (images / 16.0)[:, None, :, :]
    return from_arrays(
        "digits", x_train=x[tr], y_train=bunch.target[tr], x_test=x[te], y_test=bunch.target[te],
        class_names=tuple(str(i) for i in range(10)), train_ids=tr, test_ids=te,
        fine_to_coarse=tuple(i % 2 for i in range(10)), coarse_names=("even", "odd"), labels=labels,
        raw_for_fingerprint=(images[tr], images[te]), input_range=(0.0, 1.0),
    )


@register_dataset("diabetes")
def load_diabetes(*, data_dir: str | None = None, labels: LabelSet = "fine") -> Dataset:
    from sklearn.datasets import load_diabetes as sk_diabetes
    from sklearn.model_selection import train_test_split

    bunch = sk_diabetes(scaled=False)
    x_raw, y_raw = bunch.data.astype(np.float64), bunch.target.astype(np.float64)
    ids = np.arange(len(y_raw), dtype=np.int64)
    tr, te = train_test_split(ids, test_size=0.25, random_state=0)
    tr, te = np.sort(tr), np.sort(te)
    x_mean, x_std = x_raw[tr].mean(axis=0), x_raw[tr].std(axis=0)
    y_mean, y_std = y_raw[tr].mean(), y_raw[tr].std()
    x, y = (x_raw - x_mean) / x_std, (y_raw - y_mean) / y_std
    return from_arrays("diabetes", x_train=x[tr], y_train=y[tr], x_test=x[te], y_test=y[te], train_ids=tr,
                       test_ids=te, labels=labels, raw_for_fingerprint=(x_raw[tr], x_raw[te]), task="regression")


FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot")
FASHION_COARSE = ("tops", "bottoms", "footwear", "bags")
FASHION_FINE_TO_COARSE = (0, 1, 0, 1, 0, 2, 0, 2, 3, 2)
FASHION_DEFAULT_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_MEAN, FASHION_STD = 0.2860, 0.3530


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (optionally gzipped): magic 0x0000 | dtype 0x08 (uint8) | ndim, then big-endian dims.

    Raises:
        CorruptDataFile: the file cannot be read or decompressed (bad gzip, truncated stream), its header is not a
            uint8 IDX header, or it holds more or fewer values than its dimensions say.
    """
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            data = fh.read()
    except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError; a cut gzip stream an EOFError
        raise CorruptDataFile(f"{path} cannot be read ({exc or type(exc).__name__}). Fix: {_REPLACE}") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise CorruptDataFile(f"{path} is not a uint8 IDX file (bad magic number). Fix: {_REPLACE}")
    ndim = data[3]
    if len(data) < 4 + 4 * ndim:
        raise CorruptDataFile(f"{path} is truncated: its header announces {ndim} dimensions but ends early. "
                              f"Fix: {_REPLACE}")
    dims = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        what = "truncated" if body.size < int(np.prod(dims)) else "longer than its header says"
        raise CorruptDataFile(f"{path} is {what}: expected {int(np.prod(dims))} values, found {body.size}. "
                              f"Fix: {_REPLACE}")
    return body.reshape(dims)


_REPLACE = "download the Fashion-MNIST IDX files again (or reinstall dataset-fashion-mnist)"


def _check_fashion(images: np.ndarray, labels: np.ndarray, image_file: Path, label_file: Path) -> None:
    """Raise :class:`CorruptDataFile` unless ``images`` are N 28×28 images and ``labels`` N class indices 0..9."""
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise CorruptDataFile(f"{image_file} holds an array of shape {images.shape}, not N 28x28 images. "
                              f"Fix: {_REPLACE}")
    if labels.ndim != 1:
        raise CorruptDataFile(f"{label_file} holds an array of shape {labels.shape}, not N labels. Fix: {_REPLACE}")
    if len(images) != len(labels):
        raise CorruptDataFile(f"{image_file} has {len(images)} images but {label_file} has {len(labels)} labels: "
                              f"the two files do not belong together. Fix: {_REPLACE}")
    if labels.size and int(labels.max()) >= len(FASHION_CLASSES):
        raise CorruptDataFile(f"{label_file} holds label {int(labels.max())}; Fashion-MNIST labels are 0.."
                              f"{len(FASHION_CLASSES) - 1}. Fix: {_REPLACE}")


def _find_idx(stem: str, dirs: list[Path]) -> Path:
    for d in dirs:
        for candidate in (d / stem, d / f"{stem}.gz"):
            if candidate.is_file():
                return candidate
    searched = ", ".join(str(d) for d in dirs)
    raise DatasetNotFound(
        f"Fashion-MNIST file {stem}[.gz] not found (searched {searched}). Fix: `apt-get install dataset-fashion-mnist` "
        "(installs /usr/share/datasets/fashion-mnist/), or put the four IDX files in a folder and pass --data-dir "
        "or set EXPUNGE_DATA."
    )


@register_dataset("fashion-mnist")
def load_fashion_mnist(*, data_dir: str | None = None, labels: LabelSet = "fine") -> Dataset:
    dirs = [Path(p) for p in (data_dir, os.environ.get("EXPUNGE_DATA"), FASHION_DEFAULT_DIR) if p]
    if data_dir:  # an explicit folder is the only place looked at: no silent fallback to other data
        dirs = dirs[:1]
    files = [(_find_idx(f"{split}-images-idx3-ubyte", dirs), _find_idx(f"{split}-labels-idx1-ubyte", dirs))
             for split in ("train", "t10k")]  # every file is found before any is read
    loaded = []
    for image_file, label_file in files:
        x, y = read_idx(image_file), read_idx(label_file)
        _check_fashion(x, y, image_file, label_file)
        loaded += [x, y]
    xtr, ytr, xte, yte = loaded

    def norm(a: np.ndarray) -> np.ndarray:
        return ((a.astype(np.float32) / 255.0 - FASHION_MEAN) / FASHION_STD)[:, None, :, :]

    return from_arrays(
        "fashion-mnist", x_train=norm(xtr), y_train=ytr, x_test=norm(xte), y_test=yte, class_names=FASHION_CLASSES,
        fine_to_coarse=FASHION_FINE_TO_COARSE, coarse_names=FASHION_COARSE, labels=labels,
        raw_for_fingerprint=(xtr, xte), input_range=(-FASHION_MEAN / FASHION_STD, (1 - FASHION_MEAN) / FASHION_STD),
    )


from expunge.data import graphs as _graphs  # noqa: E402, F401  (registers the graph datasets: sbm, karate)
