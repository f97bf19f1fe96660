"""Checks of valid splits that can still mislead: a large forget fraction, duplicate content across splits.

:func:`request_checks` runs when :class:`~expunge.data.request.Splits` are built (every path: a parsed spec, ids,
a sequential stream); its result is part of ``Splits.describe()``, hence of every run record's ``request`` and of the
oracle's manifest, and each finding is also issued as a typed warning (the CLI prints ``warning: ...`` on stderr).
"""

from __future__ import annotations

import warnings

import numpy as np

from expunge.data.datasets import Dataset
from expunge.data.duplicates import duplicate_report
from expunge.errors import DuplicateContentWarning, LargeForgetFraction

# Past this share of the training set, approximate unlearning is unreliable (module docstring of request_checks).
LARGE_FORGET_FRACTION = 0.3


def request_checks(dataset: Dataset, forget: np.ndarray, retain: np.ndarray, *,
                   parts_only: bool = False) -> dict[str, object]:
    """Facts about valid splits that can mislead, for the record (``describe()``), each also issued as a warning.

    * ``forget_fraction`` = |F| / |D|; above :data:`LARGE_FORGET_FRACTION` (30%) a :class:`LargeForgetFraction`
      warning: approximate methods rest on assumptions such as a small forget set, which large requests violate
      (Kurmanji et al., "Towards Unbounded Machine Unlearning", NeurIPS 2023, §1-2; Zhang et al., "Negative Preference
      Optimization", 2024: gradient-ascent methods "already struggle with forgetting 10% of training data" on TOFU),
      while retraining on what remains costs proportionally less. The 30% line is the issue's (23), not a paper's.
      Not an error: the run is valid, and its gap to the Retrain says how it went. Not issued when ``parts_only``:
      the request removes parts of examples (a graph's edges, ``Splits.detail``) and its forget split only marks the
      examples those parts touch, which stay in training — its size is no forgetting share.
    * ``duplicates``: exact-duplicate content between forget and retain and between test and train
      (:mod:`expunge.data.duplicates`), with a :class:`DuplicateContentWarning` when any is found.
    * ``warnings``: the warning messages, so a stored record carries them."""
    # warnings come from one fixed location (stacklevel=2: Splits.from_ids), so Python's default filter shows each
    # message once per process although the CLI and prepare() both resolve the request
    n_train = forget.size + retain.size
    fraction = forget.size / n_train if n_train else 0.0
    messages: list[str] = []
    if fraction > LARGE_FORGET_FRACTION and not parts_only:
        messages.append(f"the request forgets {forget.size} of {n_train} training examples ({fraction:.0%}): "
                        f"approximate unlearning methods are unreliable past {LARGE_FORGET_FRACTION:.0%}; compare "
                        "with the Retrain (`retrain`), which is cheaper the more is forgotten")
        warnings.warn(LargeForgetFraction(messages[-1]), stacklevel=2)
    dups = duplicate_report(dataset, forget, retain)
    if (fr := dups["forget_retain"])["count"]:
        messages.append(f"{fr['count']} forget example(s) have exact copies in the retain set (forget ids "
                        f"{fr['forget_ids']}, retain ids {fr['retain_ids']}, first few): retraining relearns that "
                        "content, so the Retrain still knows it. Fix: add the copies to the request to delete the "
                        "content")
        warnings.warn(DuplicateContentWarning(messages[-1]), stacklevel=2)
    if (tt := dups.get("test_train", {})).get("count"):
        messages.append(f"{tt['count']} test example(s) have exact copies in the training set (test ids "
                        f"{tt['test_ids']}, train ids {tt['train_ids']}, first few): they are members, not "
                        "non-members, for membership-inference metrics. Fix: deduplicate the dataset")
        warnings.warn(DuplicateContentWarning(messages[-1]), stacklevel=2)
    return {"forget_fraction": round(fraction, 6), "duplicates": dups, "warnings": messages}
