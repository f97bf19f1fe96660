"""Cached repeated unlearning runs for the tier-2 pipelines.

Every unlearning run a tier-2 metric needs (the method on each shadow, the method with N seeds, the method on N
originals) goes through :func:`cached_unlearn`: one store entry per (original, method, params, forget set, seed),
so an interrupted evaluation resumes and a second evaluation of the same method retrains nothing. Runs of the
method on the run's own original use the key :func:`expunge.protocols.pipeline.run_step` uses, so the target run
itself is found in the ``unlearned`` kind and not recomputed.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from torch import nn

from expunge.data.datasets import Dataset
from expunge.data.request import Splits
from expunge.errors import ArtifactError, ExpungeError
from expunge.methods.base import RunContext, UnlearningMethod
from expunge.models import ModelSpec
from expunge.protocols import runner as _runner
from expunge.store import ArtifactStore
from expunge.train.loop import TrainRecipe

log = logging.getLogger("expunge.shadows")
TIER2_UNLEARNED_KIND = "tier2_unlearned"
SHADOW_UNLEARNED_KIND = "shadow_unlearned"


class Tier2Unavailable(ExpungeError):
    """A tier-2 pipeline cannot run for this run (reported as the metric's reason, never as a number)."""


def run_key_parts(original_key: str, method: UnlearningMethod[Any], splits: Splits, seed: int) -> dict[str, Any]:
    """The key :func:`expunge.protocols.pipeline.run_step` stores an unlearned model under (without ``key_extra``)."""
    return {"original": original_key, "method": method.name, "params": method.params.to_dict(),
            "forget": splits.fingerprint(), "seed": seed}


def cached_unlearn(store: ArtifactStore, kind: str, key_parts: Mapping[str, Any], method: UnlearningMethod[Any],
                   original: nn.Module, dataset: Dataset, splits: Splits, spec: ModelSpec, recipe: TrainRecipe, *,
                   seed: int, original_key: str | None, reuse_kinds: Sequence[str] = ()) -> tuple[nn.Module, bool]:
    """The unlearned model for ``key_parts`` from the store (``kind``, then ``reuse_kinds``), or run the method and
    store it. Returns (model, cache_hit).

    Raises:
        Tier2Unavailable: the method returns a model its ``restore`` cannot rebuild (it cannot be cached).
    """
    key = store.key(dict(key_parts))
    for k in (kind, *reuse_kinds):
        if store.exists(k, key):
            try:
                return _runner.load_result(store, k, key, method, spec)[0], True
            except ArtifactError as exc:
                log.warning("recomputing %s/%s: %s", k, key, exc)
    ctx = RunContext(seed=seed, model_spec=spec, recipe=recipe, store=store)
    res = _runner.run_method(method, original, dataset, splits, ctx, original_key=original_key)
    try:  # what is cached must come back: the method's restore has to rebuild its result from the tensors
        method.restore(spec, res.model.state_dict())
    except RuntimeError as exc:
        raise Tier2Unavailable(f"method {method.name!r} returns a model its restore() cannot rebuild from the "
                               f"{spec.name!r} architecture, so its repeated runs cannot be cached "
                               f"({str(exc)[:120]})") from None
    store.save_model(kind, key, res.model, {**dict(key_parts), "time_s": res.time_s, "notes": res.notes,
                                            "access": res.access})
    return res.model.eval(), False


def train_seconds_per_example(store: ArtifactStore, original_key: str | None) -> float | None:
    """Recipe cost measured on this store's original: its training wall time per training example."""
    m = store.read_manifest("original", original_key) if original_key else None
    try:
        return float(m["train_log"]["wall_s"]) / max(1, int(m["n_train_examples"]))  # type: ignore[index]
    except (TypeError, KeyError, ValueError):
        return None
