"""Inference helpers every layer shares: eval mode with a guaranteed restore, chunked logits, model accuracy.

* :func:`eval_mode` — the model in eval mode for the block, its previous train/eval mode restored afterwards even when
  the block raises (a method that leaves a teacher or the model it edits in the wrong mode changes BatchNorm and
  dropout behaviour downstream); :func:`model_mode` is the same for either mode (the training loop's train mode).
* :func:`predict_logits` — outputs over ``x`` in chunks of :data:`INFERENCE_BATCH_SIZE`, in eval mode, without a
  graph. The metrics convert them to float64 NumPy; methods use the tensor.
* :func:`accuracy` — top-1 accuracy of a model on ``(x, y)``; ``None`` for an empty set (never 0, nan or an
  exception), like :func:`expunge.metrics.functional.accuracy.accuracy` on arrays; a model with a NaN/±inf output
  raises :class:`~expunge.errors.NonFiniteOutputs` (argmax would score all-NaN outputs as class 0).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

import torch
from torch import nn

from expunge.errors import NonFiniteOutputs

# Chunk size of inference-only passes (evaluation logits, features, teacher outputs). Measured at 2 threads
# (benchmarks/results/inference_batch.md): on the Fashion-MNIST CNN and ResNet, 1024-row chunks take 2.2-2.5x as long
# as 128-256-row ones (the conv activations of 1024 images fall out of cache; tier-0 logits of a 59k retain set took
# 27 s at 1024); 256 is within 10% of the best there and within 40% on the MLPs, whose passes take milliseconds.
INFERENCE_BATCH_SIZE = 256


@contextmanager
def model_mode(*models: nn.Module, training: bool) -> Iterator[None]:
    """Put ``models`` in train (``training=True``) or eval mode for the block; restore each one's previous mode
    afterwards, also on error."""
    before = [m.training for m in models]
    for m in models:
        m.train(training)
    try:
        yield
    finally:
        for m, was in zip(models, before, strict=True):
            m.train(was)


def eval_mode(*models: nn.Module) -> AbstractContextManager[None]:
    """Put ``models`` in eval mode for the block; restore each one's previous mode afterwards, also on error."""
    return model_mode(*models, training=False)


@torch.no_grad()
def predict_logits(model: nn.Module, x: torch.Tensor, batch_size: int = INFERENCE_BATCH_SIZE) -> torch.Tensor:
    """``model``'s outputs over ``x`` in chunks, in eval mode (the caller's mode is restored), without a graph.

    An empty ``x`` gives the model's output on the empty batch (shape ``(0, C)`` for the built-in models)."""
    with eval_mode(model):
        if len(x) == 0:
            return model(x)
        return torch.cat([model(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = INFERENCE_BATCH_SIZE) \
        -> float | None:
    """Top-1 accuracy of ``model`` on ``(x, y)`` in eval mode; ``None`` when the set is empty.

    Raises:
        NonFiniteOutputs: Some output is NaN/±inf (a collapsed model has no accuracy; the metric layer reports the
            reason instead of a value)."""
    if len(x) == 0:
        return None
    logits = predict_logits(model, x, batch_size)
    if not bool(torch.isfinite(logits).all()):
        bad = int((~torch.isfinite(logits.reshape(len(logits), -1)).all(dim=1)).sum())
        raise NonFiniteOutputs(f"the model's outputs on {bad} of {len(x)} examples are not finite: a collapsed model "
                               "has no accuracy")
    return float((logits.argmax(1) == y).float().mean())
