"""Evaluate an existing unlearned model: ``expunge evaluate RUN --tier N`` / ``--metrics a,b``.

``RUN`` is the ``unlearned_key`` of a run record (or the path of its store folder). The run's manifest records the
dataset fingerprint, model spec, recipe, seed, forget ids and the keys of its original and retrain oracle; everything
is reloaded from the store (hash-verified), the dataset fingerprint is checked, and the chosen metrics are computed for
the unlearned model, the Original and the Retrain side by side. Tier-0 evaluation never trains anything. A run on a
derived dataset (e.g. the corrective scenario's poisoned copy) records how to rebuild it (``dataset_derivation``);
the scenario that derived it rebuilds it (:meth:`~expunge.scenarios.base.Scenario.rebuild_dataset`), the copy must
match the recorded fingerprint, and the inputs it adds (triggered test images) reach the metrics again.

Nothing in the manifest is trusted blindly: ``RUN`` must be a plain key or a real ``ROOT/unlearned/<key>`` folder,
and the stored forget ids must hash to the request fingerprint the manifest and the oracle's manifest record
(:func:`stored_splits`), so a manifest whose ids were edited is refused instead of scored on the wrong examples.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from expunge.data.datasets import Dataset
from expunge.data.request import ForgetRequest, Splits, dataset_for
from expunge.errors import ArtifactError, CorruptArtifact, ForgetSetMismatch, InvalidArtifactKey, InvalidForgetRequest
from expunge.methods.base import get_method
from expunge.metrics.base import RunInfo, evaluate
from expunge.models import ModelSpec
from expunge.protocols.pipeline import eval_context, gaps, power_of, reasons_of, values_of
from expunge.protocols.runner import load_result
from expunge.record import RunRecord
from expunge.scenarios.base import scenario_for_derivation
from expunge.store import ArtifactStore
from expunge.train.loop import TrainRecipe
from expunge.train.oracle import check_fingerprint

_KEY = re.compile(r"[0-9a-f]{32}")


def resolve_run(run: str, store: ArtifactStore) -> tuple[ArtifactStore, str]:
    """The store and key of ``run``: an ``unlearned_key`` of ``store``, or the folder ``ROOT/unlearned/<key>`` of a
    stored run (then ``ROOT`` is the store). Anything else — a path-like key (``../x``), another folder — is refused
    before anything is read."""
    if _KEY.fullmatch(run) and store.exists("unlearned", run):
        return store, run
    path = Path(run)
    if path.is_dir():
        real = path.resolve()  # the folder a symlink or ``..`` really names
        if real.parent.name == "unlearned" and _KEY.fullmatch(real.name) and (real / "manifest.json").is_file():
            return ArtifactStore(real.parent.parent), real.name
    if not _KEY.fullmatch(run):
        raise InvalidArtifactKey(f"no unlearned run {run!r} in {store.root}: it is neither a run key (32 hex "
                                 "characters) nor a run's store folder (ROOT/unlearned/<key>). Fix: pass the "
                                 "`unlearned_key` of a record from `expunge unlearn --json` (and the same --store), "
                                 "or the run's folder")
    raise ArtifactError(f"no unlearned run {run!r} in {store.root}. Fix: pass the `unlearned_key` of a record "
                        "from `expunge unlearn --json` (and the same --store), or the run's folder")


_REQUIRED = ("dataset", "dataset_fingerprint", "request", "forget_ids", "seed", "method", "params", "model_spec",
             "recipe", "original_key", "oracle_key")


def stored_splits(store: ArtifactStore, key: str, manifest: Mapping[str, Any], dataset: Dataset) -> Splits:
    """The splits a stored run was made on, from the forget ids its manifest lists — checked against the request
    fingerprint the run's manifest and its oracle's manifest record, so edited ids never give metrics.

    Raises:
        ForgetSetMismatch: the ids are not valid training ids, or they hash to another request than the run's or
            the oracle's recorded one."""
    request, ids = manifest["request"], manifest["forget_ids"]
    fix = ("Fix: re-run the unlearning (`expunge unlearn` with the same data, model, forget request and method) and "
           "evaluate the new record's unlearned_key")
    try:
        splits = Splits.from_ids(dataset, np.asarray(ids, dtype=np.int64), request=ForgetRequest("ids", ids=tuple(ids)),
                                 forget_classes=tuple(request["forget_classes"]), seed=manifest["seed"],
                                 detail=manifest.get("forget_detail"))  # a graph's deleted edges, when any
    except (InvalidForgetRequest, ValueError, TypeError, KeyError) as exc:
        raise ForgetSetMismatch(f"unlearned run {key}: the forget ids its manifest stores are not a valid request on "
                                f"{dataset.name} ({exc}). {fix}") from None
    fp = splits.fingerprint()
    oracle = store.read_manifest("oracle", manifest["oracle_key"])
    recorded = {"the run's manifest (request.fingerprint)": request.get("fingerprint")}
    if oracle is not None:  # a missing oracle fails on load below, as a corrupt artifact
        recorded[f"its oracle {manifest['oracle_key']}"] = (oracle.get("request") or {}).get("fingerprint")
    differ = [f"{where} records {str(v)[:16]}…" for where, v in recorded.items() if v != fp]
    if differ:
        raise ForgetSetMismatch(f"unlearned run {key}: its {splits.forget.size} stored forget ids hash to request "
                                f"fingerprint {fp[:16]}…, but {' and '.join(differ)}: the ids or the manifests were "
                                f"edited, or the entries do not belong together, so metrics would be computed on the "
                                f"wrong examples. {fix}")
    return splits


