"""A grid config expanded into cells: one (dataset, model, request, seed, method) each, with a content key.

A cell's key hashes everything that determines its result — dataset, model, the resolved training recipe, the
request (spec, or scenario with its validated parameters), seed, the method with its *resolved* hyperparameters
(preset values included), the metric selection and the expunge version — with the artifact store's own hash
(:meth:`~expunge.store.ArtifactStore.key`). So a changed hyperparameter changes only that method's cells, a renamed
label changes none, and a finished cell is recognised across runs (``--resume``). The Originals and oracles the cells
share are content-keyed in the artifact store by :func:`expunge.api.prepare`, so they are trained once per grid.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from expunge._version import __version__
from expunge.errors import ExpungeError
from expunge.harness.config import BenchConfig, BenchConfigError
from expunge.store import ArtifactStore

KEY_VERSION = 1  # bump when the meaning of a cell's key parts changes


@dataclass(frozen=True)
class Cell:
    """One unit of work: ``method`` on ``request`` for (dataset, model, seed). Plain data, so it pickles to a
    worker process; ``params`` are the resolved hyperparameters (``params_source`` says where they came from)."""

    key: str
    dataset: str
    model: str
    request: dict[str, Any]          # {"forget": spec} or {"scenario": name, "params": {...}}
    request_label: str
    seed: int
    method: str
    label: str
    params: dict[str, Any]
    params_source: str
    recipe: dict[str, Any]
    tier: int = 0
    metrics: tuple[str, ...] | None = None
    extras: dict[str, Any] = field(default_factory=dict)  # the evaluation's extras: {"tier2": {"shadows": K, ...}}
    key_parts: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def setting(self) -> tuple[str, str, int, str]:
        """Cells sharing this run on the same Original (dataset, model, seed, recipe)."""
        return self.dataset, self.model, self.seed, ArtifactStore.key(self.recipe)

    def describe(self) -> dict[str, Any]:
        """The JSON form stored beside the cell's result."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k != "key_parts"}


def cell_key(parts: dict[str, Any]) -> str:
    return ArtifactStore.key({"kind": "bench-cell", "key_version": KEY_VERSION, **parts})


def expand(config: BenchConfig, *, data_dir: str | None = None) -> list[Cell]:
    """Every cell of ``config``, dataset-major then model, request, seed, method. Everything a cell needs is
    resolved and checked here — datasets load, each request resolves on its dataset, scenario parameters and method
    hyperparameters validate under their presets — so a bad combination is a :class:`BenchConfigError` naming it
    before anything is trained."""
    from expunge import api
    from expunge.scenarios.base import get_scenario
    from expunge.train.oracle import default_recipe

    cells: list[Cell] = []
    for d_name in config.datasets:
        recipe = {**dataclasses.asdict(default_recipe(d_name)), **config.recipe.overrides()}
        for r_i, req in enumerate(config.requests):
            where = f"requests[{r_i}] ({req.label}) on {d_name}"
            with _located(where):
                ds = api.load(d_name, forget=req.forget, data_dir=data_dir)
                if req.forget is not None:
                    api.as_request(req.forget).resolve(ds, seed=config.seeds[0])  # class:30 on digits fails here
                    request: dict[str, Any] = {"forget": req.forget}
                else:
                    sc = get_scenario(req.scenario or "", req.params)
                    sc.check_task(ds.task)
                    request = {"scenario": req.scenario, "params": sc.params.to_dict()}
            for model in config.models:
                for seed in config.seeds:
                    for m_i, m in enumerate(config.methods):
                        if m.requests is not None and req.label not in m.requests:
                            continue  # the method is restricted to other requests
                        with _located(f"methods[{m_i}] ({m.display}) on {d_name}/{model}, {req.label}"):
                            params, source = api.resolve_params(
                                m.name, dataset=d_name, model=model, forget=req.forget, scenario=req.scenario,
                                overrides=m.params, preset=m.preset, paper_defaults=m.paper_defaults, task=ds.task)
                        values = params.to_dict()
                        parts = {"expunge": __version__, "dataset": d_name, "model": model, "recipe": recipe,
                                 "request": request, "seed": seed, "method": m.name, "params": values,
                                 "tier": config.tier, "metrics": config.metrics}
                        if extras := config.tier2.extras():  # absent when unset: earlier grids keep their keys
                            parts["extras"] = extras
                        cells.append(Cell(key=cell_key(parts), dataset=d_name, model=model, request=request,
                                          request_label=req.label, seed=seed, method=m.name, label=m.display,
                                          params=values, params_source=source, recipe=recipe, tier=config.tier,
                                          metrics=None if config.metrics is None else tuple(config.metrics),
                                          extras=extras, key_parts=parts))
    return cells


class _located:
    """Re-raise an :class:`ExpungeError` from resolving part of the grid as a :class:`BenchConfigError` that says
    which part of the config it came from."""

    def __init__(self, where: str) -> None:
        self.where = where

    def __enter__(self) -> None:
        return None

    def __exit__(self, typ: Any, exc: BaseException | None, tb: Any) -> bool:
        if isinstance(exc, ExpungeError) and not isinstance(exc, BenchConfigError):
            raise BenchConfigError(f"config {self.where}: {exc}") from exc
        return False


def settings(cells: list[Cell]) -> Iterator[list[Cell]]:
    """The cells grouped by the Original they share, in first-seen order (one preparation job per group)."""
    groups: dict[tuple[str, str, int, str], list[Cell]] = {}
    for c in cells:
        groups.setdefault(c.setting, []).append(c)
    yield from groups.values()
