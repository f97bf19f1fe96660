"""Cached unlearning runs and per-example model outputs for the tier-2 metrics.

Every unlearning run a tier-2 metric needs (the method on each shadow, the method with N seeds, the method on N
originals) goes through :func:`cached_unlearn`: one store entry per (original, method, params, forget set, seed),
so an interrupted evaluation resumes and a second evaluation of the same method retrains nothing. Runs of the
method on the run's own original use the key :func:`expunge.experiment.run_step` uses, so the target run itself is
found in the ``unlearned`` kind and not recomputed.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from expunge import unlearn as _unlearn
from expunge.data.datasets import Dataset
from expunge.data.request import Splits
from expunge.errors import ArtifactError, ExpungeError
from expunge.methods.base import RunContext, UnlearningMethod
from expunge.metrics.base import predict_logits
from expunge.metrics.functional.lira import logit_scaled_confidence
from expunge.models import ModelSpec
from expunge.store import ArtifactStore
from expunge.store.artifacts import MANIFEST
from expunge.train.loop import TrainRecipe

log = logging.getLogger("expunge.shadows")
TIER2_UNLEARNED_KIND = "tier2_unlearned"
SHADOW_UNLEARNED_KIND = "shadow_unlearned"
QUERIES = ("identity", "flip")


class Tier2Unavailable(ExpungeError):
    """A tier-2 pipeline cannot run for this run (reported as the metric's reason, never as a number)."""


def run_key_parts(original_key: str, method: UnlearningMethod[Any], splits: Splits, seed: int) -> dict[str, Any]:
    """The key :func:`expunge.experiment.run_step` stores an unlearned model under (without ``key_extra``)."""
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
                return _unlearn.load_result(store, k, key, method, spec)[0], True
            except ArtifactError as exc:
                log.warning("recomputing %s/%s: %s", k, key, exc)
    ctx = RunContext(seed=seed, model_spec=spec, recipe=recipe, store=store)
    res = _unlearn.run_method(method, original, dataset, splits, ctx, original_key=original_key)
    try:  # what is cached must come back: the method's restore has to rebuild its result from the tensors
        method.restore(spec, res.model.state_dict())
    except RuntimeError as exc:
        raise Tier2Unavailable(f"method {method.name!r} returns a model its restore() cannot rebuild from the "
                               f"{spec.name!r} architecture, so its repeated runs cannot be cached "
                               f"({str(exc)[:120]})") from None
    store.save_model(kind, key, res.model, {**dict(key_parts), "time_s": res.time_s, "notes": res.notes,
                                            "access": res.access})
    return res.model.eval(), False


def query_views(x: torch.Tensor, queries: Sequence[str]) -> list[torch.Tensor]:
    """The inputs of each query: ``identity``, ``flip`` (horizontal, last axis; images only)."""
    out = []
    for q in queries:
        if q == "identity":
            out.append(x)
        elif q == "flip":
            if x.dim() < 4:
                raise ValueError("the flip query needs image inputs (N, C, H, W)")
            out.append(torch.flip(x, dims=[-1]))
        else:
            raise ValueError(f"unknown query {q!r}: 'identity' or 'flip'")
    return out


def default_queries(x: torch.Tensor) -> tuple[str, ...]:
    """identity + flip for images (spec 4.1/4.2), identity only otherwise."""
    return QUERIES if x.dim() >= 4 else ("identity",)


def phi(model: nn.Module, x: torch.Tensor, y: torch.Tensor, queries: Sequence[str]) -> np.ndarray:
    """(n, A) logit-scaled confidence of ``model`` on each example under each query."""
    lab = y.numpy()
    cols = [logit_scaled_confidence(predict_logits(model, v), lab) for v in query_views(x, queries)]
    return np.stack(cols, axis=1) if cols else np.zeros((len(x), 0))


def accuracy_of(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    if len(x) == 0:
        return float("nan")
    return float(np.mean(predict_logits(model, x).argmax(1) == y.numpy()))


def manifest_of(store: ArtifactStore, kind: str, key: str) -> dict[str, Any] | None:
    try:
        return json.loads((store.path(kind, key) / MANIFEST).read_text())
    except (OSError, ValueError):
        return None


def train_seconds_per_example(store: ArtifactStore, original_key: str | None) -> float | None:
    """Recipe cost measured on this store's original: its training wall time per training example."""
    m = manifest_of(store, "original", original_key) if original_key else None
    try:
        return float(m["train_log"]["wall_s"]) / max(1, int(m["n_train_examples"]))  # type: ignore[index]
    except (TypeError, KeyError, ValueError):
        return None
