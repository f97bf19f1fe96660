"""Run a grid's cells on an executor's worker slots and store each outcome as it arrives.

The executors (:mod:`expunge.harness.executors`: this process, a local process pool, or Ray) are sets of worker
slots; :func:`run_grid` groups the cells by request (same Original and oracle) and hands the groups to the slots
with request affinity (:func:`expunge.harness.dispatch.dispatch`): a request's cells run in one worker process,
which loads — or, for the first cell, trains — its Original, oracle and baseline metrics once and keeps them for
the request's next cells (:data:`_PREPARED`). Nothing is trained in a separate pass: an Original that several
requests need and the store does not hold yet is a *gate*: the first request's group starts with a job that trains
just that Original (:func:`run_cell` of an ``original_only`` job), and the other requests wait for it rather than
train the same Original beside it; each request's oracle is then trained by its own first cell, in parallel with the
other requests'.

Each cell's outcome is written by this process alone, in one transaction. A cell that raises, or whose record says
it diverged or changed nothing, is stored with that status and error and the grid goes on.
"""

from __future__ import annotations

import os
import time
import traceback
import warnings
from dataclasses import dataclass, field
from typing import Any, Protocol

from expunge.harness.dispatch import Group, dispatch
from expunge.harness.executors import Executor, PoolExecutor, SequentialExecutor, _init_worker, executor_for
from expunge.harness.grid import Cell
from expunge.harness.results import ResultStore, now

__all__ = ["Executor", "Job", "PoolExecutor", "SequentialExecutor", "Summary", "_init_worker", "executor_for",
           "prepare_setting", "run_cell", "run_grid"]


@dataclass(frozen=True)
class Job:
    """What a worker needs: the cells (one for a run, a group for a preparation) and where the artifacts live."""

    cells: tuple[Cell, ...]
    store_root: str
    data_dir: str | None = None
    original_only: bool = False  # train (or find) the cell's Original and nothing else: a gate's head


def prepare_setting(job: Job) -> str | None:
    """Train (or find in the artifact store) the Original and the oracles of a group of cells; None, or the error
    text (the cells then meet the same error and are stored as failed)."""
    try:
        for cell in job.cells:
            _prepare(cell, job)
        return None
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"


# The last few preparations of this process, by content: the next method on the same request reuses the loaded
# Original, oracle and baseline metrics (about a second per cell on digits). Safe because every method unlearns a
# deep copy of the Original. Scenario settings are not kept (sequential scenarios chain their steps' models).
_PREPARED: dict[str, Any] = {}
_PREPARED_KEEP = 2


def _prepare(cell: Cell, job: Job) -> tuple[Any, bool]:
    """The cell's Prepared (a forget request) or scenario Setting, and whether it was made here (False: kept from
    an earlier cell of this process)."""
    from expunge import api
    from expunge.scenarios.base import get_scenario
    from expunge.store import ArtifactStore
    from expunge.train.loop import TrainRecipe

    store, recipe = ArtifactStore(job.store_root), TrainRecipe(**cell.recipe)
    kw: dict[str, Any] = {"seed": cell.seed, "store": store, "recipe": recipe, "metrics": cell.metrics,
                          "tier": cell.tier, "progress": False}
    if "forget" in cell.request:
        from expunge._io import stable_hash

        key = stable_hash([cell.dataset, cell.model, cell.request, cell.seed, cell.recipe, cell.tier, cell.metrics,
                           cell.extras, job.store_root, job.data_dir])
        if key in _PREPARED:
            return _PREPARED[key], False
        _PREPARED[key] = api.prepare(cell.dataset, cell.model, cell.request["forget"], data_dir=job.data_dir,
                                     extras=cell.extras, **kw)
        while len(_PREPARED) > _PREPARED_KEEP:
            _PREPARED.pop(next(iter(_PREPARED)))
        return _PREPARED[key], True
    sc = get_scenario(cell.request["scenario"], cell.request["params"])
    return sc.prepare(cell.dataset, cell.model, data_dir=job.data_dir, **kw), True


def _request_kind(cell: Cell) -> str | None:
    """The request kind whose dataset the cell's Original is trained on (a scenario's ``request_kind``); None when
    it cannot be told from the cell (a scenario of several kinds, a derived dataset)."""
    if "forget" in cell.request:
        from expunge import api

        return api.as_request(cell.request["forget"]).kind
    from expunge.scenarios.base import get_scenario

    return getattr(get_scenario(cell.request["scenario"], cell.request["params"]), "request_kind", None)


