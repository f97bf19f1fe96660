"""Where a grid's cells run: an :class:`Executor` is a fixed set of worker *slots*, each one process that runs one
item at a time and keeps its state between items.

The slot is the unit :func:`~expunge.harness.dispatch.dispatch` schedules on: it sends the cells of one request to
the same slot, so that the request's Original, oracle and baseline metrics, loaded by the slot's first cell of it,
are still in that process for the next ones (:data:`expunge.harness.run._PREPARED`). Two local executors:

- :class:`SequentialExecutor`: one slot, this process; ``submit`` runs the item at once.
- :class:`PoolExecutor`: one single-process ``ProcessPoolExecutor`` per slot (``spawn``: no forked torch state), each
  with ``threads`` torch threads, warmed up (:func:`_init_worker`).

:class:`~expunge.harness.ray_executor.RayExecutor` is the third, one Ray actor per slot. A slot whose process died
fails its item's future with :class:`WorkerLost`; any other exception is the item's own.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Protocol, TypeVar

from expunge.train.warmup import warm_up

T = TypeVar("T")
R = TypeVar("R")


class WorkerLost(Exception):
    """The worker process running an item died (killed, out of memory): the item has no result, and the slot is
    unusable."""


class Slot(Protocol):
    """One worker process: runs ``fn(item)`` there and returns its future. One item at a time is submitted."""

    def submit(self, fn: Callable[[T], R], item: T) -> Future[R]: ...


class Executor(Protocol):
    """A set of slots, started by the first :meth:`slots` call and the same until :meth:`close`. ``fn`` must be
    picklable (a module-level function) and should not raise (the cell functions return their errors)."""

    workers: int

    def slots(self) -> Sequence[Slot]: ...

    def close(self) -> None:
        """Release the workers (a later :meth:`slots` starts new ones)."""


class _InProcess:
    def submit(self, fn: Callable[[T], R], item: T) -> Future[R]:
        fut: Future[R] = Future()
        try:
            fut.set_result(fn(item))
        except Exception as exc:
            fut.set_exception(exc)
        return fut


class SequentialExecutor:
    """Runs every item in this process, in order (torch warmed up first: :func:`warm_up`)."""

    workers = 1

    def __init__(self) -> None:
        self._slot: _InProcess | None = None

    def slots(self) -> Sequence[Slot]:
        if self._slot is None:
            warm_up()
            self._slot = _InProcess()
        return [self._slot]

    def close(self) -> None:
        return None


PARENT_POLL_S = 1.0  # how often a worker checks that the process that started it is still alive


def exit_with_parent(parent: int, interval: float = PARENT_POLL_S) -> None:
    """Make this worker process exit (status 1) within ``interval`` seconds of its parent's death.

    A killed ``expunge bench`` (SIGTERM from a scheduler, SIGKILL) runs no clean-up, and its ``spawn`` workers would
    run on as orphans: burning the cores a ``--resume`` needs and writing cells into the same store behind its back.
    A daemon thread polls the parent pid (portable, unlike Linux's ``PR_SET_PDEATHSIG``); an orphan is re-parented,
    so its parent pid changes."""
    import threading
    import time

    def watch() -> None:
        while True:
            time.sleep(interval)
            if os.getppid() != parent:
                os._exit(1)  # no clean-up: the work in hand is lost either way, and --resume reruns the cell

    threading.Thread(target=watch, name="expunge-exit-with-parent", daemon=True).start()


def _init_worker(threads: int, parent: int | None = None) -> None:
    """Set up a worker process once, before its first item: exit when ``parent`` dies if given
    (:func:`exit_with_parent`; a Ray actor's life is Ray's business), ``threads`` torch threads and as many BLAS/OpenMP
    threads (the environment variable alone comes too late: numpy is loaded by then), torch warmed up
    (:func:`warm_up`), the modules a cell uses imported, and then every object alive so far moved out of the
    garbage collector's reach (``gc.freeze``). Each unlearning call collects garbage before it measures memory
    (:func:`expunge.train.monitor.release_free_memory`); over the ~370,000 objects of torch, scikit-learn and expunge
    that full collection took 0.2–0.4 s, a third of a digits cell, and with them frozen it takes microseconds.
    Nothing frozen is garbage: modules and their objects live as long as the process."""
    import gc

    if parent is not None:
        exit_with_parent(parent)
    os.environ["OMP_NUM_THREADS"] = str(threads)
    import torch

    torch.set_num_threads(threads)
    try:
        from threadpoolctl import threadpool_limits  # installed with scikit-learn

        threadpool_limits(threads)
    except ImportError:
        pass
    warm_up()
    import expunge.api  # noqa: F401
    from expunge.methods.base import METHODS
    from expunge.metrics.base import METRICS
    from expunge.scenarios.base import SCENARIOS

    for registry in (METHODS, METRICS, SCENARIOS):
        registry.names()  # imports every registered module
    gc.collect()
    gc.freeze()


def relay(source: Future[Any], convert: Callable[[BaseException], BaseException]) -> Future[Any]:
    """A future with ``source``'s outcome, its exception passed through ``convert`` (an executor's own way of saying
    that its worker died becomes :class:`WorkerLost`)."""
    out: Future[Any] = Future()

    def copy(done: Future[Any]) -> None:
        exc = WorkerLost("cancelled") if done.cancelled() else done.exception()
        if exc is None:
            out.set_result(done.result())
        else:
            out.set_exception(convert(exc))

    source.add_done_callback(copy)
    return out


def _pool_error(exc: BaseException) -> BaseException:
    return WorkerLost(f"BrokenProcessPool: {exc}") if isinstance(exc, BrokenProcessPool) else exc


class _PoolSlot:
    def __init__(self, threads: int) -> None:
        import multiprocessing

        self.pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"), initializer=_init_worker,
                                        initargs=(threads, os.getpid()))

    def submit(self, fn: Callable[[T], R], item: T) -> Future[R]:
        try:
            return relay(self.pool.submit(fn, item), _pool_error)
        except BrokenProcessPool as exc:  # died between two items
            fut: Future[R] = Future()
            fut.set_exception(WorkerLost(f"BrokenProcessPool: {exc}"))
            return fut

    @property
    def broken(self) -> bool:
        return bool(getattr(self.pool, "_broken", False))


class PoolExecutor:
    """``workers`` spawned processes, one per slot, each with ``threads`` torch threads (default: the cores divided
    between the workers), warmed up (:func:`_init_worker`). A slot whose process died is replaced by the next
    :meth:`slots` call."""

    def __init__(self, workers: int, threads: int | None = None) -> None:
        self.workers = workers
        self.threads = threads or max(1, (os.cpu_count() or 1) // workers)
        self._slots: list[_PoolSlot] = []

    def slots(self) -> Sequence[Slot]:
        for i, slot in enumerate(self._slots):
            if slot.broken:
                slot.pool.shutdown(wait=False, cancel_futures=True)
                self._slots[i] = _PoolSlot(self.threads)
        while len(self._slots) < self.workers:
            self._slots.append(_PoolSlot(self.threads))
        return list(self._slots)

    def close(self) -> None:
        for slot in self._slots:
            slot.pool.shutdown(wait=True, cancel_futures=True)
        self._slots = []


def executor_for(workers: int) -> Executor:
    return SequentialExecutor() if workers <= 1 else PoolExecutor(workers)
