"""The scenario protocol, its registry and the tier-0 tuning objective.

A :class:`Scenario` has a registry ``name`` (``full-class``, ``sub-class``, ``random``, ``owners``, ``sequential``,
``corrective``, ``hard-forget``), a ``Params`` dataclass (declared with :func:`~expunge._hparams.hp`, validated; the
CLI takes each field as ``--NAME VALUE`` or ``--set NAME=VALUE``) and two stages:

* :meth:`Scenario.prepare` builds a :class:`Setting` for one (dataset, model, seed): the requests, each as a
  :class:`~expunge.protocols.pipeline.Prepared` (Original, retrain oracle, baseline metrics, all cached). Everything
  is validated before anything is trained. ``validation=True`` builds the *validation* request used for tuning: the
  same Original, a different request (another class, another random draw: seed + :data:`VALIDATION_SEED_OFFSET`), so
  hyperparameters are never chosen on the request they are evaluated on.
* :meth:`Scenario.run` runs one method on a setting and returns one :class:`~expunge.record.RunRecord` per request,
  tagged (``extra``) with ``scenario``, ``scenario_params`` and ``validation``. A setting is reused by every method and
  every tuning trial.

Everything else a scenario owns is declared on its class, so adding one is one module in this package (decorated with
:func:`register_scenario`) plus its test: its request kind (a :class:`~expunge.data.request.RequestKind` in the same
module, for ``--forget KIND:ARG``), the preset it borrows when it has none of its own (``preset_fallback``), the
metrics its tuning objective averages (``objective_metrics``, scored by :meth:`Scenario.objective`), the tasks it
runs on (``tasks``; default classification, refused otherwise before training by :meth:`Scenario.check_task`) and, for a
scenario that derives a new dataset (a poisoned copy), how ``expunge evaluate`` rebuilds it
(``derivation_kind`` + :meth:`Scenario.rebuild_dataset`).
"""

from __future__ import annotations

import statistics
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

from expunge import presets
from expunge._hparams import Hyperparams
from expunge._registry import Registry, doc_summary
from expunge.data.datasets import Dataset
from expunge.data.request import REQUEST_KINDS, ForgetRequest, Splits, dataset_for
from expunge.errors import ArtifactError
from expunge.protocols.pipeline import Prepared, prepare_splits, run_step
from expunge.record import RunRecord
from expunge.store import ArtifactStore
from expunge.tasks.base import check_supported
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
    # the scenario whose tuned preset this one uses when it has none of its own (None: no fallback)
    preset_fallback: ClassVar[str | None] = None
    # Dataset.derivation["kind"] of the datasets this scenario derives (None: it derives none)
    derivation_kind: ClassVar[str | None] = None
    # the tasks whose datasets it can run on (the request kinds it draws must support them too)
    tasks: ClassVar[frozenset[str]] = frozenset({"classification"})

    def __init__(self, params: P | Mapping[str, Any] | None = None) -> None:
        if isinstance(params, Mapping):
            params = self.Params.from_overrides(params)  # type: ignore[assignment]
        self.params: P = params if params is not None else self.Params()  # type: ignore[assignment]

    @abstractmethod
    def prepare(self, dataset: str | Dataset, model: str, *, seed: int = 0, store: ArtifactStore | None = None,
                data_dir: str | None = None, recipe: TrainRecipe | None = None, metrics: Iterable[str] | None = None,
                tier: int = 0, progress: bool = True, validation: bool = False) -> Setting:
        """Build, validate and cache the scenario's request(s) with their Original and oracles."""

    @classmethod
    def check_task(cls, task: str) -> None:
        """Refuse a dataset of ``task`` unless this scenario declares it (:attr:`tasks`), before anything is trained.

        Raises:
            UnsupportedTask: the scenario does not support ``task``."""
        check_supported("scenario", cls.name, cls.tasks, task)

    def run(self, setting: Setting, method: str, params: Hyperparams | Mapping[str, Any] | None = None, *,
            metrics: Iterable[str] | None = None, tier: int = 0, progress: bool = False, save: bool = True,
            label: str = "", params_source: str | None = None) -> list[RunRecord]:
        """Run ``method`` on each step independently, from the Original (overridden by sequential scenarios)."""
        return [self.tag(run_step(prep, method, params, metrics=metrics, tier=tier, progress=progress, save=save,
                                  label=label, params_source=params_source)[0], setting)
                for prep in setting.steps]

    def objective(self, records: Sequence[RunRecord]) -> float | None:
        """Tuning objective (lower is better); None when undefined (a collapsed model, a missing metric)."""
        return gap_objective(records, self.objective_metrics)

    def tag(self, record: RunRecord, setting: Setting) -> RunRecord:
        tags: dict[str, Any] = {"scenario": self.name, "scenario_params": self.params.to_dict(),
                                "validation": setting.validation}
        if setting.info:
            tags["scenario_info"] = setting.info
        return record.with_extra(**tags)

    @classmethod
    def preset_for(cls, dataset: str, model: str, method: str) -> tuple[str, dict[str, Any]] | None:
        """``(preset name, values)`` of the preset tuned for ``method`` on this scenario (else on its
        :attr:`preset_fallback`) for (dataset, model); None when there is none."""
        for scen in (cls.name, cls.preset_fallback):
            if scen is None:
                continue
            name = f"{dataset}/{model}/{scen}"
            try:
                return name, presets.method_values(name, method)
            except presets.UnknownPreset:
                continue
        return None

    @classmethod
    def rebuild_dataset(cls, derivation: Mapping[str, Any], data_dir: str | None) \
            -> tuple[Dataset, dict[str, Any]]:
        """The dataset a stored run's ``dataset_derivation`` describes, and the extras its metrics need."""
        raise ArtifactError(f"scenario {cls.name!r} derives no dataset; cannot rebuild {dict(derivation)!r}")

    @classmethod
    def summary(cls) -> str:
        return doc_summary(cls)

    @classmethod
    def describe(cls) -> dict[str, Any]:
        kinds = sorted({k.syntax for _, k in REQUEST_KINDS.items() if k.scenario == cls.name})
        return {"name": cls.name, "summary": cls.summary(), "params": cls.Params.describe(),
                "request_kinds": kinds, "preset_fallback": cls.preset_fallback, "tasks": sorted(cls.tasks)}


