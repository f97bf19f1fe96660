"""One request end to end: data → original → oracle → methods → metrics → JSON records.

This is the layer the CLI, the demo and the benchmarks share. :func:`prepare` resolves the request and gets the
original and the retrain oracle from the cache (training them on a miss); :func:`run_methods` runs each method
through :func:`expunge.unlearn.run_method`, evaluates it side by side with the Original and the Retrain, stores the
unlearned weights and returns one record per method.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from torch import nn

from expunge._hparams import Hyperparams
from expunge.data.datasets import Dataset, load_dataset
from expunge.data.request import ForgetRequest, Splits
from expunge.methods.base import RunContext, get_method
from expunge.metrics.base import EvalContext, MetricValue, RunInfo, evaluate
from expunge.metrics.functional.stats import separable
from expunge.models import ModelSpec
from expunge.store import ArtifactStore
from expunge.store.artifacts import environment_info
from expunge.train.loop import TrainRecipe
from expunge.train.oracle import TrainedModel, default_recipe, model_spec_for, retrain_oracle, train_original
from expunge.unlearn import run_method

HEADLINE_METRICS = ("forget_acc", "retain_acc", "test_acc", "mia_loss_auc", "js_to_retrain_forget")


@dataclass
class Prepared:
    dataset: Dataset
    splits: Splits
    spec: ModelSpec
    recipe: TrainRecipe
    seed: int
    store: ArtifactStore
    original: TrainedModel
    oracle: TrainedModel
    baseline: dict[str, dict[str, MetricValue]]
    eval_ctx: EvalContext


def prepare(dataset: str | Dataset, model: str, forget: str | ForgetRequest, *, seed: int = 0,
            store: ArtifactStore | None = None, data_dir: str | None = None, recipe: TrainRecipe | None = None,
            metrics: Iterable[str] | None = None, tier: int = 0, progress: bool = True) -> Prepared:
    request = ForgetRequest.parse(forget) if isinstance(forget, str) else forget
    dataset = dataset_for(dataset, request, data_dir=data_dir)
    splits = request.resolve(dataset, seed=seed)  # validates before anything is trained or written
    return prepare_splits(dataset, model, splits, seed=seed, store=store, recipe=recipe, metrics=metrics, tier=tier,
                          progress=progress)


def dataset_for(dataset: str | Dataset, request: ForgetRequest, *, data_dir: str | None = None) -> Dataset:
    """The dataset a request needs: loaded by name (coarse labels for sub-class requests), or as given."""
    if isinstance(dataset, str):
        labels = "coarse" if request.kind == "subclass" else "fine"
        dataset = load_dataset(dataset, data_dir=data_dir, labels=labels)
    return dataset


def prepare_splits(dataset: Dataset, model: str, splits: Splits, *, seed: int = 0, store: ArtifactStore | None = None,
                   recipe: TrainRecipe | None = None, metrics: Iterable[str] | None = None, tier: int = 0,
                   progress: bool = True, references: Mapping[str, nn.Module] | None = None,
                   extras: Mapping[str, Any] | None = None) -> Prepared:
    """:func:`prepare` for splits the caller built (a scenario's step, a poisoned dataset): the original and the oracle
    of ``splits`` from the cache, and the baseline metrics. ``references`` are further models evaluated beside the
    Original and the Retrain (the corrective scenario's clean model); ``extras`` reach every metric through
    :attr:`EvalContext.extras` (the corrective scenario's triggered test images)."""
    store = store or ArtifactStore()
    recipe = recipe or default_recipe(dataset.name)
    spec = model_spec_for(dataset, model)
    original = train_original(dataset, spec, recipe, seed=seed, store=store, progress=progress)
    oracle = retrain_oracle(dataset, splits, spec, recipe, seed=seed, store=store, progress=progress)
    run = RunInfo(model_spec=spec, recipe=recipe, store=store, original_key=original.key)
    ctx = EvalContext(dataset, splits, {"original": original.model, "retrain": oracle.model, **(references or {})},
                      seed=seed, run=run, extras=extras)
    baseline = evaluate(ctx, metrics, tier=tier, roles=("original", "retrain", *(references or {})))
    return Prepared(dataset, splits, spec, recipe, seed, store, original, oracle, baseline, ctx)


def _values(results: Mapping[str, Mapping[str, MetricValue]], role: str) -> dict[str, float | None]:
    return {name: by_role[role].to_json() for name, by_role in results.items() if role in by_role}


def _reasons(results: Mapping[str, Mapping[str, MetricValue]]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for name, by_role in results.items():
        for role, v in by_role.items():
            if v.reason:
                out.setdefault(name, {})[role] = v.reason
    return out


def power(results: Mapping[str, Mapping[str, MetricValue]]) -> dict[str, str | None]:
    """Per metric: "ok" when Original and Retrain differ by more than two combined standard errors, "no power" when
    they do not (then the metric cannot tell whether unlearning happened on this request), None when unknown."""
    out: dict[str, str | None] = {}
    for name, by_role in results.items():
        o, r = by_role.get("original"), by_role.get("retrain")
        verdict = None
        if o is not None and r is not None and o.value is not None and r.value is not None:
            sep = separable(o.value, o.se, r.value, r.se)
            verdict = None if sep is None else ("ok" if sep else "no power")
        out[name] = verdict
    return out


def run_one(prep: Prepared, method: str, params: Hyperparams | Mapping[str, Any] | None = None, *,
            metrics: Iterable[str] | None = None, tier: int = 0, progress: bool = False,
            save: bool = True) -> tuple[dict[str, Any], nn.Module]:
    """Unlearn ``prep``'s request from the Original with ``method``; evaluate beside the Original and the Retrain."""
    return run_step(prep, method, params, metrics=metrics, tier=tier, progress=progress, save=save)


def run_step(prep: Prepared, method: str, params: Hyperparams | Mapping[str, Any] | None = None, *,
             model: nn.Module | None = None, splits: Splits | None = None, key_extra: Mapping[str, Any] | None = None,
             metrics: Iterable[str] | None = None, tier: int = 0, progress: bool = False,
             save: bool = True) -> tuple[dict[str, Any], nn.Module]:
    """:func:`run_one` with the method's input given explicitly: ``model`` (default: the Original) and ``splits``
    (default: ``prep.splits``); evaluation is always against ``prep``'s splits and oracle. Step i of a sequential
    scenario passes the model of step i−1 and F_i while ``prep`` holds F_1 ∪ … ∪ F_i and its oracle; ``key_extra``
    keeps such runs apart in the store."""
    m = get_method(method, dict(params) if isinstance(params, Mapping) else params)
    ctx = RunContext(seed=prep.seed, model_spec=prep.spec, recipe=prep.recipe, store=prep.store, progress=progress,
                     original_manifest=prep.original.manifest)
    res = run_method(m, prep.original.model if model is None else model, prep.dataset,
                     prep.splits if splits is None else splits, ctx, original_key=prep.original.key)
    ectx = prep.eval_ctx.with_model("unlearned", res.model)
    ectx.run = replace(ectx.run, method=m.name, method_params=m.params.to_dict())
    results = evaluate(ectx, metrics, tier=tier, roles=("unlearned",))
    merged = {name: {**prep.baseline.get(name, {}), **by_role} for name, by_role in results.items()}
    unlearned, retrain = _values(merged, "unlearned"), _values(merged, "retrain")
    gaps = {k: (None if v is None or retrain.get(k) is None else abs(v - retrain[k]))  # type: ignore[operator]
            for k, v in unlearned.items()}
    retrain_time = prep.oracle.train_time_s
    record: dict[str, Any] = {
        "method": m.name, "params": m.params.to_dict(), "dataset": prep.dataset.name,
        "dataset_fingerprint": prep.dataset.fingerprint, "model": prep.spec.name, "forget": prep.splits.request.spec,
        "request": prep.splits.describe(), "seed": prep.seed, "metrics": unlearned,
        "original": _values(merged, "original"), "retrain": retrain, "gap_to_retrain": gaps,
        "power": power(merged),
        "time_s": res.time_s, "retrain_time_s": retrain_time,
        "time_ratio_to_retrain": res.time_s / retrain_time if retrain_time > 0 else None,
        "peak_rss_bytes": res.peak_rss_bytes, "peak_delta_bytes": res.peak_delta_bytes, "access": res.access,
        "method_access": m.access.describe(), "notes": res.notes, "reasons": _reasons(merged),
        "original_key": prep.original.key, "oracle_key": prep.oracle.key,
        "cache": {"original_hit": prep.original.cache_hit, "oracle_hit": prep.oracle.cache_hit},
        "env": environment_info(), "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if save:
        key = prep.store.key({"original": prep.original.key, "method": m.name, "params": m.params.to_dict(),
                              "forget": prep.splits.fingerprint(), "seed": prep.seed, **(key_extra or {})})
        manifest = {k: v for k, v in record.items() if k != "env"}
        manifest["forget_ids"] = prep.splits.forget_ids.tolist()  # lets `expunge evaluate` rebuild any request
        manifest["model_spec"], manifest["recipe"] = prep.spec.to_dict(), prep.recipe.to_dict()
        if prep.dataset.derivation is not None:  # a derived dataset (a poisoned copy): how to rebuild it
            manifest["dataset_derivation"] = prep.dataset.derivation
        prep.store.save_model("unlearned", key, res.model, manifest)
        record["unlearned_key"] = key
    return record, res.model


def run_methods(prep: Prepared, methods: Sequence[tuple[str, Mapping[str, Any] | None]], **kwargs: Any) \
        -> list[dict[str, Any]]:
    return [run_one(prep, name, params, **kwargs)[0] for name, params in methods]
