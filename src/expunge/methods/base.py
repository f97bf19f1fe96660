"""The unlearning-method protocol.

A method is a class with a registry ``name``, a ``paper`` and ``reference`` citation, declared ``access``
(:class:`~expunge.data.access.DataAccess`) and a ``Params`` hyperparameter dataclass with the paper's defaults.
``unlearn(model, data, ctx)`` receives a *private deep copy* of the original to edit (or replace) and returns the
unlearned model; :func:`expunge.protocols.runner.run_method` times the call, checks the caller's model was not
modified and records what data was served. Methods must not print; randomness comes from ``ctx.seed``.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

import torch
from torch import nn

from expunge._hparams import Hyperparams, hp
from expunge._registry import Registry, doc_summary
from expunge.data.access import DataAccess, UnlearningData
from expunge.models import ModelSpec
from expunge.store import ArtifactStore
from expunge.tasks.base import check_supported
from expunge.train.loop import TrainRecipe

P = TypeVar("P", bound=Hyperparams)


@dataclass
class RunContext:
    """Everything a method may need besides data: seed, device, how the original was built and trained."""

    seed: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    model_spec: ModelSpec | None = None
    recipe: TrainRecipe | None = None
    store: ArtifactStore | None = None
    original_manifest: dict[str, Any] | None = None  # the original's store manifest (seeds, recipe, env), if known
    progress: bool = False
    logger: logging.Logger = field(default_factory=lambda: logging.getLogger("expunge.methods"))
    notes: dict[str, Any] = field(default_factory=dict)  # method-specific counters recorded with the run

    def generator(self, salt: int = 0) -> torch.Generator:
        return torch.Generator().manual_seed(self.seed * 1_000_003 + salt)


class UnlearningMethod(ABC, Generic[P]):
    name: ClassVar[str]
    paper: ClassVar[str]
    reference: ClassVar[str] = "-"
    access: ClassVar[DataAccess]
    Params: ClassVar[type[Hyperparams]]
    exact: ClassVar[bool] = False
    # False: the method needs what a deletion request never has (the retrain oracle itself): a benchmark's upper
    # bound, not a candidate (oracle_matching).
    deployable: ClassVar[bool] = True
    tasks: ClassVar[frozenset[str]] = frozenset({"classification"})
    # Buffers ``unlearn`` may attach to the returned model to carry its state to the next request of a sequential
    # stream (the analytic head's R and Q, the amnesiac log's bookkeeping); :meth:`restore` re-attaches them.
    state_buffers: ClassVar[tuple[str, ...]] = ()

    def __init__(self, params: P | None = None) -> None:
        self.params: P = params if params is not None else self.Params()  # type: ignore[assignment]

    @abstractmethod
    def unlearn(self, model: nn.Module, data: UnlearningData, ctx: RunContext) -> nn.Module:
        """Return the unlearned model. ``model`` is a private copy of the original: edit it or build a new one."""

    def restore(self, spec: ModelSpec, tensors: Mapping[str, torch.Tensor]) -> nn.Module:
        """Rebuild a model this method returned from its saved tensors (``expunge evaluate``, tier-2 caches).

        Default: ``spec``'s architecture with any of :attr:`state_buffers` registered on the submodule that held
        them, loaded strictly. A method that returns another structure (SISA's ensemble) overrides this.

        Raises:
            RuntimeError: the tensors do not fit (missing or unexpected keys, wrong shapes).
        """
        model = spec.build(seed=0)
        for key, value in tensors.items():
            path, _, name = key.rpartition(".")
            if name in self.state_buffers:
                try:
                    owner = model.get_submodule(path)
                except AttributeError:
                    raise RuntimeError(f"state buffer {key!r} names no submodule of {spec.name}") from None
                owner.register_buffer(name, value.clone())
        model.load_state_dict(dict(tensors), strict=True)
        return model

    @classmethod
    def check_task(cls, task: str, params: Hyperparams | None = None) -> None:
        """Refuse ``task`` unless this method declares it (:attr:`tasks`), before anything is trained; a method with
        task-specific options also refuses ``params`` that make no sense on ``task`` (override and call super).

        Raises:
            UnsupportedTask: the method does not support ``task``.
            InvalidHyperparameter: an option of ``params`` is not defined on ``task``."""
        check_supported("method", cls.name, cls.tasks, task)

    @classmethod
    def summary(cls) -> str:
        return doc_summary(cls)

    @classmethod
    def describe(cls) -> dict[str, Any]:
        return {"name": cls.name, "summary": cls.summary(), "paper": cls.paper, "reference": cls.reference,
                "access": cls.access.describe(), "exact": cls.exact, "deployable": cls.deployable,
                "tasks": sorted(cls.tasks),
                "params": cls.Params.describe()}


METHODS: Registry[type[UnlearningMethod[Any]]] = Registry("method", package="expunge.methods",
                                                         entry_point_group="expunge.methods")


def register_method(cls: type[UnlearningMethod[Any]]) -> type[UnlearningMethod[Any]]:
    cls.Params.owner = cls.name
    return METHODS.register(cls.name, cls)


def get_method(name: str, params: Hyperparams | dict[str, Any] | None = None) -> UnlearningMethod[Any]:
    cls = METHODS.get(name)
    if isinstance(params, dict):
        params = cls.Params.from_overrides(params)
    return cls(params)


__all__ = ["METHODS", "DataAccess", "Hyperparams", "RunContext", "UnlearningMethod", "get_method", "hp",
           "register_method"]