class SingleRequest(Scenario[P]):
    """A scenario of one request of its :attr:`request_kind` (full-class, sub-class, random, owners)."""

    request_kind: ClassVar[str]

    @abstractmethod
    def request(self, dataset: Dataset, *, seed: int, validation: bool) -> ForgetRequest:
        """The evaluation request, or (``validation``) a different request of the same kind for tuning."""

    def prepare(self, dataset: str | Dataset, model: str, *, seed: int = 0, store: ArtifactStore | None = None,
                data_dir: str | None = None, recipe: TrainRecipe | None = None, metrics: Iterable[str] | None = None,
                tier: int = 0, progress: bool = True, validation: bool = False) -> Setting:
        ds = dataset_for(dataset, self.request_kind, data_dir=data_dir)
        self.check_task(ds.task)
        req = self.request(ds, seed=seed, validation=validation)
        splits = req.resolve(ds, seed=request_seed(seed, validation))
        prep = prepare_splits(ds, model, splits, seed=seed, store=store, recipe=recipe, metrics=metrics, tier=tier,
                              progress=progress)
        return Setting(self, [prep], seed, validation)


def gap_objective(records: Sequence[RunRecord], metrics: Sequence[str] = OBJECTIVE_METRICS) -> float | None:
    """Mean over records of the mean gap to the retrain oracle on ``metrics`` (|Δforget_acc|, |Δtest_acc|,
    |Δmia_loss_auc|): 0 = indistinguishable from retraining on these tier-0 measures. None if any gap is missing."""
    per_record = []
    for rec in records:
        gaps = [rec.gap_to_retrain.get(m) for m in metrics]
        if not gaps or any(g is None for g in gaps):
            return None
        per_record.append(statistics.fmean(gaps))  # type: ignore[arg-type]
    return statistics.fmean(per_record) if per_record else None


SCENARIOS: Registry[type[Scenario[Any]]] = Registry("scenario", package="expunge.scenarios",
                                                     entry_point_group="expunge.scenarios")


def register_scenario(cls: type[Scenario[Any]]) -> type[Scenario[Any]]:
    cls.Params.owner = f"scenario {cls.name}"
    return SCENARIOS.register(cls.name, cls)


def get_scenario(name: str, params: Hyperparams | Mapping[str, Any] | None = None) -> Scenario[Any]:
    return SCENARIOS.get(name)(params)  # type: ignore[arg-type]


def scenario_for_request(request: ForgetRequest) -> type[Scenario[Any]] | None:
    """The scenario whose presets a one-off request uses (its kind's ``presets_from``, else its ``scenario``)."""
    name = request.handler.presets_from or request.handler.scenario
    return None if name is None else SCENARIOS.get(name)


def scenario_for_derivation(derivation: Mapping[str, Any]) -> type[Scenario[Any]]:
    """The scenario that derives datasets of ``derivation["kind"]``.

    Raises:
        ArtifactError: no registered scenario derives that kind (a run made by a newer or plug-in version)."""
    kind = derivation.get("kind")
    for _, cls in SCENARIOS.items():
        if cls.derivation_kind is not None and cls.derivation_kind == kind:
            return cls
    raise ArtifactError(f"the run was made on a derived dataset of kind {kind!r}, which no registered scenario "
                        "rebuilds. Fix: install the expunge version or plug-in that made it")
