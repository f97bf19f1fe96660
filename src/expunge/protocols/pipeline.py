"""One request end to end: splits → Original and oracle (cached) → the method → metrics side by side → a
:class:`~expunge.record.RunRecord`.

:func:`prepare_splits` gets the Original and the retrain oracle of validated splits from the cache (training them on
a miss) and evaluates both; :func:`run_step` runs one method on the prepared request through
:func:`~expunge.protocols.runner.run_method`, evaluates it beside them, stores the unlearned weights and returns the
record. Scenarios, the public API and the harness build on these two; :func:`eval_context` is the one place an
:class:`~expunge.metrics.base.EvalContext` is built with the providers of the tier-2 pipelines. :func:`run_status`
sets the record's ``status`` ("ok", "no change", "diverged"; :mod:`expunge.record`).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from torch import nn

from expunge._hparams import Hyperparams
from expunge.data.datasets import Dataset
from expunge.data.request import Splits
from expunge.errors import NonFiniteOutputs
from expunge.methods.base import RunContext, get_method
from expunge.metrics.base import METRICS, EvalContext, MetricValue, RunInfo, evaluate
from expunge.metrics.functional.stats import separable
from expunge.models import ModelSpec
from expunge.protocols.runner import run_method
from expunge.protocols.tier2 import PROVIDERS
from expunge.record import PAPER_DEFAULTS, RunRecord
from expunge.store import ArtifactStore
from expunge.store.artifacts import environment_info
from expunge.store.purge import original_in_store
from expunge.train.loop import StepTally, TrainRecipe
from expunge.train.oracle import (
    TrainedModel,
    cache_info,
    default_recipe,
    model_spec_for,
    retrain_oracle,
    train_original,
    training_env,
)

Results = Mapping[str, Mapping[str, MetricValue]]


@dataclass
class Prepared:
    """A request ready for methods: dataset, validated splits, the Original and the oracle, their baseline metrics."""

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


def eval_context(dataset: Dataset, splits: Splits, models: Mapping[str, nn.Module | None], *, seed: int,
                 run: RunInfo, extras: Mapping[str, Any] | None = None) -> EvalContext:
    """An evaluation context that can also answer the tier-2 metrics (their pipelines re-run the method)."""
    return EvalContext(dataset, splits, models, seed=seed, run=run, extras=extras, providers=PROVIDERS)


def prepare_splits(dataset: Dataset, model: str | ModelSpec, splits: Splits, *, seed: int = 0,
                   store: ArtifactStore | None = None, recipe: TrainRecipe | None = None,
                   metrics: Iterable[str] | None = None, tier: int = 0, progress: bool = True,
                   references: Mapping[str, nn.Module] | None = None, extras: Mapping[str, Any] | None = None,
                   original: TrainedModel | None = None) -> Prepared:
    """The Original and the oracle of ``splits`` from the cache (trained on a miss), and their baseline metrics.

    ``model`` is a registered architecture's name (sized for ``dataset``) or a :class:`ModelSpec`.
    ``references`` are further models evaluated beside the Original and the Retrain (the corrective scenario's clean
    model); ``extras`` reach every metric through :attr:`EvalContext.extras` (the corrective scenario's triggered
    test images); ``original`` is an Original trained elsewhere (a user's model), used instead of training one."""
    store = store or ArtifactStore()
    recipe = recipe or default_recipe(dataset.name)
    spec = model_spec_for(dataset, model) if isinstance(model, str) else model
    original = original or train_original(dataset, spec, recipe, seed=seed, store=store, progress=progress)
    oracle = retrain_oracle(dataset, splits, spec, recipe, seed=seed, store=store, progress=progress)
    run = RunInfo(model_spec=spec, recipe=recipe, store=store, original_key=original.key)
    ctx = eval_context(dataset, splits, {"original": original.model, "retrain": oracle.model, **(references or {})},
                       seed=seed, run=run, extras=extras)
    baseline = evaluate(ctx, metrics, tier=tier, roles=("original", "retrain", *(references or {})))
    return Prepared(dataset, splits, spec, recipe, seed, store, original, oracle, baseline, ctx)


def values_of(results: Results, role: str) -> dict[str, float | None]:
    """Each metric's value for ``role`` (JSON numbers or None)."""
    return {name: by_role[role].to_json() for name, by_role in results.items() if role in by_role}


def reasons_of(results: Results) -> dict[str, dict[str, str]]:
    """Why a value is None, or what caveat it carries: metric → role → reason."""
    out: dict[str, dict[str, str]] = {}
    for name, by_role in results.items():
        for role, v in by_role.items():
            if v.reason:
                out.setdefault(name, {})[role] = v.reason
    return out


def power_of(results: Results) -> dict[str, str | None]:
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


def gaps(values: Mapping[str, float | None], reference: Mapping[str, float | None]) -> dict[str, float | None]:
    """|value − reference| per metric (None where either is unknown)."""
    return {k: None if v is None or reference.get(k) is None else abs(v - reference[k])  # type: ignore[operator]
            for k, v in values.items()}


def run_status(ctx: EvalContext, *, unchanged: bool, steps: StepTally | None = None) -> tuple[str, str]:
    """The record's ``(status, status_reason)`` for the ``unlearned`` model of ``ctx``: "diverged" when its outputs on
    the forget or test split are non-finite, when the non-finite guard stopped a training loop of the call or skipped
    every one of its steps; else "no change" when the weights are bit-identical to the method's input (``unchanged``);
    else "ok". The outputs come from the evaluation cache the metrics use, so the check costs nothing extra."""
    for split in ("forget", "test"):
        try:
            ctx.logits("unlearned", split)
        except NonFiniteOutputs as exc:
            return "diverged", str(exc)
    if steps is not None and steps.guard_stops:
        return "diverged", (f"the non-finite guard stopped training ({steps.skipped_nonfinite} of {steps.steps} steps "
                            "skipped): the model is the last finite one; lower the learning rate")
    if steps is not None and steps.steps and steps.skipped_nonfinite >= steps.steps:
        return "diverged", (f"all {steps.steps} training steps were non-finite and rolled back: the model is the one "
                            "the method was given; lower the learning rate")
    if unchanged:
        return "no change", "the unlearned weights are bit-identical to the model the method was given"
    return "ok", ""


def run_step(prep: Prepared, method: str, params: Hyperparams | Mapping[str, Any] | None = None, *,
             model: nn.Module | None = None, splits: Splits | None = None, key_extra: Mapping[str, Any] | None = None,
             metrics: Iterable[str] | None = None, tier: int = 0, progress: bool = False, save: bool = True,
             label: str = "", params_source: str | None = None) -> tuple[RunRecord, nn.Module]:
    """Unlearn ``prep``'s request with ``method`` and evaluate the result beside the Original and the Retrain.

    The method's input may be given explicitly: ``model`` (default: the Original) and ``splits`` (default:
    ``prep.splits``); evaluation is always against ``prep``'s splits and oracle. Step i of a sequential scenario
    passes the model of step i−1 and F_i while ``prep`` holds F_1 ∪ … ∪ F_i and its oracle; ``key_extra`` keeps
    such runs apart in the store. ``label`` is the record's display label (default: the method);
    ``params_source`` says where ``params`` came from (default: "paper defaults" without params, else "user")."""
    m = get_method(method, dict(params) if isinstance(params, Mapping) else params)
    ctx = RunContext(seed=prep.seed, model_spec=prep.spec, recipe=prep.recipe, store=prep.store, progress=progress,
                     original_manifest=prep.original.manifest)
    res = run_method(m, prep.original.model if model is None else model, prep.dataset,
                     prep.splits if splits is None else splits, ctx, original_key=prep.original.key)
    ectx = prep.eval_ctx.with_model("unlearned", res.model)
    ectx.run = replace(ectx.run, method=m.name, method_params=m.params.to_dict())
    results = evaluate(ectx, metrics, tier=tier, roles=("unlearned",))
    # A metric whose Original and Retrain rows depend on the method (U-LiRA: the shadows are unlearned by it) has
    # none in the request's baseline, computed before any method: compute them now, with the method known.
    bound = [n for n in results if "method" in METRICS.get(n)().run_needs_for("original")
             and not METRICS.get(n).unlearned_only]
    per_method = evaluate(ectx, bound, roles=("original", "retrain")) if bound else {}
    merged = {name: {**prep.baseline.get(name, {}), **per_method.get(name, {}), **by_role}
              for name, by_role in results.items()}
    unlearned, retrain = values_of(merged, "unlearned"), values_of(merged, "retrain")
    status, status_reason = run_status(ectx, unchanged=res.unchanged, steps=res.steps)
    retrain_time = prep.oracle.train_time_s
    if params_source is None:
        params_source = PAPER_DEFAULTS if not params else "user"
    record = RunRecord(
        method=m.name, label=label or m.name, params=m.params.to_dict(), params_source=params_source,
        task=prep.dataset.task, dataset=prep.dataset.name, dataset_fingerprint=prep.dataset.fingerprint,
        model=prep.spec.name, forget=prep.splits.request.spec, request=prep.splits.describe(), seed=prep.seed,
        metrics=unlearned, original=values_of(merged, "original"), retrain=retrain,
        gap_to_retrain=gaps(unlearned, retrain), power=power_of(merged), reasons=reasons_of(merged),
        time_s=res.time_s, retrain_time_s=retrain_time,
        time_ratio_to_retrain=res.time_s / retrain_time if retrain_time > 0 else None,
        peak_rss_bytes=res.peak_rss_bytes, peak_delta_bytes=res.peak_delta_bytes, access=res.access,
        method_access=m.access.describe(), notes=res.notes, original_key=prep.original.key,
        oracle_key=prep.oracle.key, cache=cache_info(prep.original, prep.oracle),
        env=environment_info(), created_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        status=status, status_reason=status_reason,  # type: ignore[arg-type]
    )
    if save:
        key = prep.store.key({"original": prep.original.key, "method": m.name, "params": m.params.to_dict(),
                              "forget": prep.splits.fingerprint(), "seed": prep.seed, **(key_extra or {})})
        record = record.replace(unlearned_key=key)
        manifest = {k: v for k, v in record.to_json().items() if k != "env"}
        manifest["forget_ids"] = prep.splits.forget_ids.tolist()  # lets `expunge evaluate` rebuild any request
        if prep.splits.detail:  # and what it removes beyond whole examples (a graph's deleted edges)
            manifest["forget_detail"] = prep.splits.detail
        manifest["model_spec"], manifest["recipe"] = prep.spec.to_dict(), prep.recipe.to_dict()
        if prep.dataset.derivation is not None:  # a derived dataset (a poisoned copy): how to rebuild it
            manifest["dataset_derivation"] = prep.dataset.derivation
        prep.store.save_model("unlearned", key, res.model, manifest)
    record = record.with_extra(**original_in_store(prep.store, prep.original.key))  # the two-version pair warning
    if prep.oracle.cache_hit and (env := training_env(prep.oracle)):  # one trained in this run has the record's env
        record = record.with_extra(oracle_env=env)
    return record, res.model
