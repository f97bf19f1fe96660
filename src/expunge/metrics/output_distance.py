"""Output closeness to a reference model on the same inputs (tier 0), beside ``js_to_retrain_<split>``.

For split S ∈ {forget, test}, p = softmax of the evaluated model, q = softmax of the reference, per example then
averaged over S:

* ``symkl_to_retrain_<S>`` — Jeffreys divergence KL(p‖q) + KL(q‖p), nats, probabilities floored at 1e-12.
* ``activation_distance_l2_<S>`` / ``activation_distance_l1_<S>`` — mean ‖p − q‖₂ (Chundawat et al., AAAI 2023:
  vikram2000b/bad-teaching-unlearning ``metrics.py:actv_dist``, also in SSD) and mean ‖p − q‖₁ (meghdadk/SCRUB
  notebooks) to the Retrain.
* ``agreement_top1_<S>`` — share of examples with argmax p = argmax q, q from the Retrain (SUPREME's "completeness").
* ``js_to_original_<S>`` — JS divergence in bits to the Original (Lin 1991): how far the model moved on S.

The reference scores itself exactly (0 distance, agreement 1). A missing reference gives None ("no retrain model" /
"no original model"). Standard errors: sample std / √n of the per-example values (binomial for agreement).
"""

from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np

from expunge.metrics.base import EvalContext, Metric, MetricValue, register_metric
from expunge.metrics.functional.divergence import (
    activation_distance,
    js_divergence,
    softmax,
    symmetric_kl,
    top1_agreement,
)
from expunge.metrics.functional.stats import proportion_se


def _mean_se(values: np.ndarray) -> MetricValue:
    if len(values) == 0:
        return MetricValue(None, reason="empty split")
    se = float(values.std(ddof=1) / np.sqrt(len(values))) if len(values) > 1 else None
    return MetricValue(float(values.mean()), se=se)


class _ToReference(Metric):
    family = "divergence"
    higher_is_better: ClassVar[bool | None] = False
    split: ClassVar[str]
    reference: ClassVar[str] = "retrain"

    def per_example(self, p: np.ndarray, q: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def compute(self, ctx: EvalContext, role: str) -> MetricValue:
        p = softmax(ctx.logits(role, self.split))
        q = softmax(ctx.logits(self.reference, self.split))
        if len(p) == 0:
            return MetricValue(None, reason=f"empty {self.split} split")
        return self.summarise(p, q)

    def summarise(self, p: np.ndarray, q: np.ndarray) -> MetricValue:
        return _mean_se(self.per_example(p, q))


class _SymKL(_ToReference):
    needs = frozenset({"retrain"})

    def per_example(self, p: np.ndarray, q: np.ndarray) -> np.ndarray:
        return symmetric_kl(p, q)


class _Activation(_ToReference):
    needs = frozenset({"retrain"})
    ord: ClassVar[Literal[1, 2]]

    def per_example(self, p: np.ndarray, q: np.ndarray) -> np.ndarray:
        return np.linalg.norm(p - q, ord=self.ord, axis=1)  # only for the se; the value is the functional's

    def summarise(self, p: np.ndarray, q: np.ndarray) -> MetricValue:
        se = _mean_se(self.per_example(p, q)).se
        return MetricValue(activation_distance(p, q, ord=self.ord), se=se)


class _L2(_Activation):
    ord = 2


class _L1(_Activation):
    ord = 1


class _Agreement(_ToReference):
    needs = frozenset({"retrain"})
    higher_is_better = True

    def summarise(self, p: np.ndarray, q: np.ndarray) -> MetricValue:
        v = top1_agreement(p, q)
        return MetricValue(v, se=None if v is None else proportion_se(v, len(p)))


class _JSOriginal(_ToReference):
    needs = frozenset({"original"})
    reference = "original"
    higher_is_better = None

    def per_example(self, p: np.ndarray, q: np.ndarray) -> np.ndarray:
        return js_divergence(p, q, base=2)


def _register(base: type[_ToReference], stem: str, what: str) -> None:
    for split in ("forget", "test"):
        cls = type(f"{base.__name__}_{split}", (base,), {
            "name": f"{stem}_{split}", "split": split, "__module__": __name__,
            "definition": f"{what} on the {split} set", "__doc__": f"{what} on the {split} set."})
        register_metric(cls)


_register(_SymKL, "symkl_to_retrain", "mean symmetric KL divergence (nats) to the retrained model's outputs")
_register(_L2, "activation_distance_l2", "mean L2 distance between output probabilities and the retrained model's")
_register(_L1, "activation_distance_l1", "mean L1 distance between output probabilities and the retrained model's")
_register(_Agreement, "agreement_top1", "share of examples whose top-1 prediction agrees with the retrained model's")
_register(_JSOriginal, "js_to_original", "mean Jensen-Shannon divergence (bits) to the original model's outputs")
