"""Run one unlearning method on one request: copy, gate, time, verify.

:func:`run_method` is the only place a method is called. It deep-copies the original (the method edits the copy),
gives the method an :class:`~expunge.data.access.UnlearningData` limited to its declared access, times the call
alone (evaluation is a separate stage), refuses a task the method does not support
(:meth:`~expunge.methods.base.UnlearningMethod.check_task`; the public API refuses it earlier, before any
training), records peak memory and the examples served, and checks afterwards that the
caller's model is bit-identical to before. ``time_s`` excludes the one-off computation of cached training-set
statistics (reported as ``access["precompute_s"]``). It also records what :attr:`RunRecord.status
<expunge.record.RunRecord.status>` is judged on: whether the returned weights are bit-identical to the input's
(``unchanged``) and the steps every training loop of the call took and the non-finite guard skipped (``steps``).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from expunge.data.access import DataAccess, UnlearningData
from expunge.data.datasets import Dataset
from expunge.data.request import Splits
from expunge.errors import CorruptArtifact, ExpungeError
from expunge.methods.base import RunContext, UnlearningMethod
from expunge.models import ModelSpec
from expunge.record import finite_json
from expunge.store import ArtifactStore
from expunge.store.artifacts import state_hash
from expunge.train import batchnorm
from expunge.train.loop import StepTally, count_steps
from expunge.train.monitor import Monitor
from expunge.train.warmup import warm_up


class InputModelModified(ExpungeError, RuntimeError):
    """A method modified the caller's original model (a bug in that method)."""


@dataclass
class UnlearnResult:
    model: nn.Module
    time_s: float
    peak_rss_bytes: int
    peak_delta_bytes: int
    access: dict[str, Any]
    notes: dict[str, Any] = field(default_factory=dict)
    unchanged: bool = False          # the returned weights are bit-identical to the input model's
    steps: StepTally = field(default_factory=StepTally)  # training-loop steps of the call, skipped ones counted


def run_method(method: UnlearningMethod[Any], original: nn.Module, dataset: Dataset, splits: Splits,
               ctx: RunContext, *, original_key: str | None = None) -> UnlearnResult:
    method.check_task(dataset.task, method.params)  # every path: a method never runs on a task it does not support
    data = UnlearningData(dataset, splits, method.access, seed=ctx.seed, store=ctx.store, original_key=original_key)
    warm_up()  # torch's one-off lazy initialisation is not the method's time (expunge.train.warmup)
    before = state_hash(original)
    working = copy.deepcopy(original)
    ctx.notes = {}
    # BatchNorm running statistics (expunge.train.batchnorm): a method that never sees retained data keeps the
    # Original's throughout; otherwise every train-mode forward of forget-set inputs leaves them as they were
    bn_before = batchnorm.running_stats(original) if batchnorm.tracking_layers(original) else None
    retain_access = bool(method.access & (DataAccess.RETAIN | DataAccess.RETAIN_SUBSET))
    frozen = batchnorm.frozen_batchnorm(working) if not retain_access else batchnorm.frozen_on_forget_inputs(working)
    with (torch.random.fork_rng(devices=[]), count_steps() as steps, Monitor() as mon,
          batchnorm.recording_batchnorm() as bn_events, frozen):
        torch.manual_seed(ctx.seed)
        unlearned = method.unlearn(working, data, ctx)
    ctx.notes["memory_probe"] = mon.probe  # how peak_delta_bytes was measured: tables trust only the exact kind
    if state_hash(original) != before:
        raise InputModelModified(f"method {method.name!r} modified the original model it was given")
    unchanged = type(unlearned) is type(original) and state_hash(unlearned) == before
    unlearned.eval()
    batchnorm.restore_tracking(unlearned)
    if bn_before is not None:
        policy = {batchnorm.FROZEN_NO_RETAIN} if not retain_access else bn_events
        ctx.notes["batchnorm"] = batchnorm.describe(policy, bn_before, batchnorm.running_stats(unlearned))
    # One-off training-set statistics (cached per original) are reported apart: a request's time is what it costs
    # once they exist; ``access["precompute_s"]`` says what the first request paid on top.
    per_request = max(0.0, mon.result.wall_s - data.log.precompute_s)
    return UnlearnResult(unlearned, per_request, mon.result.peak_rss_bytes, mon.result.peak_delta_bytes,
                         data.log.to_dict(), finite_json(dict(ctx.notes)), unchanged, steps)  # notes: strict JSON


def load_result(store: ArtifactStore, kind: str, key: str, method: UnlearningMethod[Any],
                spec: ModelSpec) -> tuple[nn.Module, dict[str, Any]]:
    """A stored unlearned model rebuilt by the method that made it (:meth:`UnlearningMethod.restore`: state
    buffers, ensembles), in eval mode, with its manifest.

    Raises:
        CorruptArtifact: the stored tensors fail their checksum or do not fit what ``method`` rebuilds.
    """
    tensors, manifest = store.load_tensors(kind, key)
    try:
        model = method.restore(spec, tensors)
    except RuntimeError as exc:
        raise CorruptArtifact(f"{store.path(kind, key)} does not fit a {spec.name!r} model as {method.name!r} "
                              f"rebuilds it: {str(exc)[:300]}") from None
    return model.eval(), manifest
