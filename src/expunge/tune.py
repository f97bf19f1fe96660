"""Hyperparameter tuning at equal budget (Optuna TPE), on a validation request, towards the retrain oracle.

For one (dataset, model, scenario) and each method:

* the search space is the method's declared one: every :func:`~expunge._hparams.hp` field with ``search=`` — a
  ``(low, high)`` pair of numbers (integer for ``int`` fields; log-uniform when ``log=True``) or a sequence of
  choices. Fields without ``search`` stay at their defaults;
* every method gets the same number of trials; trial 0 is the method's defaults (so a preset is never worse than the
  defaults on the validation request; another trial replaces them only when it beats them by more than
  :data:`MIN_IMPROVEMENT`), the rest are proposed by a seeded TPE sampler, which samples at random until
  ``max(1, min(10, n_trials // 2))`` trials (the defaults included) are complete;
* each trial runs the method on the scenario's *validation* setting — the same Original, a different request
  (another class, another random draw with seed + 1000; :mod:`expunge.scenarios.base`) — and scores it with the
  scenario's objective, by default the mean of |Δforget_acc|, |Δtest_acc| and |Δmia_loss_auc| to the retrain oracle
  (the scenario's ``objective_metrics``; sub-class uses ``mia_loss_auc_matched``)
  (tier-0 gaps; never raw forget accuracy). A trial whose parameters are invalid or whose model cannot be scored
  (diverged, metric undefined) scores :data:`PENALTY` = 1, the largest possible mean gap;
* ``fixed`` holds some of a method's fields at given values for every trial (e.g. ``epochs=2`` to tune the learning
  rate within a time budget); they leave the search space, trial 0 is the defaults with them applied, and the preset
  records them under ``fixed``;
* optionally (``check=True``) the chosen values and the defaults are also scored on the evaluation request, to show
  whether the choice transfers.

The chosen values are written as a named preset (:mod:`expunge.presets`). Optuna is an optional dependency
(``pip install expunge[tune]``).
"""

from __future__ import annotations

import dataclasses
import math
import time
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from expunge import presets
from expunge._hparams import Hyperparams
from expunge.data.datasets import Dataset, load_dataset
from expunge.errors import ExpungeError
from expunge.methods.base import METHODS
from expunge.metrics.base import METRICS
from expunge.scenarios.base import OBJECTIVE_METRICS, Scenario, Setting, get_scenario
from expunge.store import ArtifactStore
from expunge.store.artifacts import environment_info
from expunge.train.loop import TrainRecipe

PENALTY = 1.0
# A trial must beat the defaults' objective by more than this to replace them. Below it a "win" is a float-level tie —
# e.g. analytic_head's output_scale, which leaves every accuracy as it is, moved the Fashion owners objective by 2e-7
# — and choosing it would ship arbitrary values that look tuned. 1e-4 is a hundredth of a point of mean gap, below
# one example's weight on any shipped dataset's forget or test set and far below the oracle's seed-to-seed noise.
MIN_IMPROVEMENT = 1e-4
SCORING_ERRORS = (ExpungeError, ValueError, FloatingPointError, RuntimeError)


@dataclass(frozen=True)
class Dimension:
    """One searched field: a numeric range or a list of choices."""

    name: str
    kind: typing.Literal["int", "float", "choice"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple[Any, ...] = ()

    def describe(self) -> dict[str, Any]:
        if self.kind == "choice":
            return {"choices": list(self.choices)}
        return {"low": self.low, "high": self.high, "log": self.log, "type": self.kind}


def search_space(params_cls: type[Hyperparams]) -> list[Dimension]:
    """The declared search space of a ``Params`` class (fields with ``search=`` metadata), in field order."""
    hints = typing.get_type_hints(params_cls)
    out = []
    for f in dataclasses.fields(params_cls):
        space = f.metadata.get("search")
        if space is None:
            continue
        is_range = (isinstance(space, tuple) and len(space) == 2
                    and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in space))
        if is_range:
            kind = "int" if hints.get(f.name) is int else "float"
            out.append(Dimension(f.name, kind, float(space[0]), float(space[1]), bool(f.metadata.get("log"))))
        else:
            out.append(Dimension(f.name, "choice", choices=tuple(space)))
    return out


