"""The scenario protocol, its registry and the tier-0 tuning objective.

A :class:`Scenario` has a registry ``name`` (``full-class``, ``sub-class``, ``random``, ``owners``, ``sequential``,
``corrective``), a ``Params`` dataclass (declared with :func:`~expunge._hparams.hp`, validated, overridable from the
CLI with ``--set NAME=VALUE``) and two stages:

* :meth:`Scenario.prepare` builds a :class:`Setting` for one (dataset, model, seed): the requests, each as an
  :class:`~expunge.experiment.Prepared` (Original, retrain oracle, baseline metrics, all cached). Everything is
  validated before anything is trained. ``validation=True`` builds the *validation* request used for tuning: the same
  Original, a different request (another class, another random draw: seed + :data:`VALIDATION_SEED_OFFSET`), so
  hyperparameters are never chosen on the request they are evaluated on.
* :meth:`Scenario.run` runs one method on a setting and returns records in the format of
  :func:`expunge.experiment.run_one`, tagged with ``scenario``, ``scenario_params`` and ``validation``. A setting is
  reused by every method and every tuning trial.

:meth:`Scenario.objective` scores records for tuning: by default :func:`gap_objective`, the mean tier-0 gap to the
retrain oracle (never raw forget accuracy). Adding a scenario = one module in this package decorated with
:func:`register_scenario`, plus its test.
"""

from __future__ import annotations

import statistics
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

from expunge._hparams import Hyperparams
from expunge._registry import Registry
from expunge.data.datasets import Dataset, LabelSet, load_dataset
from expunge.data.request import ForgetRequest, Splits
from expunge.experiment import Prepared, prepare_splits, run_one
from expunge.store import ArtifactStore
from expunge.train.loop import TrainRecipe

P = TypeVar("P", bound=Hyperparams)
VALIDATION_SEED_OFFSET = 1000
OBJECTIVE_METRICS = ("forget_acc", "test_acc", "mia_loss_auc")


def request_seed(seed: int, validation: bool) -> int:
    """Seed of the request draw: the run's seed, or seed + 1000 for the validation request used by tuning."""
    return seed + VALIDATION_SEED_OFFSET if validation else seed


@dataclass
class Setting:
    """A scenario prepared for one (dataset, model, seed). ``steps`` are evaluated in order; ``method_splits[i]``,
    when given, is what the method sees at step i (else the step's own splits); ``info`` (JSON-able) is copied into
    every record as ``scenario_info``."""

    scenario: Scenario[Any]
    steps: list[Prepared]
    seed: int
    validation: bool = False
    method_splits: list[Splits] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def dataset_name(self) -> str:
        """The dataset the user named (the corrective scenario trains on a poisoned copy of it)."""
        return str(self.info.get("clean_dataset", self.steps[0].dataset.name))


class Scenario(ABC, Generic[P]):
    name: ClassVar[str]
    Params: ClassVar[type[Hyperparams]]
    # the tier-0 gaps the tuning objective averages (tuning evaluates only these)
    objective_metrics: ClassVar[tuple[str, ...]] = OBJECTIVE_METRICS

    def __init__(self, params: P | Mapping[str, Any] | None = None) -> None:
        if isinstance(params, Mapping):
            params = self.Params.from_overrides(params)  # type: ignore[assignment]
        self.params: P = params if params is not None else self.Params()  # type: ignore[assignment]

    @abstractmethod
    def prepare(self, dataset: str | Dataset, model: str, *, seed: int = 0, store: ArtifactStore | None = None,
                data_dir: str | None = None, recipe: TrainRecipe | None = None, metrics: Iterable[str] | None = None,
                tier: int = 0, progress: bool = True, validation: bool = False) -> Setting:
        """Build, validate and cache the scenario's request(s) with their Original and oracles."""

    def run(self, setting: Setting, method: str, params: Hyperparams | Mapping[str, Any] | None = None, *,
            metrics: Iterable[str] | None = None, tier: int = 0, progress: bool = False,
            save: bool = True) -> list[dict[str, Any]]:
        """Run ``method`` on each step independently, from the Original (overridden by sequential scenarios)."""
        return [self.tag(run_one(prep, method, params, metrics=metrics, tier=tier, progress=progress, save=save)[0],
                         setting) for prep in setting.steps]

    def objective(self, records: Sequence[Mapping[str, Any]]) -> float | None:
        """Tuning objective (lower is better); None when undefined (a collapsed model, a missing metric)."""
        return gap_objective(records, self.objective_metrics)

    def tag(self, record: dict[str, Any], setting: Setting) -> dict[str, Any]:
        record.update(scenario=self.name, scenario_params=self.params.to_dict(), validation=setting.validation)
        if setting.info:
            record["scenario_info"] = setting.info
        return record

    @classmethod
    def summary(cls) -> str:
        return (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""

    @classmethod
    def describe(cls) -> dict[str, Any]:
        return {"name": cls.name, "summary": cls.summary(), "params": cls.Params.describe()}


class SingleRequest(Scenario[P]):
    """A scenario of one request resolved by :meth:`ForgetRequest.resolve` (full-class, sub-class, random, owners)."""

    labels: ClassVar[LabelSet] = "fine"

    @abstractmethod
    def request(self, dataset: Dataset, *, seed: int, validation: bool) -> ForgetRequest:
        """The evaluation request, or (``validation``) a different request of the same kind for tuning."""

    def prepare(self, dataset: str | Dataset, model: str, *, seed: int = 0, store: ArtifactStore | None = None,
                data_dir: str | None = None, recipe: TrainRecipe | None = None, metrics: Iterable[str] | None = None,
                tier: int = 0, progress: bool = True, validation: bool = False) -> Setting:
        ds = load_dataset(dataset, data_dir=data_dir, labels=self.labels) if isinstance(dataset, str) else dataset
        req = self.request(ds, seed=seed, validation=validation)
        splits = req.resolve(ds, seed=request_seed(seed, validation))
        prep = prepare_splits(ds, model, splits, seed=seed, store=store, recipe=recipe, metrics=metrics, tier=tier,
                              progress=progress)
        return Setting(self, [prep], seed, validation)


def gap_objective(records: Sequence[Mapping[str, Any]], metrics: Sequence[str] = OBJECTIVE_METRICS) -> float | None:
    """Mean over records of the mean gap to the retrain oracle on ``metrics`` (|Δforget_acc|, |Δtest_acc|,
    |Δmia_loss_auc|): 0 = indistinguishable from retraining on these tier-0 measures. None if any gap is missing."""
    per_record = []
    for rec in records:
        gaps = [rec.get("gap_to_retrain", {}).get(m) for m in metrics]
        if not gaps or any(g is None for g in gaps):
            return None
        per_record.append(statistics.fmean(gaps))
    return statistics.fmean(per_record) if per_record else None


SCENARIOS: Registry[type[Scenario[Any]]] = Registry("scenario", package="expunge.scenarios",
                                                     entry_point_group="expunge.scenarios")


def register_scenario(cls: type[Scenario[Any]]) -> type[Scenario[Any]]:
    cls.Params.owner = f"scenario {cls.name}"
    return SCENARIOS.register(cls.name, cls)


def get_scenario(name: str, params: Hyperparams | Mapping[str, Any] | None = None) -> Scenario[Any]:
    return SCENARIOS.get(name)(params)  # type: ignore[arg-type]
