"""BatchNorm running statistics during unlearning: kept from the Original on forget-only data.

A train-mode forward pass updates every BatchNorm layer's running mean and variance with the batch's statistics
(momentum 0.1 in PyTorch). An unlearning method that runs train-mode steps on forget-only batches (NegGrad, JiT,
Boundary Shrink, SCRUB's max steps) thereby replaces the statistics the model normalises with at evaluation by
forget-set statistics: measured on the ResNet, NegGrad's 5 epochs rewrote all 27 BN buffers. The result is a model
tuned to the data it should forget and a distribution shift on everything else, which the paper methods do not intend
(their reference code simply never separates the two).

Policy, decided per data access (the runner, :func:`expunge.protocols.runner.run_method`, applies it):

* a method that declared no retain access runs with the running statistics **frozen** throughout
  (:func:`frozen_batchnorm`): every train-mode step it can take is on forget data or data derived from it;
* for other methods, every train-mode forward whose input came from the forget set — a forget-loader batch or
  ``forget_tensors()``, which the data gate tags (:data:`~expunge.data.batches.FORGET_TAG`) — runs with them frozen
  (:func:`frozen_on_forget_inputs`; the training loop also freezes them for a whole loop over forget-loader batches);
  this covers NegGrad+'s paired step (a retain forward then a forget forward) and SCRUB's max steps;
* frozen layers still normalise each training batch with its own statistics, so the forward pass and the gradients
  are exactly the reference's; only the buffers (``running_mean``, ``running_var``, ``num_batches_tracked``) stay the
  Original's, which were estimated on the whole training set D ⊇ D_r;
* forwards of retained or mixed data (fine-tuning, SCRUB's min steps, a concatenated forget+retain batch) update them
  as in plain training: that is how a method with retain access re-estimates them on the retained data. No separate
  recalibration pass is added: it would cost a pass over D_r for methods that do not declare one. A forget tensor the
  method transforms before the forward (concatenation, augmentation) is no longer recognised.

:func:`recording_batchnorm` collects what the training loop did, for the run's ``notes["batchnorm"]``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import torch
from torch import nn
from torch.nn.modules.batchnorm import _NormBase

from expunge.data.batches import FORGET_TAG

FROZEN_NO_RETAIN = "frozen throughout: the method sees no retained data"
FROZEN_FORGET = "frozen on forget-only batches"
UPDATED_OTHER = "updated on batches not from the forget loader (retained or mixed data)"

_EVENTS: ContextVar[set[str] | None] = ContextVar("expunge_batchnorm_events", default=None)


def tracking_layers(*models: nn.Module) -> list[_NormBase]:
    """Normalisation layers (BatchNorm, InstanceNorm with running stats) whose train-mode passes update buffers."""
    return [m for model in models for m in model.modules()
            if isinstance(m, _NormBase) and m.track_running_stats and m.running_mean is not None]


@contextmanager
def frozen_batchnorm(*models: nn.Module) -> Iterator[None]:
    """Running statistics of ``models``' norm layers unchanged in the block (restored on exit, also on error).

    ``track_running_stats=False`` on a layer in train mode makes PyTorch normalise with the batch's statistics and pass
    no buffer to update (``num_batches_tracked`` is not incremented either); in eval mode the layer still normalises
    with its running statistics. The flag survives ``model.train()``/``eval()`` calls inside the block."""
    layers = tracking_layers(*models)
    for layer in layers:
        layer.track_running_stats = False
    try:
        yield
    finally:
        for layer in layers:
            layer.track_running_stats = True


def restore_tracking(model: nn.Module) -> None:
    """Turn running-statistics tracking back on in every norm layer of ``model`` that has the buffers: a copy a
    method made of a model inside :func:`frozen_batchnorm` (and returned) inherited the frozen flag."""
    for m in model.modules():
        if isinstance(m, _NormBase) and m.running_mean is not None:
            m.track_running_stats = True


def _is_forget(args: tuple[object, ...]) -> bool:
    return bool(args) and getattr(args[0], FORGET_TAG, False)


def _freeze_on_forget_input(module: nn.Module, args: tuple[object, ...]) -> None:
    if module.training and _is_forget(args) and (layers := tracking_layers(module)):
        note(FROZEN_FORGET)
        for layer in layers:
            layer.track_running_stats = False
        module.__dict__["_expunge_frozen_layers"] = layers


def _unfreeze(module: nn.Module, args: tuple[object, ...], output: object) -> None:
    for layer in module.__dict__.pop("_expunge_frozen_layers", ()):
        layer.track_running_stats = True


@contextmanager
def frozen_on_forget_inputs(model: nn.Module) -> Iterator[None]:
    """In the block, every train-mode forward of ``model`` whose input is a forget tensor (tagged by the data
    gate: :data:`~expunge.data.batches.FORGET_TAG`)
    runs with the running statistics frozen, whatever batches the method builds around it (NegGrad+ feeds paired
    retain and forget batches through two forwards in one step; LAF alternates them). The hooks read the layers
    of the module they are called on, so a copy the method makes inside the block is handled the same way."""
    handles = [model.register_forward_pre_hook(_freeze_on_forget_input),
               model.register_forward_hook(_unfreeze, always_call=True)]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def note(event: str) -> None:
    """Record what a training loop did to the running statistics (only inside :func:`recording_batchnorm`)."""
    events = _EVENTS.get()
    if events is not None:
        events.add(event)


@contextmanager
def recording_batchnorm() -> Iterator[set[str]]:
    """Collect the :func:`note` events of the block into the yielded set."""
    token = _EVENTS.set(set())
    try:
        yield _EVENTS.get()  # type: ignore[misc]
    finally:
        _EVENTS.reset(token)


def running_stats(model: nn.Module) -> dict[str, torch.Tensor]:
    """Copies of the running-statistics buffers of ``model``'s norm layers, by buffer name."""
    return {name: buf.detach().clone() for name, buf in model.named_buffers()
            if name.rsplit(".", 1)[-1] in ("running_mean", "running_var", "num_batches_tracked")}


def describe(policy: set[str], before: dict[str, torch.Tensor], after: dict[str, torch.Tensor]) -> str:
    """The run's ``notes["batchnorm"]``: what was done, and whether the buffers changed (compared by name)."""
    shared = [n for n in before if n in after and before[n].shape == after[n].shape]
    changed = sum(not torch.equal(before[n], after[n]) for n in shared)
    done = "; ".join(sorted(policy)) or "no train-mode step of the training loop"
    outcome = (f"{changed} of {len(shared)} running-statistics buffers changed" if shared
               else "running statistics not comparable (the model was rebuilt)")
    return f"{done} ({outcome})"
