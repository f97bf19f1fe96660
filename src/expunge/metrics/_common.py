"""Helpers shared by the metric modules (underscore: not a metric family, skipped by auto-discovery).

* :func:`penultimate_features` — built-in models expose ``features(x)``; any other model falls back to the input of
  its last ``nn.Linear`` (captured by a forward hook).
* :func:`phi` — the logit-scaled confidence of a model on each example under each query (identity, horizontal
  flip), the per-example score of the LiRA-family attacks (U-LiRA, the privacy onion, the NeurIPS'23 ε-score, KLoM);
  :func:`training_queries` — the queries that match how the models were trained.
* :func:`single_threaded` — one BLAS/OpenMP and one torch intra-op thread around the small scikit-learn fits and
  fine-tunes of the attacks, probes and tier-1 metrics: models and batches this small gain nothing from threads, and
  on a busy 2-core machine thread contention cost 15–20× (a 60×128 logistic regression 1.1 s instead of 0.07 s; 50
  Adam steps of the digits MLP 20 s instead of 0.4 s). The caller's settings are restored afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import torch
from threadpoolctl import threadpool_limits
from torch import nn

from expunge.metrics.functional.lira import logit_scaled_confidence
from expunge.models.inference import INFERENCE_BATCH_SIZE, eval_mode, predict_logits

QUERIES = ("identity", "flip")


@contextmanager
def single_threaded() -> Iterator[None]:
    """One BLAS / OpenMP thread and one torch intra-op thread for the enclosed work; both restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(limits=1):
            yield
    finally:
        torch.set_num_threads(before)


def _last_linear(model: nn.Module) -> nn.Linear | None:
    last = None
    for m in model.modules():
        if isinstance(m, nn.Linear):
            last = m
    return last


@torch.no_grad()
def penultimate_features(model: nn.Module, x: torch.Tensor, batch_size: int = INFERENCE_BATCH_SIZE) -> np.ndarray:
    """Penultimate activations as a float64 (n, d) array, in eval mode (the caller's mode is restored).

    ``model.features(x)`` when the model has it (every built-in architecture); otherwise the input of the last
    ``nn.Linear`` module (in registration order), captured by a forward hook during ``model(x)``.

    Raises:
        ValueError: The model has neither ``features`` nor any ``nn.Linear``.
    """
    with eval_mode(model):
        feats = getattr(model, "features", None)
        if callable(feats):
            out = [feats(x[i:i + batch_size]) for i in range(0, len(x), batch_size)]
        else:
            lin = _last_linear(model)
            if lin is None:
                raise ValueError(f"{type(model).__name__} has no features() method and no nn.Linear layer")
            grabbed: list[torch.Tensor] = []
            handle = lin.register_forward_hook(lambda _m, inp, _o: grabbed.append(inp[0].detach()))
            try:
                for i in range(0, len(x), batch_size):
                    model(x[i:i + batch_size])
            finally:
                handle.remove()
            out = grabbed
    if not out:
        return np.zeros((0, 0))
    return torch.cat([o.reshape(len(o), -1) for o in out]).double().numpy()


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


def training_queries(x: torch.Tensor, recipe: object) -> tuple[str, ...]:
    """The queries that match how the models were trained: identity, plus the horizontal flip only for images whose
    training recipe augments with flips (``"hflip" in recipe.augment``). LiRA (Carlini et al. 2022) queries the
    augmentations the models saw in training; expunge's :class:`~expunge.train.loop.TrainRecipe` trains without
    augmentation, so a flipped query would be off-distribution (a digit or garment mirrored) and blur the attack."""
    augment = getattr(recipe, "augment", None) or ()
    return QUERIES if x.dim() >= 4 and "hflip" in augment else ("identity",)


def phi(model: nn.Module, x: torch.Tensor, y: torch.Tensor, queries: Sequence[str]) -> np.ndarray:
    """(n, A) logit-scaled confidence of ``model`` on each example under each query."""
    lab = y.numpy()
    cols = [logit_scaled_confidence(predict_logits(model, v).double().numpy(), lab) for v in query_views(x, queries)]
    return np.stack(cols, axis=1) if cols else np.zeros((len(x), 0))
