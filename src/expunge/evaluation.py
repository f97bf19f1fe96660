"""Evaluate an existing unlearned model: ``expunge evaluate RUN --tier N`` / ``--metrics a,b``.

``RUN`` is the ``unlearned_key`` of a run record (or the path of its store folder). The run's manifest records the
dataset fingerprint, model spec, recipe, seed, forget ids and the keys of its original and retrain oracle; everything
is reloaded from the store (hash-verified), the dataset fingerprint is checked, and the chosen metrics are computed for
the unlearned model, the Original and the Retrain side by side. Tier-0 evaluation never trains anything. A run on a
derived dataset (e.g. the corrective scenario's poisoned copy) records how to rebuild it (``dataset_derivation``);
the scenario that derived it rebuilds it (:meth:`~expunge.scenarios.base.Scenario.rebuild_dataset`), the copy must
match the recorded fingerprint, and the inputs it adds (triggered test images) reach the metrics again.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from expunge.data.datasets import Dataset
from expunge.data.request import ForgetRequest, Splits, dataset_for
from expunge.errors import ArtifactError
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
    """The store and key of ``run`` (an ``unlearned_key`` or a run's store folder)."""
    path = Path(run)
    if path.is_dir() and (path / "manifest.json").is_file():  # a store folder: ROOT/unlearned/<key>
        return ArtifactStore(path.parent.parent), path.name
    if not _KEY.fullmatch(run) or not store.exists("unlearned", run):
        raise ArtifactError(f"no unlearned run {run!r} in {store.root}. Fix: pass the `unlearned_key` of a record "
                            "from `expunge unlearn --json` (and the same --store), or the run's folder")
    return store, run


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
    dataset, derived_extras = rebuild_dataset(manifest, data_dir, dataset)
    request = manifest["request"]
    splits = Splits.from_ids(dataset, np.asarray(manifest["forget_ids"], dtype=np.int64),
                             request=ForgetRequest("ids", ids=tuple(manifest["forget_ids"])),
                             forget_classes=tuple(request["forget_classes"]), seed=manifest["seed"])
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
                                  if k not in ("forget_ids", "model_spec", "recipe", "dataset_derivation", "kind",
                                               "key", "tensors_sha256", "tensors_nbytes", "saved_at", "env")})
    unlearned, retrain = values_of(results, "unlearned"), values_of(results, "retrain")
    return stored.replace(metrics=unlearned, original=values_of(results, "original"), retrain=retrain,
                          gap_to_retrain=gaps(unlearned, retrain), power=power_of(results),
                          reasons=reasons_of(results), unlearned_key=key, env=manifest.get("env", {})).with_extra(
        tier=tier, evaluated_metrics=sorted(results))
