"""Representation probes and CKA on models with exactly known penultimate features (no training of networks)."""

from __future__ import annotations

import numpy as np
import pytest
from fakes_tier01 import LookupFeatures, LookupFeaturesNoMethod, lookup_dataset, registered

from expunge.data.request import ForgetRequest, Splits
from expunge.metrics._common import penultimate_features
from expunge.metrics.base import EvalContext, evaluate

C, N = 3, 30
Y_TRAIN = np.repeat(np.arange(C), N)  # ids 0..89, class 2 = ids 60..89
Y_TEST = np.repeat(np.arange(C), N)
FORGET = np.arange(60, 90)
ALL_Y = np.r_[Y_TRAIN, Y_TEST]
NAMES = registered(family="representation")


def make_ctx(models: dict[str, object], class_request: bool = True) -> EvalContext:
    ds = lookup_dataset(Y_TRAIN.tolist(), Y_TEST.tolist(), C)
    splits = Splits.from_ids(ds, FORGET, forget_classes=(2,) if class_request else (),
                             request=ForgetRequest("class", classes=("2",)))
    return EvalContext(ds, splits, models)


def onehot_features(noise: float = 0.05, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.eye(C)[ALL_Y] + noise * rng.standard_normal((len(ALL_Y), C))


def test_known_answers():
    feats = onehot_features()
    leaky = feats.copy()
    leaky[FORGET, :] += 5.0  # forget examples stand out from unseen class-2 test examples
    erased = feats.copy()
    erased[FORGET] = feats[:N]  # each forget example shares the features of a class-0 retain example
    rot = feats @ np.array([[0.0, 1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]) * 3.0
    ctx = make_ctx({"original": LookupFeatures(leaky, C), "retrain": LookupFeatures(erased, C),
                    "unlearned": LookupFeatures(rot, C)})
    res = evaluate(ctx, NAMES)
    assert res["probe_membership_auc"]["original"].value == 1.0
    assert res["probe_membership_auc"]["original"].details["class_matched"] is True
    assert abs(res["probe_membership_auc"]["unlearned"].value - 0.5) < 0.25  # same law for forget and test
    assert res["probe_forget_label_acc"]["unlearned"].value == 1.0  # the label is linearly readable
    assert res["probe_forget_label_acc"]["retrain"].value == 0.0  # class 2 looks exactly like class 0
    assert res["cka_to_original_test"]["original"].value == pytest.approx(1.0)
    # rotation + scale of the original's features *before* the leak: CKA to the leaky original < 1 on forget only
    assert res["cka_to_original_test"]["unlearned"].value == pytest.approx(1.0, abs=1e-9)
    assert res["cka_to_original_forget"]["unlearned"].value < 1.0
    for name in NAMES:
        assert res[name]["unlearned"].details is not None


def test_cka_one_feature_known_answer():
    ds = lookup_dataset([0, 0, 0, 1], [1], 2)
    splits = Splits.from_ids(ds, np.array([0, 1, 2]))
    f_o, f_u = np.array([[1.0], [2.0], [3.0], [0.0], [0.0]]), np.array([[1.0], [3.0], [2.0], [0.0], [0.0]])
    ctx = EvalContext(ds, splits, {"original": LookupFeatures(f_o, 2), "unlearned": LookupFeatures(f_u, 2)})
    v = evaluate(ctx, ["cka_to_original_forget"], roles=("unlearned",))["cka_to_original_forget"]["unlearned"]
    assert v.value == pytest.approx(0.25)


def test_fallback_hooks_the_last_linear_input():
    feats = onehot_features()
    x = ds_x = lookup_dataset(Y_TRAIN.tolist(), Y_TEST.tolist(), C).train.x
    with_method = penultimate_features(LookupFeatures(feats, C), x)
    without = penultimate_features(LookupFeaturesNoMethod(feats, C), ds_x)
    np.testing.assert_allclose(with_method, without)
    np.testing.assert_allclose(without, feats[:len(x)], atol=1e-6)


def test_no_features_gives_reason():
    from fakes_tier01 import LookupLogits

    ctx = make_ctx({"unlearned": LookupLogits(np.zeros((180, C))), "original": LookupLogits(np.ones((180, C)))})
    res = evaluate(ctx, NAMES, roles=("unlearned",))
    for name in NAMES:
        v = res[name]["unlearned"]
        assert v.value is None and "no penultimate features" in v.reason, name