def _train_original(cell: Cell, job: Job) -> dict[str, Any]:
    """Train (or find) the Original of a request's cell, the same one :func:`_original_gates` keyed the request's
    gate on: ``trained`` lists it when it was trained, ``error`` says why it could not be (the request's cells then
    meet the same error and are stored with it)."""
    from expunge.data.request import dataset_for
    from expunge.store import ArtifactStore
    from expunge.train.loop import TrainRecipe
    from expunge.train.oracle import model_spec_for, train_original

    t0 = time.perf_counter()
    out: dict[str, Any] = {"trained": [], "error": None}
    try:
        kind = _request_kind(cell)
        if kind is None:
            raise ValueError("the Original of this request cannot be told from its cell")
        ds = dataset_for(cell.dataset, kind, data_dir=job.data_dir)
        trained = train_original(ds, model_spec_for(ds, cell.model), TrainRecipe(**cell.recipe), seed=cell.seed,
                                 store=ArtifactStore(job.store_root), progress=False)
        out["trained"] = [] if trained.cache_hit else [f"original/{trained.key}"]
    except Exception as exc:
        out["error"] = f"{type(exc).__name__}: {exc}"
    out["wall_s"] = time.perf_counter() - t0
    return out


def _trained(prepared: Any) -> list[str]:
    """``kind/key`` of each Original and oracle this preparation trained (a cache miss), not found in the store."""
    steps = getattr(prepared, "steps", None) or [prepared]
    out = [f"{role}/{m.key}" for p in steps for role in ("original", "oracle")
           if not (m := getattr(p, role)).cache_hit]
    return list(dict.fromkeys(out))


def run_cell(job: Job) -> dict[str, Any]:
    """Run one cell; its outcome as plain data (records as JSON). Never raises: an exception is the outcome's
    ``failed`` status with its text and traceback; a record that diverged or changed nothing gives that status.
    Besides what :meth:`ResultStore.write_cell` stores: ``prepare_s`` (loading or training the request's Original,
    oracle and baseline metrics; about 0 when this process kept them from an earlier cell), ``prepared`` (False:
    kept) and ``trained`` (the artifacts that preparation trained)."""
    from expunge import api
    from expunge.errors import ExpungeWarning
    from expunge.harness.distributions import cell_distributions
    from expunge.methods.base import METHODS

    (cell,) = job.cells
    if job.original_only:
        return _train_original(cell, job)
    started, t0 = now(), time.perf_counter()
    out: dict[str, Any] = {"started_at": started, "pid": os.getpid(), "records": [], "error": None,
                           "traceback": None, "prepare_s": 0.0, "prepared": False, "trained": []}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExpungeWarning)  # the record holds the same facts
            prepared, fresh = _prepare(cell, job)
            out["prepare_s"] = time.perf_counter() - t0
            out["prepared"], out["trained"] = fresh, _trained(prepared) if fresh else []
            params = METHODS.get(cell.method).Params.from_overrides(cell.params)
            kw: dict[str, Any] = {"metrics": cell.metrics, "tier": cell.tier, "label": cell.label,
                                  "params_source": cell.params_source}
            model = None  # a scenario's step models are loaded from the store by cell_distributions
            if "forget" in cell.request:
                record, model = api.unlearn(prepared, cell.method, params, **kw)
                records = [record]
            else:
                records = prepared.scenario.run(prepared, cell.method, params, **kw)
        out["records"] = [r.to_json() for r in records]
        out.update(cell_distributions(prepared, records, model))  # for the report; never raises
        bad = [r for r in records if r.failed]
        out["status"] = bad[0].status if bad else "ok"
        out["error"] = bad[0].status_reason if bad else None
    except Exception as exc:
        out.update(status="failed", error=f"{type(exc).__name__}: {' '.join(str(exc).split())}",
                   traceback=traceback.format_exc())
    out["finished_at"], out["wall_s"] = now(), time.perf_counter() - t0
    return out


@dataclass
class Summary:
    """What one ``run_grid`` call did."""

    total: int
    skipped: int = 0
    ok: int = 0
    failed: int = 0
    lost: int = 0                   # cells whose worker process died: not stored, run again by --resume
    lost_error: str = ""
    wall_s: float = 0.0
    statuses: dict[str, int] = field(default_factory=dict)
    trained: list[str] = field(default_factory=list)  # "original/KEY", "oracle/KEY": each cache miss of the cells

    def to_json(self) -> dict[str, Any]:
        return {"cells": self.total, "skipped": self.skipped, "ran": self.ok + self.failed, "ok": self.ok,
                "failed": self.failed, "lost": self.lost, "statuses": self.statuses, "trained": len(self.trained),
                "wall_s": round(self.wall_s, 3)}


class Progress(Protocol):
    def start(self, total: int, done: int) -> None: ...
    def advance(self, status: str) -> None: ...
    def stop(self) -> None: ...