def _suggest(trial: Any, dims: Sequence[Dimension]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for d in dims:
        if d.kind == "int":
            values[d.name] = trial.suggest_int(d.name, int(d.low or 0), int(d.high or 0), log=d.log)
        elif d.kind == "float":
            values[d.name] = trial.suggest_float(d.name, float(d.low or 0.0), float(d.high or 0.0), log=d.log)
        else:  # optuna stores primitives only: suggest an index, map it back
            i = trial.suggest_categorical(d.name, list(range(len(d.choices))))
            values[d.name] = d.choices[i]
    return values


def _as_trial_params(dims: Sequence[Dimension], values: Mapping[str, Any]) -> dict[str, Any]:
    out = {}
    for d in dims:
        v = values[d.name]
        out[d.name] = d.choices.index(v) if d.kind == "choice" and v in d.choices else v
    return out


@dataclass
class TuneResult:
    method: str
    params: dict[str, Any]            # the chosen full parameter set
    objective: float                  # its validation objective
    default_objective: float          # the defaults' validation objective (trial 0)
    n_trials: int
    search_space: dict[str, Any]
    trials: list[dict[str, Any]] = field(default_factory=list)
    fixed: dict[str, Any] = field(default_factory=dict)  # fields held at these values in every trial
    eval_objective: float | None = None
    eval_default_objective: float | None = None
    time_s: float = 0.0
    objective_metrics: tuple[str, ...] = OBJECTIVE_METRICS  # the gaps the objective averages

    def entry(self, *, validation: Mapping[str, Any], seed: int) -> dict[str, Any]:
        """The preset-file entry for this method."""
        versions = {k: v for k, v in environment_info().items() if k in ("expunge", "python", "torch", "numpy",
                                                                            "sklearn")}
        import optuna

        versions["optuna"] = optuna.__version__
        return {"params": self.params, "objective": self.objective, "default_objective": self.default_objective,
                "eval_objective": self.eval_objective, "eval_default_objective": self.eval_default_objective,
                "n_trials": self.n_trials, "search_space": self.search_space, "fixed": self.fixed,
                "sampler": f"TPE(seed={seed})",
                "objective_definition": "mean |gap to retrain| of " + ", ".join(self.objective_metrics),
                "validation": dict(validation), "tuned_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "time_s": self.time_s, "versions": versions}


def score(scenario: Scenario[Any], setting: Setting, method: str, params: Hyperparams,
          metrics: Iterable[str] | None) -> tuple[float, str | None]:
    """(objective, error) of one run; PENALTY with the reason when it cannot be scored."""
    try:
        records = scenario.run(setting, method, params, metrics=metrics, save=False)
    except SCORING_ERRORS as exc:
        return PENALTY, f"{type(exc).__name__}: {exc}"
    value = scenario.objective(records)
    if value is None or not math.isfinite(value):
        return PENALTY, "objective undefined (a gap is missing)"
    return float(value), None


def _split_fixed(method: str, fixed: Mapping[str, Any] | None
                 ) -> tuple[Hyperparams, dict[str, Any], list[Dimension]]:
    """(defaults with ``fixed`` applied, the parsed fixed values, the dimensions left to search); a method without a
    search space raises, as do a bad name or value in ``fixed`` and fixing every searched field."""
    cls = METHODS.get(method)
    space = search_space(cls.Params)
    if not space:
        raise ExpungeError(f"method {method!r} declares no search space (no hp(..., search=...) field): nothing to "
                           "tune")
    defaults = cls.Params.from_overrides(dict(fixed or {}))  # validates the names and values of ``fixed``
    held = {k: v for k, v in defaults.to_dict().items() if k in (fixed or {})}
    dims = [d for d in space if d.name not in held]
    if not dims:
        raise ExpungeError(f"every searched field of {method!r} is fixed ({', '.join(sorted(held))}): nothing to "
                           "tune; fix fewer fields")
    return defaults, held, dims


def tune_method(scenario: Scenario[Any], setting: Setting, method: str, *, n_trials: int, seed: int = 0,
                metrics: Iterable[str] | None = None, fixed: Mapping[str, Any] | None = None,
                on_trial: Callable[[dict[str, Any]], None] | None = None) -> TuneResult:
    """Search ``method``'s declared space with ``n_trials`` trials (trial 0 = defaults) on ``setting``; fields in
    ``fixed`` keep the given value in every trial and leave the search. ``metrics``: what each trial evaluates
    (default: the scenario's ``objective_metrics``)."""
    import optuna

    if n_trials < 1:
        raise ExpungeError(f"--trials must be at least 1, got {n_trials}")
    cls = METHODS.get(method)
    metrics = scenario.objective_metrics if metrics is None else metrics
    defaults, held, dims = _split_fixed(method, fixed)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=max(1, min(10, n_trials // 2)))
    study = optuna.create_study(direction="minimize", sampler=sampler)
    study.enqueue_trial(_as_trial_params(dims, defaults.to_dict()))
    trials: list[dict[str, Any]] = []

    def objective(trial: optuna.Trial) -> float:
        values = _suggest(trial, dims)
        t0 = time.perf_counter()
        try:
            params = cls.Params.from_overrides({**held, **values})
        except ExpungeError as exc:
            value, error = PENALTY, str(exc)
        else:
            value, error = score(scenario, setting, method, params, metrics)
        info = {"number": trial.number, "values": values, "objective": value, "error": error,
                "time_s": time.perf_counter() - t0}
        trials.append(info)
        if on_trial is not None:
            on_trial(info)
        return value

    t0 = time.perf_counter()
    study.optimize(objective, n_trials=n_trials)
    best = min(trials, key=lambda t: (t["objective"], t["number"]))  # ties: the earlier trial (defaults first)
    if trials[0]["objective"] - best["objective"] <= MIN_IMPROVEMENT:
        best = trials[0]
    chosen = cls.Params.from_overrides({**held, **best["values"]}).to_dict()
    return TuneResult(method, chosen, best["objective"], trials[0]["objective"], len(trials),
                      {d.name: d.describe() for d in dims}, trials, fixed=held, time_s=time.perf_counter() - t0,
                      objective_metrics=tuple(scenario.objective_metrics))


@dataclass
class TuneRun:
    path: Path                                        # the preset file written
    results: list[TuneResult]
    failures: dict[str, str] = field(default_factory=dict)  # method -> error, for methods that crashed
    skipped: dict[str, str] = field(default_factory=dict)   # method -> why: no trial could be scored (not applicable)


def check_tunable(sc: Scenario[Any], dataset: str | Dataset, methods: Sequence[str], data_dir: str | None) -> None:
    """Refuse, before anything is trained, a dataset whose task the scenario, a method or the tuning objective does
    not support (the objective's metrics are classification metrics: tuning a regression task is not supported)."""
    task = (load_dataset(dataset, data_dir=data_dir) if isinstance(dataset, str) else dataset).task
    sc.check_task(task)
    for m in methods:
        METHODS.get(m).check_task(task)
    undefined = [name for name in sc.objective_metrics if task not in METRICS.get(name).tasks]
    if undefined:
        raise ExpungeError(f"the {sc.name} tuning objective averages {', '.join(undefined)}, which {task} models do "
                           f"not have: tuning on a {task} dataset is not supported yet. Fix: set the method's "
                           "parameters with --param")


def tune(dataset: str | Dataset, model: str, scenario: str, methods: Sequence[str], *, n_trials: int,
         seed: int = 0, scenario_params: Mapping[str, Any] | None = None, store: ArtifactStore | None = None,
         recipe: TrainRecipe | None = None, data_dir: str | None = None, presets_dir: Path | None = None,
         check: bool = True, progress: bool = False, fixed: Mapping[str, Mapping[str, Any]] | None = None,
         on_trial: Callable[[str, dict[str, Any]], None] | None = None) -> TuneRun:
    """Tune each method with the same budget and write the preset ``DATASET/MODEL/SCENARIO`` after every method (an
    interrupted run keeps what it finished). ``fixed`` maps a method to the fields it holds fixed (see
    :func:`tune_method`). A method that crashes outright is reported in ``failures``: one broken
    method does not cost the others' results. A method none of whose trials could be scored (e.g. a class-only method
    on a random request) gets no preset entry and is reported in ``skipped``."""
    fixed = dict(fixed or {})
    unknown = sorted(set(fixed) - set(methods))
    if unknown:
        raise ExpungeError(f"fixed values given for method(s) not being tuned: {', '.join(unknown)}; tune them too "
                           "(--methods) or drop their --fix")
    for m in methods:  # fail fast, before anything is trained
        _split_fixed(m, fixed.get(m))
    sc = get_scenario(scenario, scenario_params)
    check_tunable(sc, dataset, methods, data_dir)
    store = store or ArtifactStore()
    kwargs: dict[str, Any] = {"seed": seed, "store": store, "recipe": recipe, "data_dir": data_dir,
                              "progress": progress, "metrics": sc.objective_metrics}
    val_setting = sc.prepare(dataset, model, validation=True, **kwargs)
    eval_setting = sc.prepare(dataset, model, validation=False, **kwargs) if check else None
    path = (presets_dir or presets.default_dir()) / presets.file_name(val_setting.dataset_name, model, scenario)
    validation = {"seed": seed, "scenario_params": sc.params.to_dict(),
                  "requests": [p.splits.describe() for p in val_setting.steps],
                  "original_key": val_setting.steps[0].original.key,
                  "recipe": val_setting.steps[0].recipe.to_dict()}
    run = TuneRun(path, [])
    for m in methods:
        try:
            res = tune_method(sc, val_setting, m, n_trials=n_trials, seed=seed, fixed=fixed.get(m),
                              on_trial=None if on_trial is None else (lambda info, m=m: on_trial(m, info)))
        except Exception as exc:  # a bug in one method must not lose the others' tuning
            run.failures[m] = f"{type(exc).__name__}: {exc}"
            continue
        if all(t["error"] for t in res.trials):
            run.skipped[m] = f"no trial could be scored ({res.trials[0]['error']})"
            continue
        if eval_setting is not None:
            cls = METHODS.get(m)
            res.eval_objective = score(sc, eval_setting, m, cls.Params.from_overrides(res.params),
                                       sc.objective_metrics)[0]
            res.eval_default_objective = score(sc, eval_setting, m, cls.Params.from_overrides(dict(fixed.get(m, {}))),
                                               sc.objective_metrics)[0]
        presets.write_entries(path, {m: res.entry(validation=validation, seed=seed)})
        run.results.append(res)
    return run
