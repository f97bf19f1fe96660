"""Exact-duplicate content across splits: forget vs retain, test vs train.

Two examples with byte-identical inputs are the same example to a model. A forget example whose content is also in
the retain set is relearnt by retraining, so the retrain oracle is not "a model that never saw it" and a method that
matches the oracle leaves that content in the model. A test example whose content is in the training set is a member,
not a non-member, for every membership-inference metric that uses the test set as non-members.

Rows are compared by the SHA-256 of their model-input bytes (after the dataset's deterministic normalisation, which
maps equal raw rows to equal inputs and distinct ones to distinct ones); a digest match is an exact match for all
practical purposes. Inputs only: two images with the same pixels and different labels are duplicates too (the
contradiction is the point). Measured with one thread: 0.18 s for Fashion-MNIST's 60,000 training rows, under 10 ms
for digits; the digests of a partition are kept in memory per dataset fingerprint, so the splits of a sequential
stream hash once. Measured content: digits (1,797 rows) and Fashion-MNIST (70,000 rows) hold no exact duplicate, within
or across their train and test partitions.

The check reports and warns (:class:`~expunge.errors.DuplicateContentWarning`); it does not move or refuse anything:
a request names ids, and silently widening it to other examples that happen to share their content (another owner's
copy, a blank image) would delete data nobody asked to delete. To delete the content, add the retained copies to the
request; their ids are in the report.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict

import numpy as np
import torch

from expunge.data.datasets import Dataset, Partition

PREVIEW = 10  # ids listed per report (the counts are complete)
_DIGESTS: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
_CACHE_SIZE = 8  # partitions kept (two per dataset)


def row_digests(x: np.ndarray | torch.Tensor) -> np.ndarray:
    """The SHA-256 digest of each row's bytes (first axis = examples), as a ``(n,)`` array of 32-byte strings."""
    arr = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    arr = np.ascontiguousarray(arr).reshape(len(arr), -1)
    width = arr.shape[1] * arr.itemsize
    buf = memoryview(arr).cast("B")
    return np.array([hashlib.sha256(buf[i * width:(i + 1) * width]).digest() for i in range(len(arr))], dtype="S32")


def partition_digests(dataset: Dataset, which: str) -> np.ndarray:
    """:func:`row_digests` of ``dataset.train`` or ``dataset.test``, cached per dataset fingerprint."""
    key = (dataset.fingerprint, which)
    if key in _DIGESTS:
        _DIGESTS.move_to_end(key)
        return _DIGESTS[key]
    part: Partition = getattr(dataset, which)
    digests = row_digests(part.x)
    _DIGESTS[key] = digests
    while len(_DIGESTS) > _CACHE_SIZE:
        _DIGESTS.popitem(last=False)
    return digests


def shared_content(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Boolean masks over digest arrays ``a`` and ``b``: rows whose content also occurs in the other array."""
    return np.isin(a, b), np.isin(b, a)


def duplicate_report(dataset: Dataset, forget: np.ndarray, retain: np.ndarray) -> dict[str, dict[str, object]]:
    """Exact duplicates between the forget and retain positions of ``dataset.train``, and between its test and train
    partitions: per pair, the count of examples of the first whose content is in the second, and the first ids
    (:data:`PREVIEW`) on each side. Positions are those of :class:`~expunge.data.request.Splits`."""
    train = partition_digests(dataset, "train")
    f_in_r, r_in_f = shared_content(train[forget], train[retain])
    out: dict[str, dict[str, object]] = {
        "forget_retain": {"count": int(f_in_r.sum()),
                          "forget_ids": _ids(dataset.train.ids[forget][f_in_r]),
                          "retain_ids": _ids(dataset.train.ids[retain][r_in_f])},
    }
    if len(dataset.test):
        t_in_tr, tr_in_t = shared_content(partition_digests(dataset, "test"), train)
        out["test_train"] = {"count": int(t_in_tr.sum()), "test_ids": _ids(dataset.test.ids[t_in_tr]),
                             "train_ids": _ids(dataset.train.ids[tr_in_t])}
    return out


def _ids(ids: np.ndarray) -> list[int]:
    return [int(i) for i in np.sort(ids)[:PREVIEW]]
