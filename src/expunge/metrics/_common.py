"""Helpers shared by the metric modules (underscore: not a metric family, skipped by auto-discovery).

* :func:`cached` — a per-evaluation cache in ``ctx.extras`` keyed by *model content*, not by role, so results for a
  model are computed once and shared by every metric and every role holding that model (a do-nothing "unlearned"
  model reuses the Original's work). The cache dict lives inside ``ctx.extras``; :meth:`EvalContext.with_model` copies
  ``extras`` shallowly, so a context derived from another one shares the cache, and a replaced model can never hit a
  stale entry because its content hash differs. Only small results go there; large arrays use ``local=True``.
* :func:`penultimate_features` — built-in models expose ``features(x)``; any other model falls back to the input of
  its last ``nn.Linear`` (captured by a forward hook).
* :func:`run_info_missing` — the reason string tier-1 metrics return when ``ctx.run`` lacks what they need.
* :func:`single_threaded` — one BLAS/OpenMP and one torch intra-op thread around the small scikit-learn fits and
  fine-tunes of the attacks, probes and tier-1 metrics: models and batches this small gain nothing from threads, and
  on a busy 2-core machine thread contention cost 15–20× (a 60×128 logistic regression 1.1 s instead of 0.07 s; 50
  Adam steps of the digits MLP 20 s instead of 0.4 s). The caller's settings are restored afterwards.
"""

from __future__ import annotations

import hashlib
import warnings
import weakref
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import numpy as np
import torch
from threadpoolctl import threadpool_limits
from torch import nn

from expunge.metrics.base import EvalContext
from expunge.train.batches import INFERENCE_BATCH_SIZE

T = TypeVar("T")
CACHE_KEY = "_metric_cache"
_PINS = "_pinned_models"


def model_fingerprint(model: nn.Module) -> str:
    """Content hash of a model (class, parameter and buffer names, dtypes, shapes, bytes).

    A model without any state (test doubles) is identified by ``id`` instead; callers that cache on it pin the object
    (see :func:`model_key`) so the id cannot be reused while the cache lives."""
    h = hashlib.sha256(type(model).__qualname__.encode())
    state = model.state_dict()
    if not state:
        return f"id:{id(model)}"
    for name, t in state.items():
        if not isinstance(t, torch.Tensor) or t.is_quantized:  # packed params of quantised models: identity only
            return f"id:{id(model)}"
        t = t.detach().to("cpu").contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        h.update(t.view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:32]


_LOCAL: weakref.WeakKeyDictionary[EvalContext, dict[Hashable, Any]] = weakref.WeakKeyDictionary()


def _cache(ctx: EvalContext) -> dict[Hashable, Any]:
    return ctx.extras.setdefault(CACHE_KEY, {})


def model_key(ctx: EvalContext, role: str) -> str:
    """Fingerprint of the model in ``role`` (stateless models are pinned in the cache so their id stays unique)."""
    model = ctx.models[role]
    fp = model_fingerprint(model)
    if fp.startswith("id:"):
        _cache(ctx).setdefault(_PINS, {})[fp] = model
    return fp


def context_key(ctx: EvalContext) -> tuple[str, str, int]:
    """What, besides the model, every cached result depends on: dataset, the three index sets, evaluation seed."""
    s = ctx.splits
    h = hashlib.sha256()
    for a in (s.forget, s.retain, s.test):
        h.update(np.asarray(a, dtype=np.int64).tobytes() + b"|")
    return ctx.dataset.fingerprint, h.hexdigest()[:32], int(ctx.seed)


def cached(ctx: EvalContext, key: tuple[Hashable, ...], compute: Callable[[], T], *, local: bool = False) -> T:
    """``compute()`` once per ``key`` (plus :func:`context_key`) within the evaluation; later calls reuse it.

    ``local=True`` keeps the result in this context only (not in the ``extras`` dict that derived contexts share):
    for large per-model arrays (penultimate features), which would otherwise accumulate over every unlearned model
    of a benchmark. User warnings raised by ``compute`` (DegenerateInputWarning, scikit-learn's ConvergenceWarning)
    are recorded and re-raised on every call, so each role sharing a cached result gets the same reason from
    :func:`evaluate`."""
    cache = _LOCAL.setdefault(ctx, {}) if local else _cache(ctx)
    full = (*context_key(ctx), *key)
    if full not in cache:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            value = compute()
        kept = [(str(w.message), w.category) for w in caught
                if issubclass(w.category, UserWarning) and not issubclass(w.category, DeprecationWarning)]
        cache[full] = (value, kept)
    value, kept = cache[full]
    for message, category in kept:
        warnings.warn(message, category, stacklevel=2)
    return value  # type: ignore[no-any-return]


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


def split_tensors(ctx: EvalContext, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and labels of ``split`` ("forget", "retain" or "test")."""
    if split == "test":
        part, pos = ctx.dataset.test, ctx.splits.test
    else:
        part, pos = ctx.dataset.train, getattr(ctx.splits, split)
    return part.x[pos], part.y[pos]


def run_info_missing(ctx: EvalContext, *fields: str) -> str | None:
    """Reason for a None value when ``ctx.run`` lacks any of ``fields`` (model_spec, recipe, store), else None."""
    missing = [f for f in fields if getattr(ctx.run, f, None) is None]
    if not missing:
        return None
    return f"no run info: {', '.join(missing)} unknown (evaluate through expunge.experiment or `expunge evaluate`)"


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
    was = model.training
    model.eval()
    try:
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
    finally:
        model.train(was)
    if not out:
        return np.zeros((0, 0))
    return torch.cat([o.reshape(len(o), -1) for o in out]).double().numpy()
