"""Evaluate an existing unlearned model: ``expunge evaluate RUN --tier N`` / ``--metrics a,b``.

``RUN`` is the ``unlearned_key`` of a run record (or the path of its store folder). The run's manifest records the
dataset fingerprint, model spec, recipe, seed, forget ids and the keys of its original and retrain oracle; everything
is reloaded from the store (hash-verified), the dataset fingerprint is checked, and the chosen metrics are computed for
the unlearned model, the Original and the Retrain side by side. Tier-0 evaluation never trains anything. A run on a
derived dataset (the corrective scenario's poisoned copy) records how to rebuild it (``dataset_derivation``); the
rebuilt copy must match the recorded fingerprint, and its triggered test images feed ``backdoor_asr``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from expunge.data.datasets import load_dataset
from expunge.data.request import ForgetRequest, Splits
from expunge.errors import ArtifactError
from expunge.experiment import _reasons, _values, power
from expunge.methods.base import get_method
from expunge.metrics.base import EvalContext, RunInfo, evaluate
from expunge.models import ModelSpec
from expunge.store import ArtifactStore
from expunge.train.loop import TrainRecipe
from expunge.train.oracle import check_fingerprint
from expunge.unlearn import load_result


def resolve_run(run: str, store: ArtifactStore) -> tuple[ArtifactStore, str]:
    path = Path(run)
    if path.is_dir() and (path / "manifest.json").is_file():  # a store folder: ROOT/unlearned/<key>
        return ArtifactStore(path.parent.parent), path.name
    if not store.exists("unlearned", run):
        raise ArtifactError(f"no unlearned run {run!r} in {store.root}. Fix: pass the `unlearned_key` of a record "
                            "from `expunge unlearn --json` (and the same --store), or the run's folder")
    return store, run


def evaluate_run(run: str, *, store: ArtifactStore, tier: int = 0, metrics: Iterable[str] | None = None,
                 data_dir: str | None = None, extras: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Evaluate a stored run; ``extras`` reach the metrics (``{"tier2": {"shadows": K, "models": N}}``)."""
    store, key = resolve_run(run, store)
    _, manifest = store.load_tensors("unlearned", key)
    request = manifest["request"]
    labels = "coarse" if request["kind"] == "subclass" else "fine"
    extras = dict(extras or {})
    derivation = manifest.get("dataset_derivation")
    if derivation is None:
        dataset = load_dataset(manifest["dataset"], data_dir=data_dir, labels=labels)
    elif derivation.get("kind") == "backdoor":  # the corrective scenario's poisoned copy, rebuilt exactly
        from expunge.metrics.backdoor import EXTRAS_KEY
        from expunge.scenarios.corrective import rebuild_poisoned

        poisoned = rebuild_poisoned(derivation, data_dir)
        dataset = poisoned.dataset
        extras.setdefault(EXTRAS_KEY, poisoned.triggered_test())  # backdoor_asr's triggered test images
    else:
        raise ArtifactError(f"run {key} was made on a derived dataset of unknown kind {derivation.get('kind')!r}; "
                            "this version of expunge cannot rebuild it")
    check_fingerprint({"dataset": {"fingerprint": manifest["dataset_fingerprint"]}}, dataset)
    splits = Splits.from_ids(dataset, np.asarray(manifest["forget_ids"], dtype=np.int64),
                             request=ForgetRequest("ids", ids=tuple(manifest["forget_ids"])),
                             forget_classes=tuple(request["forget_classes"]), seed=manifest["seed"])
    spec = ModelSpec.from_dict(manifest["model_spec"])
    # the method that made the run rebuilds its model: state buffers (analytic_head), another structure (sisa)
    method = get_method(manifest["method"], manifest["params"])
    models = {"unlearned": load_result(store, "unlearned", key, method, spec)[0]}
    for role, kind, k in (("original", "original", manifest["original_key"]), ("retrain", "oracle",
                                                                                manifest["oracle_key"])):
        model = spec.build(seed=0)
        store.load_model_into(kind, k, model)
        models[role] = model.eval()
    run_info = RunInfo(model_spec=spec, recipe=TrainRecipe(**manifest["recipe"]), store=store,
                       method=manifest["method"], method_params=manifest["params"],
                       original_key=manifest["original_key"])
    ctx = EvalContext(dataset, splits, models, seed=manifest["seed"], run=run_info, extras=extras)
    results = evaluate(ctx, metrics, tier=tier)
    return {"run": key, "method": manifest["method"], "dataset": manifest["dataset"], "model": spec.name,
            "forget": manifest["forget"], "seed": manifest["seed"], "tier": tier,
            "metrics": _values(results, "unlearned"), "original": _values(results, "original"),
            "retrain": _values(results, "retrain"), "power": power(results), "reasons": _reasons(results)}
