"""Run a grid's cells with an executor and store each outcome as it arrives.

An :class:`Executor` maps a picklable function over items and yields ``(item, result)`` as results complete; two
local implementations: :class:`SequentialExecutor` (in this process) and :class:`PoolExecutor`
(``concurrent.futures.ProcessPoolExecutor``, spawned workers, torch threads split between them). A Ray executor is
another implementation of the same protocol.

:func:`run_grid` first prepares each group of cells sharing an Original (Original and oracles, trained once into the
artifact store and found there by every cell), then runs the cells. Each cell's outcome is written by this process
alone, in one transaction. A cell that raises, or whose record says it diverged or changed nothing, is stored with
that status and error and the grid goes on.
"""

from __future__ import annotations

import os
import time
import traceback
import warnings
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from expunge.harness.grid import Cell, settings
from expunge.harness.results import ResultStore, now
from expunge.train.warmup import warm_up

T = TypeVar("T")
R = TypeVar("R")


class Executor(Protocol):
    """Maps ``fn`` over ``items``; yields ``(item, fn(item))`` in completion order. ``fn`` must not raise (the cell
    functions below return their errors); an executor that loses a worker yields the exception as the result."""

    workers: int

    def map_unordered(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[tuple[T, R | BaseException]]: ...

    def close(self) -> None:
        """Release the workers (the executor may not be used afterwards)."""


class SequentialExecutor:
    """Runs every item in this process, in order (torch warmed up first: :func:`warm_up`)."""

    workers = 1

    def __init__(self) -> None:
        self._warm = False

    def close(self) -> None:
        return None

    def map_unordered(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[tuple[T, R | BaseException]]:
        if not self._warm:
            warm_up()
            self._warm = True
        for item in items:
            yield item, fn(item)


def _init_worker(threads: int) -> None:
    os.environ["OMP_NUM_THREADS"] = str(threads)
    import torch

    torch.set_num_threads(threads)
    warm_up()


class PoolExecutor:
    """A ``ProcessPoolExecutor`` of ``workers`` spawned processes (``spawn``: no forked torch state), each with
    ``threads`` torch threads (default: the cores divided between the workers), warmed up (:func:`warm_up`). One pool
    serves every :meth:`map_unordered` call until :meth:`close`; a pool broken by a dead worker is replaced."""

    def __init__(self, workers: int, threads: int | None = None) -> None:
        self.workers = workers
        self.threads = threads or max(1, (os.cpu_count() or 1) // workers)
        self._pool: ProcessPoolExecutor | None = None

    def _get_pool(self) -> ProcessPoolExecutor:
        import multiprocessing

        if self._pool is None or getattr(self._pool, "_broken", False):
            self.close()
            self._pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                             initializer=_init_worker, initargs=(self.threads,))
        return self._pool

    def map_unordered(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[tuple[T, R | BaseException]]:
        pool = self._get_pool()
        pending: dict[Future[R], T] = {pool.submit(fn, item): item for item in items}
        try:
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    item = pending.pop(fut)
                    exc = fut.exception()
                    yield item, (exc if exc is not None else fut.result())
        finally:
            for fut in pending:
                fut.cancel()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


def executor_for(workers: int) -> Executor:
    return SequentialExecutor() if workers <= 1 else PoolExecutor(workers)


@dataclass(frozen=True)
class Job:
    """What a worker needs: the cells (one for a run, a group for a preparation) and where the artifacts live."""

    cells: tuple[Cell, ...]
    store_root: str
    data_dir: str | None = None


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


def _prepare(cell: Cell, job: Job) -> Any:
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
        if key not in _PREPARED:
            _PREPARED[key] = api.prepare(cell.dataset, cell.model, cell.request["forget"], data_dir=job.data_dir,
                                         extras=cell.extras, **kw)
            while len(_PREPARED) > _PREPARED_KEEP:
                _PREPARED.pop(next(iter(_PREPARED)))
        return _PREPARED[key]
    sc = get_scenario(cell.request["scenario"], cell.request["params"])
    return sc.prepare(cell.dataset, cell.model, data_dir=job.data_dir, **kw)


def run_cell(job: Job) -> dict[str, Any]:
    """Run one cell; its outcome as plain data (records as JSON). Never raises: an exception is the outcome's
    ``failed`` status with its text and traceback; a record that diverged or changed nothing gives that status."""
    from expunge import api
    from expunge.errors import ExpungeWarning
    from expunge.methods.base import METHODS

    (cell,) = job.cells
    started, t0 = now(), time.perf_counter()
    out: dict[str, Any] = {"started_at": started, "pid": os.getpid(), "records": [], "error": None,
                           "traceback": None}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExpungeWarning)  # the record holds the same facts
            prepared = _prepare(cell, job)
            params = METHODS.get(cell.method).Params.from_overrides(cell.params)
            kw: dict[str, Any] = {"metrics": cell.metrics, "tier": cell.tier, "label": cell.label,
                                  "params_source": cell.params_source}
            if "forget" in cell.request:
                records = [api.unlearn(prepared, cell.method, params, **kw)[0]]
            else:
                records = prepared.scenario.run(prepared, cell.method, params, **kw)
        out["records"] = [r.to_json() for r in records]
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

    def to_json(self) -> dict[str, Any]:
        return {"cells": self.total, "skipped": self.skipped, "ran": self.ok + self.failed, "ok": self.ok,
                "failed": self.failed, "lost": self.lost, "statuses": self.statuses, "wall_s": round(self.wall_s, 3)}


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
    ``failed`` by an exception); store each outcome as it completes."""
    t0 = time.perf_counter()
    progress = progress or NoProgress()
    if retry_failed:
        results.drop_failed({c.key for c in cells})
    finished = results.finished()
    todo = [c for c in cells if c.key not in finished]
    summary = Summary(total=len(cells), skipped=len(cells) - len(todo))
    progress.start(len(cells), summary.skipped)
    try:
        if executor.workers > 1:  # else each cell finds what the cells before it trained
            _prepare_shared(todo, executor, store_root, data_dir)
        for job, outcome in executor.map_unordered(run_cell, [Job((c,), store_root, data_dir) for c in todo]):
            if isinstance(outcome, BaseException):  # a worker died (killed, out of memory): a broken pool fails
                summary.lost += 1                   # every pending cell too, so none is stored; --resume reruns them
                summary.lost_error = summary.lost_error or f"{type(outcome).__name__}: {outcome}"
                progress.advance("lost")
                continue
            results.write_cell(job.cells[0].describe(), outcome)
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


def _prepare_shared(cells: list[Cell], executor: Executor, store_root: str, data_dir: str | None) -> None:
    """Train what parallel cells share once: first each Original (with one request's oracle), then the other
    requests' oracles side by side. Errors are left for the cells to meet and record."""
    firsts, rest = [], []
    for group in settings(cells):
        requests = list({_freeze(c.request): c for c in group}.values())
        firsts.append(Job((requests[0],), store_root, data_dir))
        rest += [Job((c,), store_root, data_dir) for c in requests[1:]]
    for jobs in (firsts, rest):
        for _ in executor.map_unordered(prepare_setting, jobs):
            pass


def _freeze(request: dict[str, Any]) -> str:
    from expunge._io import stable_hash

    return stable_hash(request)