class NoProgress:
    def start(self, total: int, done: int) -> None: ...
    def advance(self, status: str) -> None: ...
    def stop(self) -> None: ...


def run_grid(cells: list[Cell], results: ResultStore, executor: Executor, *, store_root: str,
             data_dir: str | None = None, progress: Progress | None = None, retry_failed: bool = False) -> Summary:
    """Run every cell whose key ``results`` does not hold yet (with ``retry_failed``, also those stored as
    ``failed`` by an exception), a request's cells in one worker process; store each outcome as it completes.
    Closes ``executor``."""
    t0 = time.perf_counter()
    progress = progress or NoProgress()
    if retry_failed:
        results.drop_failed({c.key for c in cells})
    finished = results.finished()
    todo = [c for c in cells if c.key not in finished]
    summary = Summary(total=len(cells), skipped=len(cells) - len(todo))
    progress.start(len(cells), summary.skipped)
    try:
        groups = request_groups(todo, store_root, data_dir, gated=executor.workers > 1)
        for job, outcome in dispatch(executor.slots(), groups, run_cell):
            if job.original_only:  # a gate's head: no cell of its own (a lost one's cells come back lost)
                summary.trained += [] if isinstance(outcome, BaseException) else outcome["trained"]
                continue
            if isinstance(outcome, BaseException):  # its worker died (killed, out of memory): not stored, and no
                summary.lost += 1                   # cell is started after that; --resume reruns them
                summary.lost_error = summary.lost_error or f"{type(outcome).__name__}: {outcome}"
                progress.advance("lost")
                continue
            results.write_cell(job.cells[0].describe(), outcome)
            summary.trained += outcome.get("trained") or []
            status = outcome["status"]
            summary.statuses[status] = summary.statuses.get(status, 0) + 1
            if status == "ok":
                summary.ok += 1
            else:
                summary.failed += 1
            progress.advance(status)
    finally:
        executor.close()
        progress.stop()
    summary.wall_s = time.perf_counter() - t0
    return summary


def request_groups(cells: list[Cell], store_root: str, data_dir: str | None, *, gated: bool = True) \
        -> list[Group[Job]]:
    """The cells by request — same setting (dataset, model, seed, recipe) and request: one Original and oracle — in
    first-seen order, each group gated on the Original it would train (:func:`_original_gates`) when ``gated``."""
    from expunge._io import stable_hash

    by_request: dict[str, list[Cell]] = {}
    for c in cells:
        by_request.setdefault(stable_hash([c.setting, c.request]), []).append(c)
    firsts = [cs[0] for cs in by_request.values()]
    gates = _original_gates(firsts, store_root, data_dir) if gated else [None] * len(firsts)
    heads: dict[str, Job] = {}  # the first group of each Original's gate trains it in a job of its own
    for first, gate in zip(firsts, gates, strict=True):
        if gate is not None and gate.startswith("original/") and gate not in heads:
            heads[gate] = Job((first,), store_root, data_dir, original_only=True)
    return [Group([Job((c,), store_root, data_dir) for c in cs], gate, heads.pop(gate, None) if gate else None)
            for cs, gate in zip(by_request.values(), gates, strict=True)]


def _original_gates(firsts: list[Cell], store_root: str, data_dir: str | None) -> list[str | None]:
    """Per request (its first cell): None when its Original is in the artifact store already (a manifest's
    presence: nothing is loaded), else the key of the Original its first cell will train. A request whose Original
    cannot be told here (a scenario of several requests, a poisoned dataset) is gated on its setting, and so is
    every other request of that setting, so that no two of them train the setting's Originals at once."""
    from expunge.data.request import dataset_for
    from expunge.store import ArtifactStore
    from expunge.train.loop import TrainRecipe
    from expunge.train.oracle import model_spec_for, original_key

    store = ArtifactStore(store_root)
    keys: list[str | None] = []
    for cell in firsts:
        try:
            kind = _request_kind(cell)
            if kind is None:
                keys.append(None)
                continue
            ds = dataset_for(cell.dataset, kind, data_dir=data_dir)  # loaded (and cached) by expand() already
            keys.append(original_key(ds, model_spec_for(ds, cell.model), TrainRecipe(**cell.recipe), seed=cell.seed))
        except Exception:  # left for the cell to meet and record
            keys.append(None)
    unknown = {c.setting for c, k in zip(firsts, keys, strict=True) if k is None}
    return [f"setting/{c.setting}" if c.setting in unknown else
            None if store.exists("original", k) else f"original/{k}"  # type: ignore[arg-type]
            for c, k in zip(firsts, keys, strict=True)]
