"""Corrective unlearning: remove a planted backdoor when only part of the poisoned data is identified.

Paper: Goel, Prabhu, Torr, Kumaraguru, Sanyal, "Corrective Machine Unlearning", TMLR 2024, arXiv 2402.14015.
Reference: drimpossible/corrective-unlearning-bench ``src/datasets.py`` (``manip_dataset``, ``DatasetWrapper``).

Set-up (BadNets-style poisoning, as the reference):

1. A fraction ``poison`` of the training set (``round(poison·|D|)`` examples, drawn with the run's seed from the
   examples whose class is not ``target``) gets the trigger — a square patch in the bottom-right corner set to a
   white pixel's input value (``Dataset.input_range``; else the training set's maximum, the reference's
   ``max_val``) on every channel — and the label ``target``. The side is ``trigger_size``, or by default about a
   ninth of the image side and at least 2 pixels (2×2 on 8×8 digits, 3×3 on 28×28). The poisoned dataset is
   built with :func:`~expunge.data.datasets.from_arrays`, so it has its own fingerprint and every model trained on
   it is cached apart from the clean ones.
2. The **Original** is trained on the poisoned data; the **clean** model with the same recipe, seed and cache on the
   dataset without poison (:func:`~expunge.train.oracle.train_original`: it is the other scenarios' Original).
3. The deletion request identifies only a share ``identified`` of the poisoned examples (seeded draw; the validation
   request for tuning draws another share with seed + 1000). The **Retrain** is retrained without the identified
   part, so it still contains the unidentified poison — it is not the target here.

Metrics: everything tier 0, plus ``backdoor_asr`` (:mod:`expunge.metrics.backdoor`; the triggered test images of
non-target classes reach it through ``EvalContext.extras``) and clean test accuracy (``test_acc``: the test set is
never poisoned). Each record carries a ``clean`` block beside ``original`` and ``retrain`` and ``gap_to_clean``.
Success = the unlearned model's ASR falls to the clean model's level while test accuracy stays; the tuning objective
(:meth:`Corrective.objective`) is the mean of |ΔASR| and |Δtest_acc| to the clean model.

Choices the paper leaves to the benchmark: the reference draws the manipulated examples from all classes (an example
already of the target class only gets the patch); we draw from non-target classes so that every poisoned example
teaches the trigger → target association. The reference's patch is 3×3 on 32×32 CIFAR images.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from expunge._hparams import Hyperparams, hp
from expunge.data.datasets import Dataset, from_arrays, load_dataset
from expunge.data.request import ForgetRequest, Splits
from expunge.errors import InvalidForgetRequest
from expunge.metrics.backdoor import EXTRAS_KEY, TriggeredInputs
from expunge.protocols.pipeline import gaps, prepare_splits, values_of
from expunge.record import RunRecord
from expunge.scenarios.base import Scenario, Setting, register_scenario, request_seed
from expunge.store import ArtifactStore
from expunge.train.loop import TrainRecipe
from expunge.train.oracle import default_recipe, model_spec_for, train_original

REQUIRED_METRICS = ("backdoor_asr", "test_acc")
DERIVATION = "backdoor"  # Dataset.derivation["kind"] of a poisoned copy


@dataclass(frozen=True, kw_only=True)
class CorrectiveParams(Hyperparams):
    poison: float = hp(0.05, "fraction of the training set poisoned (trigger + relabel), drawn from non-target "
                             "classes", low=0.0, low_open=True, high=0.5)
    identified: float = hp(0.5, "share of the poisoned examples the deletion request identifies (seeded)", low=0.0,
                           low_open=True, high=1.0)
    target: int = hp(0, "the class every triggered image is relabelled to", low=0)
    trigger_size: int = hp(0, "side of the square trigger in pixels; 0 = max(2, side // 9)", low=0)


def trigger_side(input_shape: Sequence[int], size: int = 0) -> int:
    """The trigger's side for images of ``input_shape`` (C×H×W): ``size``, or max(2, min(H, W) // 9)."""
    if len(input_shape) != 3:
        raise InvalidForgetRequest(f"the corrective scenario plants an image trigger; inputs of shape "
                                   f"{tuple(input_shape)} are not images (C×H×W)")
    side = size or max(2, min(input_shape[1:]) // 9)
    if side >= min(input_shape[1:]):
        raise InvalidForgetRequest(f"a {side}×{side} trigger covers the whole {input_shape[1]}×{input_shape[2]} image")
    return side


def add_trigger(x: np.ndarray, side: int, value: float) -> np.ndarray:
    """A copy of the images ``x`` (N×C×H×W) with the bottom-right ``side``×``side`` corner set to ``value``."""
    out = np.array(x, dtype=np.float32, copy=True)
    out[..., -side:, -side:] = value
    return out


@dataclass(frozen=True, eq=False)
class PoisonedData:
    clean: Dataset
    dataset: Dataset
    poison_ids: np.ndarray
    target: int
    side: int
    value: float

    def triggered_test(self) -> TriggeredInputs:
        test = self.clean.test
        keep = test.y.numpy() != self.target
        x = torch.as_tensor(add_trigger(test.x.numpy()[keep], self.side, self.value))
        return TriggeredInputs(x, self.target, f"{int(keep.sum())} test images of non-target classes, "
                                               f"{self.side}×{self.side} trigger")


def poison_dataset(clean: Dataset, *, fraction: float, target: int, side: int = 0, seed: int = 0) -> PoisonedData:
    """Plant the trigger in ``fraction`` of the training set (non-target classes) and relabel those to ``target``."""
    if clean.label_set != "fine":
        raise InvalidForgetRequest("the corrective scenario poisons fine-label datasets only")
    if not 0 <= target < clean.num_classes:
        raise InvalidForgetRequest(f"target class {target} does not exist in {clean.name}: classes are "
                                   f"0..{clean.num_classes - 1}")
    side = trigger_side(clean.input_shape, side)
    train = clean.train
    candidates = np.flatnonzero(train.y.numpy() != target)
    n = round(fraction * len(train))
    if not 0 < n <= candidates.size:
        raise InvalidForgetRequest(f"poison={fraction} selects {n} of the {candidates.size} non-target training "
                                   f"examples of {clean.name}; choose a fraction that poisons at least one")
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0xBAD]))
    pos = np.sort(rng.choice(candidates, size=n, replace=False))
    value = float(clean.input_range[1]) if clean.input_range else float(train.x.max())  # a white pixel
    x, y = train.x.numpy().copy(), train.fine.copy()
    x[pos] = add_trigger(x[pos], side, value)
    y[pos] = target
    data = from_arrays(f"{clean.name}+backdoor", x_train=x, y_train=y, x_test=clean.test.x.numpy(),
                       y_test=clean.test.fine, class_names=clean.fine_class_names, train_ids=train.ids,
                       test_ids=clean.test.ids, owners=train.owners, input_range=clean.input_range,
                       derivation={"kind": DERIVATION, "clean": clean.name, "clean_fingerprint": clean.fingerprint,
                                   "fraction": fraction, "target": target, "side": side, "seed": seed})
    return PoisonedData(clean, data, np.sort(train.ids[pos]), target, side, value)


