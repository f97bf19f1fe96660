"""Client backdoor: forget one federated client that trained with a trigger (ConDa's backdoor test).

Paper: Chundawat, Niroula, Dhungana, Schoepf, Mandal, Brintrup, "ConDa: Fast Federated Unlearning with Contribution
Dampening", arXiv 2410.04144. Reference: respailab/ConDa-Federated-Unlearning ``FedUnlearner/attacks/backdoor.py``
(``create_backdoor_dataset``, ``evaluate_backdoor_attack``).

Set-up, on a federated dataset (:mod:`expunge.data.federated`):

1. The request is the shared ``owners:1`` — one client drawn with the run's seed, exactly the client ``expunge
   unlearn --forget owners:1`` forgets. The validation request for tuning forgets another, clean client of the same
   federation (``owners:1`` drawn with seed + 1000, or the next seed whose draw is not the attacker), so tuning never
   sees the evaluated client and keeps the same Original; there the Retrain keeps the backdoor, and the objective
   (gaps to the Retrain on ``backdoor_asr`` and ``test_acc``) asks a method not to damage what it should keep.
2. That client's data gets the trigger: a share ``poison`` of its examples whose class is not ``target`` (seeded
   draw) get the corrective scenario's trigger (:func:`~expunge.scenarios.corrective.add_trigger`: a white square in
   the bottom-right corner, side max(2, side // 9): 3×3 on 28×28) and the label ``target``. The other clients are
   clean. The poisoned copy has its own fingerprint (its models are cached apart) and a ``derivation`` from which
   ``expunge evaluate`` rebuilds it.
3. The **Original** is the federation with the backdoored client; the **Retrain** is FedAvg from scratch without it —
   it never saw a trigger, so its attack success rate is the level unlearning must reach (ConDa: "the ASR of the
   unlearned model falls to the retrained model's while clean accuracy stays").

Metrics: tier 0 plus ``backdoor_asr`` (triggered test images of non-target classes, :mod:`expunge.metrics.backdoor`)
and ``client_mia_auc``. The tuning objective is the mean gap to the Retrain on ``backdoor_asr`` and ``test_acc``.

Choices the paper leaves open: the reference *appends* ``num_backdoor_samples_per_forget_client`` triggered copies of
the client's images (label 0, drawn from every class) to its data; here a share of the client's own non-target
examples is triggered and relabelled in place (as the corrective scenario does), so the forget set is exactly the
client's examples and every poisoned example teaches trigger → target. ``poison`` = 1.0 by default — an attacker
client whose every non-target example carries the trigger: the client is one of K = 10 in a FedAvg average, and on
the 12,000-image subset (20 rounds) a share of 0.5 left the Original's attack success rate at 0.26 (fashion-mnist-fed-
iid, seed 0) against 0.44 at 1.0, too weak to measure its removal well.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from expunge._hparams import Hyperparams, hp
from expunge.data.datasets import Dataset, fingerprint_arrays, load_dataset
from expunge.data.request import ForgetRequest
from expunge.errors import InvalidForgetRequest
from expunge.metrics.backdoor import EXTRAS_KEY, TriggeredInputs
from expunge.protocols.pipeline import prepare_splits
from expunge.record import RunRecord
from expunge.scenarios.base import Scenario, Setting, register_scenario, request_seed
from expunge.scenarios.corrective import add_trigger, trigger_side
from expunge.store import ArtifactStore
from expunge.train.loop import TrainRecipe

REQUIRED_METRICS = ("backdoor_asr", "test_acc", "client_mia_auc")
DERIVATION = "client_backdoor"


@dataclass(frozen=True, kw_only=True)
class ClientBackdoorParams(Hyperparams):
    poison: float = hp(1.0, "share of the forgotten client's non-target examples given the trigger and the target "
                            "label", low=0.0, low_open=True, high=1.0)
    target: int = hp(0, "the class every triggered image is relabelled to (the reference's backdoor_label)", low=0)
    trigger_size: int = hp(0, "side of the square trigger in pixels; 0 = max(2, side // 9)", low=0)


def forgotten_client(dataset: Dataset, seed: int) -> int:
    """The client ``owners:1`` draws on ``dataset`` with ``seed`` (the one that gets the trigger)."""
    splits = ForgetRequest("owners", n_owners=1).resolve(dataset, seed=seed)
    return int(dataset.train.owners[splits.forget[0]])  # type: ignore[index]


def backdoor_client(clean: Dataset, *, client: int, fraction: float, target: int, side: int = 0, seed: int = 0) \
        -> tuple[Dataset, TriggeredInputs]:
    """``clean`` with a share ``fraction`` of ``client``'s non-target examples triggered and relabelled to
    ``target``, and the triggered non-target test images ``backdoor_asr`` scores.

    Raises:
        InvalidForgetRequest: no such target class or client, or the client holds no example to poison.
    """
    if not 0 <= target < clean.num_classes:
        raise InvalidForgetRequest(f"target class {target} does not exist in {clean.name}: classes are "
                                   f"0..{clean.num_classes - 1}")
    side = trigger_side(clean.input_shape, side)
    train = clean.train
    owners = train.owners if train.owners is not None else np.zeros(0, np.int64)
    candidates = np.flatnonzero((owners == client) & (train.fine != target))
    n = round(fraction * candidates.size)
    if n < 1:
        raise InvalidForgetRequest(f"client {client} of {clean.name} holds {candidates.size} examples outside the "
                                   f"target class {target}; poison={fraction} poisons none. Fix: another target class, "
                                   "a larger poison share, or another seed (which draws another client)")
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0xBAC]))
    pos = np.sort(rng.choice(candidates, size=n, replace=False))
    value = float(clean.input_range[1]) if clean.input_range else float(train.x.max())  # a white pixel
    x, fine = train.x.numpy().copy(), train.fine.copy()
    x[pos] = add_trigger(x[pos], side, value)
    fine[pos] = target
    derivation = {"kind": DERIVATION, "clean": clean.name, "clean_fingerprint": clean.fingerprint, "client": client,
                  "fraction": fraction, "target": target, "side": side, "seed": seed}
    poisoned = replace(train, x=torch.as_tensor(x), y=torch.as_tensor(fine), fine=fine)
    fp = fingerprint_arrays(x, fine, extra=f"{clean.fingerprint}|{DERIVATION}|{client}|{fraction}|{target}|{side}")
    dataset = replace(clean, name=f"{clean.name}+backdoor", train=poisoned, fingerprint=fp, derivation=derivation)
    keep = clean.test.y.numpy() != target
    probe = TriggeredInputs(torch.as_tensor(add_trigger(clean.test.x.numpy()[keep], side, value)), target,
                            f"{int(keep.sum())} test images of non-target classes, {side}×{side} trigger")
    return dataset, probe


def _with_required(metrics: Iterable[str] | None) -> list[str] | None:
    return None if metrics is None else list(dict.fromkeys([*metrics, *REQUIRED_METRICS]))


@register_scenario
class ClientBackdoor(Scenario[ClientBackdoorParams]):
    """Forget one federated client that trained with a backdoor trigger (ASR back to the Retrain's)."""

    name = "client_backdoor"
    Params = ClientBackdoorParams
    tasks = frozenset({"federated"})
    derivation_kind = DERIVATION
    objective_metrics = ("backdoor_asr", "test_acc")
    preset_fallback = "owners"

    def prepare(self, dataset: str | Dataset, model: str, *, seed: int = 0, store: ArtifactStore | None = None,
                data_dir: str | None = None, recipe: TrainRecipe | None = None, metrics: Iterable[str] | None = None,
                tier: int = 0, progress: bool = True, validation: bool = False) -> Setting:
        p = self.params
        clean = load_dataset(dataset, data_dir=data_dir) if isinstance(dataset, str) else dataset
        self.check_task(clean.task)
        attacker = forgotten_client(clean, seed)
        poisoned, probe = backdoor_client(clean, client=attacker, fraction=p.poison, target=p.target,
                                          side=p.trigger_size, seed=seed)
        rseed = request_seed(seed, validation)
        if validation:  # another client of the same federation (same Original): the first later draw that differs
            while forgotten_client(clean, rseed) == attacker:
                rseed += 1
        splits = ForgetRequest("owners", n_owners=1).resolve(poisoned, seed=rseed)  # the owners are unchanged
        client = int(poisoned.train.owners[splits.forget[0]])  # type: ignore[index]
        prep = prepare_splits(poisoned, model, splits, seed=seed, store=store, recipe=recipe,
                              metrics=_with_required(metrics), tier=tier, progress=progress,
                              extras={EXTRAS_KEY: probe})
        n_poison = int(np.sum(poisoned.train.fine != clean.train.fine))
        info = {"clean_dataset": clean.name, "clean_fingerprint": clean.fingerprint, "client": client,
                "attacker": attacker,
                "client_size": int(splits.forget.size), "n_poisoned": n_poison, "target": p.target,
                "trigger": {"side": poisoned.derivation["side"] if poisoned.derivation else None,
                            "corner": "bottom-right"}}
        return Setting(self, [prep], seed, validation, info=info)

    def run(self, setting: Setting, method: str, params: Hyperparams | Mapping[str, Any] | None = None, *,
            metrics: Iterable[str] | None = None, tier: int = 0, progress: bool = False, save: bool = True,
            label: str = "", params_source: str | None = None) -> list[RunRecord]:
        return super().run(setting, method, params, metrics=_with_required(metrics), tier=tier, progress=progress,
                           save=save, label=label, params_source=params_source)

    @classmethod
    def rebuild_dataset(cls, derivation: Mapping[str, Any], data_dir: str | None) \
            -> tuple[Dataset, dict[str, Any]]:
        """The poisoned federation a stored run was made on (the caller checks its fingerprint) and its probe."""
        clean = load_dataset(str(derivation["clean"]), data_dir=data_dir)
        dataset, probe = backdoor_client(clean, client=int(derivation["client"]),
                                         fraction=float(derivation["fraction"]), target=int(derivation["target"]),
                                         side=int(derivation["side"]), seed=int(derivation["seed"]))
        return dataset, {EXTRAS_KEY: probe}
