"""``mia_loss_auc_matched``: the loss-LR attack against the test examples of the forget set's own distribution.

Known answers on lookup models (every example's loss is set exactly): the forget set's losses lie between those of
two test groups, so the whole-test attack is ambiguous while the matched one separates perfectly; and on random
requests the two metrics are the same number.
"""

from __future__ import annotations

import numpy as np
import pytest
from fakes_tier01 import LookupLogits, logits_with

from expunge.data.datasets import from_arrays
from expunge.data.request import ForgetRequest
from expunge.metrics.base import EvalContext, evaluate
from expunge.metrics.mia import forget_distribution_test_mask

N = 40  # examples per group; above the attack's 20-per-side minimum


def _table(y_all: np.ndarray, p_true: np.ndarray, num_classes: int) -> np.ndarray:
    return np.stack([logits_with(float(p), int(y), num_classes) for p, y in zip(p_true, y_all, strict=True)])


def _ctx(fine_train: np.ndarray, fine_test: np.ndarray, p_true: np.ndarray, request: str, *,
         coarse: tuple[int, ...] = ()) -> EvalContext:
    n_tr, n_te = len(fine_train), len(fine_test)
    kw = {"fine_to_coarse": coarse, "coarse_names": ("a", "b"), "labels": "coarse"} if coarse else {}
    n_fine = int(max(fine_train.max(), fine_test.max())) + 1
    ds = from_arrays("lookup", x_train=np.arange(n_tr, dtype=np.float32)[:, None], y_train=fine_train,
                     x_test=np.arange(n_tr, n_tr + n_te, dtype=np.float32)[:, None], y_test=fine_test,
                     class_names=tuple(str(c) for c in range(n_fine)), **kw)
    y_all = np.concatenate([ds.train.y.numpy(), ds.test.y.numpy()])
    splits = ForgetRequest.parse(request).resolve(ds, seed=0)
    return EvalContext(ds, splits, {"unlearned": LookupLogits(_table(y_all, p_true, ds.num_classes))}, seed=0)


def _p(rng: np.random.Generator, lo: float, hi: float) -> np.ndarray:
    return rng.uniform(lo, hi, N)


def _values(ctx: EvalContext) -> tuple[float, float]:
    res = evaluate(ctx, ["mia_loss_auc", "mia_loss_auc_matched"], roles=("unlearned",))
    return res["mia_loss_auc"]["unlearned"].value, res["mia_loss_auc_matched"]["unlearned"].value


def test_class_request_compares_with_the_forgotten_class_test_examples() -> None:
    rng = np.random.default_rng(0)
    fine_train, fine_test = np.repeat([0, 1], N), np.repeat([0, 1], N)
    # train class 1 (forgotten) p 0.90-0.95; test class 1 lower (higher loss), test class 0 higher (lower loss)
    p = np.concatenate([_p(rng, 0.6, 0.7), _p(rng, 0.90, 0.95), _p(rng, 0.97, 0.99), _p(rng, 0.3, 0.5)])
    ctx = _ctx(fine_train, fine_test, p, "class:1")
    whole, matched = _values(ctx)
    assert matched == pytest.approx(1.0)  # forget losses all below the class-1 test losses
    assert whole < 0.8  # half the test set has lower losses than the forget set: the whole-test attack is confused
    np.testing.assert_array_equal(forget_distribution_test_mask(ctx), fine_test == 1)


def test_subclass_request_compares_with_the_fine_class_test_examples() -> None:
    rng = np.random.default_rng(1)
    # fine classes 0, 1 -> coarse 0; fine 2, 3 -> coarse 1; forget fine class 2
    fine_train, fine_test = np.repeat([0, 1, 2, 3], N), np.repeat([0, 1, 2, 3], N)
    p_train = np.concatenate([_p(rng, 0.6, 0.7), _p(rng, 0.6, 0.7), _p(rng, 0.90, 0.95), _p(rng, 0.6, 0.7)])
    p_test = np.concatenate([_p(rng, 0.97, 0.99), _p(rng, 0.97, 0.99), _p(rng, 0.3, 0.5), _p(rng, 0.97, 0.99)])
    ctx = _ctx(fine_train, fine_test, np.concatenate([p_train, p_test]), "subclass:2", coarse=(0, 0, 1, 1))
    whole, matched = _values(ctx)
    assert matched == pytest.approx(1.0)
    assert whole < 0.8
    np.testing.assert_array_equal(forget_distribution_test_mask(ctx), fine_test == 2)


def test_random_request_equals_the_whole_test_attack() -> None:
    rng = np.random.default_rng(2)
    fine_train, fine_test = np.repeat([0, 1], 2 * N), np.repeat([0, 1], N)
    p = rng.uniform(0.3, 0.99, len(fine_train) + len(fine_test))
    ctx = _ctx(fine_train, fine_test, p, "random:0.5")
    whole, matched = _values(ctx)
    assert forget_distribution_test_mask(ctx) is None
    assert matched == whole and whole is not None


def test_too_few_matched_test_examples_gives_none_with_reason() -> None:
    rng = np.random.default_rng(3)
    fine_train, fine_test = np.repeat([0, 1], N), np.r_[np.zeros(N, dtype=int), np.ones(5, dtype=int)]
    p = rng.uniform(0.3, 0.99, len(fine_train) + len(fine_test))
    res = evaluate(_ctx(fine_train, fine_test, p, "class:1"), ["mia_loss_auc_matched"], roles=("unlearned",))
    v = res["mia_loss_auc_matched"]["unlearned"]
    assert v.value is None and v.reason
