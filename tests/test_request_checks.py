"""Checks of valid requests that can still mislead (issue 23): a large forget fraction and exact-duplicate content
across splits are warned about (typed warnings; one ``warning:`` line in the CLI) and recorded in ``describe()``."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from expunge.data.datasets import from_arrays
from expunge.data.duplicates import partition_digests, row_digests
from expunge.data.request import ForgetRequest, Splits
from expunge.errors import DuplicateContentWarning, ExpungeWarning, LargeForgetFraction


def test_large_forget_fraction_warns_and_is_recorded(digits):
    with pytest.warns(LargeForgetFraction, match="unreliable past 30%"):
        s = ForgetRequest.parse("random:0.5").resolve(digits)
    d = s.describe()
    assert d["forget_fraction"] == pytest.approx(0.5, abs=1e-3) and "unreliable past 30%" in d["warnings"][0]
    with warnings.catch_warnings():
        warnings.simplefilter("error", ExpungeWarning)  # digits: no duplicates, 10% is small: nothing to warn about
        small = ForgetRequest.parse("random:0.1").resolve(digits).describe()
    assert small["forget_fraction"] == pytest.approx(0.1, abs=1e-3) and small["warnings"] == []
    assert small["duplicates"]["forget_retain"]["count"] == 0 and small["duplicates"]["test_train"]["count"] == 0


def test_a_request_removing_parts_of_examples_gets_no_forget_fraction_warning(digits):
    """An edge request's forget split marks the examples its deleted edges touch (they stay in training): however
    many that is, it is no forgetting share. The fraction is still recorded."""
    half = digits.train.ids[: len(digits.train) // 2]
    with warnings.catch_warnings():
        warnings.simplefilter("error", LargeForgetFraction)
        d = Splits.from_ids(digits, half, detail={"deleted_edges": [[0, 1]]}).describe()
    assert d["forget_fraction"] == pytest.approx(0.5, abs=1e-3) and d["warnings"] == []
    with pytest.warns(LargeForgetFraction):  # the same ids as whole examples: warned
        Splits.from_ids(digits, half)


def _with_copies():
    """12 distinct training rows and 4 test rows; train row 7 copies row 0, row 9 copies row 2, test row 1 copies
    train row 4."""
    rng = np.random.default_rng(0)
    x_tr = rng.normal(size=(12, 1, 2, 2)).astype(np.float32)
    x_tr[7], x_tr[9] = x_tr[0], x_tr[2]
    x_te = rng.normal(size=(4, 1, 2, 2)).astype(np.float32)
    x_te[1] = x_tr[4]
    return from_arrays("copies", x_train=x_tr, y_train=np.arange(12) % 2, x_test=x_te, y_test=[0, 1, 0, 1],
                       class_names=("a", "b"), train_ids=np.arange(100, 112), test_ids=np.arange(200, 204))


def test_injected_duplicates_are_counted_named_and_warned():
    ds = _with_copies()
    with pytest.warns(DuplicateContentWarning) as caught:
        s = Splits.from_ids(ds, np.array([100, 102, 103]))  # rows 0 and 2 have copies (107, 109) in the retain set
    d = s.describe()["duplicates"]
    assert d["forget_retain"] == {"count": 2, "forget_ids": [100, 102], "retain_ids": [107, 109]}
    assert d["test_train"] == {"count": 1, "test_ids": [201], "train_ids": [104]}
    texts = [str(w.message) for w in caught]
    assert any("retrain" in t.lower() and "[100, 102]" in t for t in texts) and any("[201]" in t for t in texts)
    with pytest.warns(DuplicateContentWarning):  # both copies forgotten: no forget/retain duplicate left
        both = Splits.from_ids(ds, np.array([100, 107])).describe()["duplicates"]
    assert both["forget_retain"]["count"] == 0 and both["test_train"]["count"] == 1


def test_row_digests_are_sha256_of_row_bytes_and_cached_per_dataset(digits):
    x = np.arange(24, dtype=np.float32).reshape(4, 2, 3)
    x[3] = x[1]
    d = row_digests(x)
    assert d[0] == hashlib.sha256(x[0].tobytes()).digest() and d[1] == d[3] and len(set(d.tolist())) == 3
    assert partition_digests(digits, "train") is partition_digests(digits, "train")  # hashed once per dataset


def test_cli_prints_the_warning_as_one_line(tmp_path: Path):
    env = {**os.environ, "EXPUNGE_CACHE": str(tmp_path / "cache")}
    out = subprocess.run([sys.executable, "-m", "expunge.cli.main", "unlearn", "--data", "digits", "--model", "mlp",
                          "--forget", "random:0.5", "--method", "no-such-method"], capture_output=True, text=True,
                         env=env)
    lines = out.stderr.splitlines()
    assert lines[0].startswith("warning: the request forgets 674 of 1347") and "unreliable past 30%" in lines[0]
    assert lines[1].startswith("error: ") and out.returncode == 2 and len(lines) == 2
