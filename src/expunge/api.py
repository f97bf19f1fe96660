"""The public API: prepare a request, unlearn it, evaluate the result — always beside the Original and the Retrain.

    import expunge
    prep = expunge.prepare("digits", "cnn", "class:3", seed=0)   # Original + retrain oracle, cached
    record, model = expunge.unlearn(prep, "ssd")                # a RunRecord and the unlearned model
    print(record.metrics["forget_acc"], record.retrain["forget_acc"], record.speed_up)

Your own model and data work the same way: pass a :class:`~expunge.data.datasets.Dataset` built with
:func:`from_arrays` and a model factory (a class or function returning a fresh ``nn.Module``), and say what to forget
as example ids. Everything here is re-exported by :mod:`expunge`; the layers below (protocols, scenarios, metrics,
methods) remain usable directly for finer control.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from torch import nn

from expunge import presets
from expunge._hparams import Hyperparams
from expunge.data.datasets import Dataset
from expunge.data.request import ForgetRequest, dataset_for, ids_request
from expunge.errors import InvalidSeed
from expunge.evaluation import evaluate_run
from expunge.methods.base import METHODS
from expunge.metrics.base import METRICS
from expunge.metrics.base import evaluate as evaluate_metrics
from expunge.models import ModelSpec
from expunge.models.registry import spec_for_factory
from expunge.protocols.pipeline import (
    Prepared,
    gaps,
    power_of,
    prepare_splits,
    reasons_of,
    run_status,
    run_step,
    values_of,
)
from expunge.record import PAPER_DEFAULTS, RunRecord
from expunge.scenarios.base import SCENARIOS, scenario_for_request
from expunge.store import ArtifactStore
from expunge.store.artifacts import state_hash
from expunge.tasks import UnsupportedTask, get_task
from expunge.train.loop import TrainRecipe
from expunge.train.oracle import adopt_original, model_spec_for

Forget = str | ForgetRequest | Sequence[int] | np.ndarray
Model = str | ModelSpec | Callable[..., nn.Module]


def as_request(forget: Forget) -> ForgetRequest:
    """A forget request from a spec (``"class:3"``, ``"random:0.1"``, ``"ids:FILE"`` ...), a request, or a sequence
    of training-example ids."""
    if isinstance(forget, ForgetRequest):
        return forget
    if isinstance(forget, str):
        return ForgetRequest.parse(forget)
    return ids_request(forget)  # refuses non-integers (1.5 was truncated to 1) and ids beyond int64


def load(dataset: str | Dataset, *, forget: Forget | None = None, task: str | None = None,
         data_dir: str | None = None) -> Dataset:
    """A dataset by name (with the label set ``forget``'s kind needs: sub-class requests load coarse labels), or as
    given; ``task``, when given, must be the dataset's task."""
    kind = as_request(forget).kind if forget is not None else "ids"
    ds = dataset_for(dataset, kind, data_dir=data_dir)
    if task is not None and get_task(task).name != ds.task:
        raise UnsupportedTask(f"{ds.name} is a {ds.task} dataset, not {task}. Fix: drop --task or pick a {task} "
                              "dataset")
    return ds


def prepare(dataset: str | Dataset, model: Model, forget: Forget, *, seed: int = 0,
            store: ArtifactStore | None = None, data_dir: str | None = None, recipe: TrainRecipe | None = None,
            original: nn.Module | None = None, metrics: Iterable[str] | None = None, tier: int = 0,
            progress: bool = True, extras: Mapping[str, Any] | None = None) -> Prepared:
    """Resolve a forget request on a dataset and get its Original and retrain oracle (from the cache, or trained).

    Args:
        dataset: A registered dataset's name (``"digits"``, ``"fashion-mnist"``, ``"diabetes"``) or a
            :class:`Dataset` (your own: :func:`from_arrays`).
        model: A registered architecture (``"mlp"``, ``"cnn"``, ``"resnet"``), a :class:`ModelSpec`, or your own
            factory — a class or function returning a fresh ``nn.Module`` (called with ``input_shape`` and
            ``num_classes`` when it accepts them). The oracle is built from it with a fresh seed.
        forget: A request spec (``"class:3"``, ``"random:0.1"``, ``"owners:5"``, ``"ids:FILE"``), a
            :class:`ForgetRequest`, or the training-example ids to forget.
        seed: Seed of the Original, the oracle, the request draw and the methods.
        store: Artifact cache (default ``$EXPUNGE_CACHE`` or ``~/.cache/expunge``).
        recipe: How the Original and the oracle are trained (default: the dataset's recipe).
        original: A model you already trained on the whole dataset (with ``recipe``): used as the Original instead
            of training one; the oracle is still trained by expunge with ``recipe``.
        metrics, tier: The metrics of the baseline evaluation (default: every tier-0 metric of the task).
        extras: Reach every metric of this request's evaluations, e.g. ``{"tier2": {"shadows": 8, "models": 4}}``
            (the sizes of the tier-2 pipelines).

    The request is validated before anything is trained (unknown or duplicate ids, empty or whole-set requests
    raise :class:`~expunge.errors.InvalidForgetRequest`, naming the ids), and so is the seed
    (:class:`~expunge.errors.InvalidSeed` unless it is an integer from 0 to 2**32 − 1)."""
    seed = check_seed(seed)
    request = as_request(forget)
    ds = load(dataset, forget=request, data_dir=data_dir)
    splits = request.resolve(ds, seed=seed)  # validates before anything is trained or written
    spec = model_spec(ds, model)
    store = store or ArtifactStore()
    adopted = None if original is None else adopt_original(ds, spec, original, store=store)
    return prepare_splits(ds, spec, splits, seed=seed, store=store, recipe=recipe, metrics=metrics, tier=tier,
                          progress=progress, original=adopted, extras=extras)


SEED_LIMIT = 2**32  # NumPy's legacy seeding (scikit-learn's random_state) accepts 0 <= seed < 2**32


def check_seed(seed: Any) -> int:
    """``seed`` as an ``int`` when it is a usable run seed — an integer (not a bool) with 0 ≤ seed < 2**32, the
    range every seeded library accepts; else :class:`~expunge.errors.InvalidSeed`."""
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or not 0 <= int(seed) < SEED_LIMIT:
        raise InvalidSeed(f"seed {seed!r} is not usable: seeds are integers from 0 to {SEED_LIMIT - 1}. Fix: pass a "
                          "non-negative integer seed below 2**32")
    return int(seed)


def model_spec(dataset: Dataset, model: Model) -> ModelSpec:
    """The :class:`ModelSpec` of ``model`` sized for ``dataset`` (a registered name, a spec, or a factory)."""
    if isinstance(model, ModelSpec):
        return model
    if isinstance(model, str):
        return model_spec_for(dataset, model)
    return spec_for_factory(model, input_shape=dataset.input_shape, num_outputs=dataset.num_outputs)


def resolve_params(method: str, *, dataset: str, model: str, forget: Forget | None = None,
                   scenario: str | None = None, overrides: Mapping[str, Any] | None = None,
                   preset: str | None = None, paper_defaults: bool = False,
                   task: str | None = None) -> tuple[Hyperparams, str]:
    """A method's hyperparameters for a request, and where they came from (the record's ``params_source``).

    The base is ``preset`` when named; else, unless ``paper_defaults``, the shipped preset tuned for this dataset,
    model and scenario (``scenario``, or the one ``forget``'s kind belongs to, with its documented fallback) when
    one exists; else the paper's defaults. ``overrides`` (``--param``) apply last. Raises before anything is
    trained: unknown method or parameter, invalid value, a method that does not support ``task`` or an option not
    defined on it."""
    cls = METHODS.get(method)
    if task is not None:
        cls.check_task(task)
    overrides = dict(overrides or {})
    source = PAPER_DEFAULTS
    if preset is None and not paper_defaults:
        scen = SCENARIOS.get(scenario) if scenario is not None else (
            scenario_for_request(as_request(forget)) if forget is not None else None)
        found = None if scen is None else scen.preset_for(dataset, model, method)
        preset = None if found is None else found[0]
    if preset is not None:
        source = f"preset {preset}"
    params = presets.params_with_preset(cls.Params, preset, method, overrides)
    if overrides:
        source += " + " + ", ".join(f"{k}={v}" for k, v in overrides.items())
    if task is not None:
        cls.check_task(task, params)  # task-specific options (neggrad's stop_at_forget_acc is classification-only)
    return params, source


def unlearn(prep: Prepared, method: str, params: Hyperparams | Mapping[str, Any] | None = None, *,
            preset: str | None = None, paper_defaults: bool = False, metrics: Iterable[str] | None = None,
            tier: int = 0, progress: bool = False, save: bool = True, label: str = "",
            params_source: str | None = None) -> tuple[RunRecord, nn.Module]:
    """Unlearn ``prep``'s request from its Original with ``method``; evaluate the result beside the Original and the
    Retrain.

    Hyperparameters: a :class:`Hyperparams` instance is used as given; a mapping overrides the base values — the
    shipped preset tuned for this dataset, model and request when one exists (or ``preset``), else the paper's
    defaults (always with ``paper_defaults=True``). The record's ``params_source`` says which. Returns the
    :class:`~expunge.record.RunRecord` and the unlearned model (stored unless ``save=False``; the record's
    ``unlearned_key`` names it for :func:`evaluate`)."""
    if not isinstance(params, Hyperparams):
        params, source = resolve_params(method, dataset=prep.dataset.name, model=prep.spec.name,
                                        forget=prep.splits.request, overrides=params, preset=preset,
                                        paper_defaults=paper_defaults)
        params_source = params_source or source
    METHODS.get(method).check_task(prep.dataset.task, params)  # before anything runs
    return run_step(prep, method, params, metrics=metrics, tier=tier, progress=progress, save=save, label=label,
                    params_source=params_source or "user")


def evaluate(target: str | RunRecord | Prepared, model: nn.Module | None = None, *, tier: int = 0,
             metrics: Iterable[str] | None = None, store: ArtifactStore | None = None,
             extras: Mapping[str, Any] | None = None, dataset: Dataset | None = None) -> RunRecord:
    """Score a model beside the Original and the Retrain.

    * ``evaluate(record_or_key, tier=1)`` — re-evaluate a stored unlearned run (its ``unlearned_key``) with more
      metrics (tier 1 trains reference models; tier 2 trains shadows and re-runs the method, all cached); a run on
      your own data needs ``dataset=`` (it is checked against the recorded fingerprint) and, for your own model
      factory, the same factory passed to :func:`prepare` in this process;
    * ``evaluate(prep, model)`` — score a model unlearned by any other means (your own method) on ``prep``'s
      request; the record's ``method`` is ``"external"``."""
    if isinstance(target, Prepared):
        if model is None:
            raise TypeError("evaluate(prep, model): give the model to score")
        ctx = target.eval_ctx.with_model("unlearned", model)
        results = evaluate_metrics(ctx, metrics, tier=tier, roles=("unlearned",))
        merged = {name: {**target.baseline.get(name, {}), **by_role} for name, by_role in results.items()}
        unlearned, retrain = values_of(merged, "unlearned"), values_of(merged, "retrain")
        same = type(model) is type(target.original.model) and state_hash(model) == state_hash(target.original.model)
        status, why = run_status(ctx, unchanged=same)
        return RunRecord(status=status, status_reason=why,  # type: ignore[arg-type]
                         method="external", params={}, params_source="user", task=target.dataset.task,
                         dataset=target.dataset.name, dataset_fingerprint=target.dataset.fingerprint,
                         model=target.spec.name, forget=target.splits.request.spec,
                         request=target.splits.describe(), seed=target.seed, metrics=unlearned,
                         original=values_of(merged, "original"), retrain=retrain,
                         gap_to_retrain=gaps(unlearned, retrain), power=power_of(merged),
                         reasons=reasons_of(merged), retrain_time_s=target.oracle.train_time_s,
                         original_key=target.original.key, oracle_key=target.oracle.key)
    key = target.unlearned_key if isinstance(target, RunRecord) else target
    if key is None:
        raise TypeError("this record has no unlearned_key: it was run with save=False")
    return evaluate_run(key, store=store or ArtifactStore(), tier=tier, metrics=metrics, extras=extras,
                        dataset=dataset)


def list_methods(task: str | None = None) -> list[dict[str, Any]]:
    """Every registered method: name, summary, paper, reference, data access, tasks and parameters (defaults)."""
    return [cls.describe() for _, cls in METHODS.items() if task is None or task in cls.tasks]


def list_metrics(task: str | None = None, tier: int | None = None) -> list[dict[str, Any]]:
    """Every registered metric: name, family, tier, direction, definition, inputs and tasks."""
    return [cls.describe() for _, cls in METRICS.items()
            if (task is None or task in cls.tasks) and (tier is None or cls.tier <= tier)]


def list_scenarios() -> list[dict[str, Any]]:
    """Every registered scenario: name, summary, parameters, request kinds and preset fallback."""
    return [cls.describe() for _, cls in SCENARIOS.items()]
