"""Model specs and the model registry.

Models are built from a :class:`ModelSpec` by a registered factory with an explicit seed, so the retrain oracle is a
true fresh initialisation (never a live module whose top-level children were reset: the SSD reference's ``retrain`` in
if-loops/selective-synaptic-dampening ``src/forget_full_class_strategies.py`` re-initialises only ``fc`` of its
ResNet, issue #1). Every built-in architecture exposes ``features(x)`` (penultimate activations)
and a final ``nn.Linear`` called ``head``; methods must not rely on that, but probes and the analytic head use it.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from expunge._registry import Registry

ModelFactory = Callable[..., nn.Module]
MODELS: Registry[ModelFactory] = Registry("model", package="expunge.models", entry_point_group="expunge.models")


def register_model(name: str) -> Callable[[ModelFactory], ModelFactory]:
    def deco(fn: ModelFactory) -> ModelFactory:
        return MODELS.register(name, fn)

    return deco


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to build an untrained model: name, input shape, classes and factory kwargs."""

    name: str
    input_shape: tuple[int, ...]
    num_classes: int
    kwargs: Mapping[str, Any] = field(default_factory=dict)

    def build(self, *, seed: int) -> nn.Module:
        """Build a freshly initialised model; the global RNG state is left as it was."""
        factory = MODELS.get(self.name)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return factory(input_shape=self.input_shape, num_classes=self.num_classes, **dict(self.kwargs))

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "input_shape": list(self.input_shape), "num_classes": self.num_classes,
                "kwargs": dict(self.kwargs)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ModelSpec:
        return cls(d["name"], tuple(d["input_shape"]), int(d["num_classes"]), dict(d.get("kwargs", {})))


def build_model(name: str, *, input_shape: tuple[int, ...], num_classes: int, seed: int, **kwargs: Any) -> nn.Module:
    return ModelSpec(name, tuple(input_shape), num_classes, kwargs).build(seed=seed)


def spec_for_factory(factory: Callable[..., nn.Module], *, input_shape: tuple[int, ...], num_outputs: int) \
        -> ModelSpec:
    """A :class:`ModelSpec` for a user's model factory (a class or a function returning a fresh ``nn.Module``).

    The factory is registered under ``user:<module>.<qualname>`` for this process and called with ``input_shape``
    and ``num_classes`` if it accepts them, else with no arguments. The spec's kwargs carry an ``architecture``
    fingerprint (parameter names and shapes, and the factory's source when available), so a cached Original or
    oracle is never reused for a changed architecture. A later process (``expunge evaluate``) must register the
    same factory again (:func:`register_model`) to rebuild the model."""
    qual = getattr(factory, "__qualname__", type(factory).__name__)
    name = f"user:{getattr(factory, '__module__', 'main')}.{qual}"
    try:
        accepted = set(inspect.signature(factory).parameters)
    except (TypeError, ValueError):  # builtins without a signature
        accepted = set()

    def build(*, input_shape: tuple[int, ...], num_classes: int, **_: Any) -> nn.Module:
        given = {"input_shape": tuple(input_shape), "num_classes": num_classes}
        model = factory(**{k: v for k, v in given.items() if k in accepted})
        if not isinstance(model, nn.Module):
            raise TypeError(f"the model factory {name} returned {type(model).__name__}, not an nn.Module")
        return model

    MODELS.register(name, build, override=True)
    probe = build(input_shape=tuple(input_shape), num_classes=num_outputs)
    h = hashlib.sha256(name.encode())
    for key, t in probe.state_dict().items():
        h.update(f"{key}:{tuple(t.shape)}:{t.dtype}|".encode())
    with contextlib.suppress(OSError, TypeError):  # defined in a REPL: shapes only
        h.update(inspect.getsource(factory).encode())
    return ModelSpec(name, tuple(input_shape), num_outputs, {"architecture": h.hexdigest()[:16]})