def rebuild_dataset(manifest: Mapping[str, Any], data_dir: str | None, dataset: Dataset | None = None) \
        -> tuple[Dataset, dict[str, Any]]:
    """The dataset a run was made on (and inputs its scenario gives the metrics), fingerprint-checked; ``dataset``
    is the caller's own (a dataset built with ``from_arrays``, which no registry can reload)."""
    derivation = manifest.get("dataset_derivation")
    if dataset is not None:
        extras: dict[str, Any] = {}
    elif derivation is None:
        dataset, extras = dataset_for(manifest["dataset"], manifest["request"]["kind"], data_dir=data_dir), {}
    else:
        dataset, extras = scenario_for_derivation(derivation).rebuild_dataset(derivation, data_dir)
    check_fingerprint({"dataset": {"fingerprint": manifest["dataset_fingerprint"]}}, dataset)
    return dataset, extras


def evaluate_run(run: str, *, store: ArtifactStore, tier: int = 0, metrics: Iterable[str] | None = None,
                 data_dir: str | None = None, extras: Mapping[str, Any] | None = None,
                 dataset: Dataset | None = None) -> RunRecord:
    """Evaluate a stored run; ``extras`` reach the metrics (``{"tier2": {"shadows": K, "models": N}}``);
    ``dataset`` is needed for a run on the caller's own data (checked against the recorded fingerprint).

    Returns the run's record with the new metrics (its timing and access come from the stored run); ``extra`` adds
    ``tier`` and ``evaluated_metrics``."""
    store, key = resolve_run(run, store)
    _, manifest = store.load_tensors("unlearned", key)
    if missing := [f for f in _REQUIRED if f not in manifest]:
        raise CorruptArtifact(f"the manifest of unlearned run {key} lacks {', '.join(missing)}. Fix: re-run the "
                              "unlearning and evaluate the new record's unlearned_key")
    dataset, derived_extras = rebuild_dataset(manifest, data_dir, dataset)
    splits = stored_splits(store, key, manifest, dataset)
    spec = ModelSpec.from_dict(manifest["model_spec"])
    # the method that made the run rebuilds its model: state buffers (analytic_head), another structure (sisa)
    method = get_method(manifest["method"], manifest["params"])
    models = {"unlearned": load_result(store, "unlearned", key, method, spec)[0]}
    for role, kind, k in (("original", "original", manifest["original_key"]),
                          ("retrain", "oracle", manifest["oracle_key"])):
        model = spec.build(seed=0)
        store.load_model_into(kind, k, model)
        models[role] = model.eval()
    run_info = RunInfo(model_spec=spec, recipe=TrainRecipe(**manifest["recipe"]), store=store,
                       method=manifest["method"], method_params=manifest["params"],
                       original_key=manifest["original_key"])
    ctx = eval_context(dataset, splits, models, seed=manifest["seed"], run=run_info,
                       extras={**derived_extras, **dict(extras or {})})
    results = evaluate(ctx, metrics, tier=tier)
    stored = RunRecord.from_json({k: v for k, v in manifest.items()
                                  if k not in ("forget_ids", "forget_detail", "model_spec", "recipe",
                                               "dataset_derivation", "kind",
                                               "key", "tensors_sha256", "tensors_nbytes", "saved_at", "env")})
    unlearned, retrain = values_of(results, "unlearned"), values_of(results, "retrain")
    return stored.replace(metrics=unlearned, original=values_of(results, "original"), retrain=retrain,
                          gap_to_retrain=gaps(unlearned, retrain), power=power_of(results),
                          reasons=reasons_of(results), unlearned_key=key, env=manifest.get("env", {})).with_extra(
        tier=tier, evaluated_metrics=sorted(results))