def rebuild_poisoned(derivation: Mapping[str, Any], data_dir: str | None = None) -> PoisonedData:
    """The poisoned data a run manifest's ``dataset_derivation`` describes (``expunge evaluate`` on a corrective
    run); the caller checks the rebuilt dataset's fingerprint against the manifest's."""
    clean = load_dataset(str(derivation["clean"]), data_dir=data_dir)
    return poison_dataset(clean, fraction=float(derivation["fraction"]), target=int(derivation["target"]),
                          side=int(derivation["side"]), seed=int(derivation["seed"]))


def _with_required(metrics: Iterable[str] | None) -> list[str] | None:
    return None if metrics is None else list(dict.fromkeys([*metrics, *REQUIRED_METRICS]))


@register_scenario
class Corrective(Scenario[CorrectiveParams]):
    """Remove a backdoor when only part of the poisoned examples is identified (ASR back to the clean model's)."""

    name = "corrective"
    Params = CorrectiveParams
    derivation_kind = DERIVATION

    def prepare(self, dataset: str | Dataset, model: str, *, seed: int = 0, store: ArtifactStore | None = None,
                data_dir: str | None = None, recipe: TrainRecipe | None = None, metrics: Iterable[str] | None = None,
                tier: int = 0, progress: bool = True, validation: bool = False) -> Setting:
        p = self.params
        clean = load_dataset(dataset, data_dir=data_dir) if isinstance(dataset, str) else dataset
        self.check_task(clean.task)  # a backdoor relabels to a target class: classification only
        poisoned = poison_dataset(clean, fraction=p.poison, target=p.target, side=p.trigger_size, seed=seed)
        rseed = request_seed(seed, validation)
        rng = np.random.default_rng(np.random.SeedSequence([rseed, 0x1D]))
        n_id = max(1, round(p.identified * poisoned.poison_ids.size))
        ids = np.sort(rng.choice(poisoned.poison_ids, size=n_id, replace=False))
        splits = Splits.from_ids(poisoned.dataset, ids, request=ForgetRequest("ids", ids=tuple(int(i) for i in ids)),
                                 seed=rseed)
        recipe = recipe or default_recipe(clean.name)
        clean_model = train_original(clean, model_spec_for(clean, model), recipe, seed=seed, store=store or
                                     ArtifactStore(), progress=progress)
        prep = prepare_splits(poisoned.dataset, model, splits, seed=seed, store=store, recipe=recipe,
                              metrics=_with_required(metrics), tier=tier, progress=progress,
                              references={"clean": clean_model.model},
                              extras={EXTRAS_KEY: poisoned.triggered_test()})
        info = {"clean_dataset": clean.name, "clean_fingerprint": clean.fingerprint, "clean_key": clean_model.key,
                "n_poisoned": int(poisoned.poison_ids.size), "n_identified": int(n_id), "target": p.target,
                "trigger": {"side": poisoned.side, "value": poisoned.value, "corner": "bottom-right"}}
        return Setting(self, [prep], seed, validation, info=info)

    def run(self, setting: Setting, method: str, params: Hyperparams | Mapping[str, Any] | None = None, *,
            metrics: Iterable[str] | None = None, tier: int = 0, progress: bool = False, save: bool = True,
            label: str = "", params_source: str | None = None) -> list[RunRecord]:
        records = super().run(setting, method, params, metrics=_with_required(metrics), tier=tier,
                              progress=progress, save=save, label=label, params_source=params_source)
        out = []
        for record, prep in zip(records, setting.steps, strict=True):
            clean = values_of(prep.baseline, "clean")
            out.append(record.with_extra(clean=clean, gap_to_clean=gaps(record.metrics, clean)))
        return out

    def objective(self, records: Sequence[RunRecord]) -> float | None:
        """Mean of |ΔASR| and |Δtest_acc| to the clean model (the Retrain still holds unidentified poison)."""
        per_record = []
        for rec in records:
            gap = [rec.extra.get("gap_to_clean", {}).get(m) for m in REQUIRED_METRICS]
            if any(g is None for g in gap):
                return None
            per_record.append(statistics.fmean(gap))
        return statistics.fmean(per_record) if per_record else None

    @classmethod
    def rebuild_dataset(cls, derivation: Mapping[str, Any], data_dir: str | None) \
            -> tuple[Dataset, dict[str, Any]]:
        """The poisoned copy a stored run was made on (the caller checks its fingerprint) and its triggered test
        images, which ``backdoor_asr`` scores."""
        poisoned = rebuild_poisoned(derivation, data_dir)
        return poisoned.dataset, {EXTRAS_KEY: poisoned.triggered_test()}
