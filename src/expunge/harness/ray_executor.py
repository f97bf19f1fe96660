"""Run a grid's cells on Ray actors: a local cluster on this machine, or an existing cluster (``--ray-address``).

:class:`RayExecutor` implements :class:`~expunge.harness.executors.Executor` with one Ray actor per worker slot, so
:func:`~expunge.harness.run.run_grid` schedules the cells with request affinity and stores each as it completes,
exactly as with the local process pool. An actor (not a task) because an actor keeps its process: the request a
worker prepared for one cell is still loaded for the next (:data:`expunge.harness.run._PREPARED`), where Ray tasks
land on whichever worker process is free. Each actor declares ``num_cpus = threads`` and sets torch to that many
threads (the same worker set-up as the pool: :func:`~expunge.harness.executors._init_worker`, warm-up included);
``ObjectRef.future()`` hands each result back as a ``concurrent.futures.Future``. An item that raises gives its own
exception (the task's exception class); an actor that dies is restarted once and its item run again, and a second
death is :class:`~expunge.harness.executors.WorkerLost`.

Ray is an optional extra and is imported only when this executor is built: without it, :class:`RayUnavailable`
names the fix. A local cluster listens on 127.0.0.1 only (no dashboard, quiet logging) and is shut down by
:meth:`RayExecutor.close`; a cluster it connected to is only disconnected from, and a Ray session already running
in this process is left as it was.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any, TypeVar

from expunge.errors import ExpungeError
from expunge.harness.executors import Slot, WorkerLost, _init_worker, relay

T = TypeVar("T")
R = TypeVar("R")

INSTALL_FIX = "pip install 'expunge[ray]'"


class RayUnavailable(ExpungeError):
    """Ray is not installed, or the cluster at ``--ray-address`` cannot be reached. Nothing is written."""


def _import_ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise RayUnavailable(f"--executor ray needs Ray, which is not installed ({exc}). Fix: {INSTALL_FIX}, or "
                             "use --executor local") from None
    return ray


class _Worker:
    """A Ray actor: one worker process for the whole grid, set up once (torch threads, warm-up)."""

    def __init__(self, threads: int) -> None:
        _init_worker(threads)

    def pid(self) -> int:
        return os.getpid()

    def run(self, fn: Callable[[T], R], item: T) -> R:
        return fn(item)


class _ActorSlot:
    def __init__(self, ray: Any, actor: Any) -> None:
        self.actor = actor
        names = ("RayActorError", "WorkerCrashedError", "ActorUnavailableError")
        lost = tuple(getattr(ray.exceptions, n) for n in names if hasattr(ray.exceptions, n))
        task_error = ray.exceptions.RayTaskError

        def convert(exc: BaseException) -> BaseException:
            if isinstance(exc, lost):
                return WorkerLost(f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}")
            if isinstance(exc, task_error) and not isinstance(exc, lost):
                return exc.as_instanceof_cause()  # the item's own exception class, as with the pool
            return exc

        self._convert = convert

    def submit(self, fn: Callable[[T], R], item: T) -> Future[R]:
        return relay(self.actor.run.remote(fn, item).future(), self._convert)


def _check_reachable(address: str) -> None:
    """Ray waits minutes, retrying, for a cluster that is not there: a ``HOST:PORT`` that refuses a TCP connection
    within 5 s is an error at once."""
    if "://" in address or ":" not in address:  # "auto", ray:// client addresses: left to Ray
        return
    host, port = address.rsplit(":", 1)
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=5).close()
    except (OSError, ValueError) as exc:
        raise RayUnavailable(f"no Ray cluster answers at --ray-address {address!r} ({exc}). Fix: start one (`ray "
                             "start --head`) and pass the address it prints, or leave --ray-address out for a local "
                             "cluster") from None


def _is_loopback(address: str) -> bool:
    host = address.split("://")[-1].rsplit(":", 1)[0].strip("[]")
    return host == "localhost" or host == "::1" or host.startswith("127.")


def _init_on_loopback(ray: Any, **kwargs: Any) -> None:
    """``ray.init`` on 127.0.0.1: a new local cluster, or one at a loopback ``address``. Ray maps a loopback address
    to this machine's network address (where such a cluster does not listen) unless it believes it runs without
    clusters (its macOS/Windows default): that switch is set for the start only (the node's address is fixed from
    then on), so that nothing listens, or is dialled, beyond the loopback."""
    from ray._private import ray_constants

    # Ray's default for a new local cluster is token authentication, announced by a warning on every start.
    notice = logging.getLogger("ray._private.authentication.authentication_token_setup")
    before, level = ray_constants.ENABLE_RAY_CLUSTER, notice.level
    ray_constants.ENABLE_RAY_CLUSTER = False
    notice.setLevel(logging.ERROR)
    try:
        ray.init(**({} if "address" in kwargs else {"_node_ip_address": "127.0.0.1"}), **kwargs)
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = before
        notice.setLevel(level)


class RayExecutor:
    """Cells on ``workers`` Ray actors of ``threads`` CPUs each (default: this machine's cores divided between
    ``workers``).

    Without ``address`` a local cluster of ``workers * threads`` CPUs is started on 127.0.0.1 on first use; with
    ``address`` (``HOST:PORT`` or ``auto``) the executor connects to that cluster, whose nodes need expunge installed
    and the artifact store on a shared path. The actors are started by the first :meth:`slots` call; those the
    cluster has no room for within ``start_timeout_s`` are given up (a warning says how many run). Raises
    :class:`RayUnavailable` when Ray is not installed, or when no actor starts."""

    def __init__(self, workers: int, address: str | None = None, threads: int | None = None,
                 start_timeout_s: float = 120.0) -> None:
        self._ray = _import_ray()
        self.workers = workers
        self.address = address
        self.threads = threads or (1 if address else max(1, (os.cpu_count() or 1) // workers))
        self.start_timeout_s = start_timeout_s
        self._owns = False
        self._started = False
        self._slots: list[_ActorSlot] = []

    def start(self) -> None:
        """Start the local cluster or connect to ``address`` (once; a running Ray session is reused)."""
        ray = self._ray
        if self._started:
            return
        if not ray.is_initialized():
            quiet: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": False}
            if self.address:
                _check_reachable(self.address)
                try:
                    if _is_loopback(self.address):
                        _init_on_loopback(ray, address=self.address, **quiet)
                    else:
                        ray.init(address=self.address, **quiet)
                except (ConnectionError, RuntimeError, ValueError) as exc:
                    raise RayUnavailable(f"cannot connect to the Ray cluster at --ray-address {self.address!r}: "
                                         f"{' '.join(str(exc).split())}. Fix: start it (`ray start --head`) and pass "
                                         "its address, or leave --ray-address out for a local cluster") from None
            else:
                _init_on_loopback(ray, num_cpus=self.workers * self.threads, include_dashboard=False, **quiet)
            self._owns = True
        self._started = True

    def slots(self) -> Sequence[Slot]:
        """One actor per worker, started (and warmed up) on the first call."""
        self.start()
        if not self._slots:
            ray = self._ray
            # One restart: an actor lost to a transient cause (killed, out of memory) comes back and runs its item
            # again (a cell is stored only by this process, so a rerun stores it once).
            cls = ray.remote(_Worker).options(num_cpus=self.threads, max_restarts=1, max_task_retries=1)
            actors = [cls.remote(self.threads) for _ in range(self.workers)]
            pids = {actor.pid.remote(): actor for actor in actors}
            ready, _ = ray.wait(list(pids), num_returns=len(pids), timeout=self.start_timeout_s)
            up = [pids[ref] for ref in ready]
            for actor in actors:
                if actor not in up:
                    ray.kill(actor, no_restart=True)
            if not up:
                raise RayUnavailable(f"no Ray worker of {self.threads} CPU(s) started within "
                                     f"{self.start_timeout_s:.0f} s. Fix: give the cluster free CPUs, or pass "
                                     "fewer --workers")
            if len(up) < self.workers:
                logging.getLogger(__name__).warning("the Ray cluster has room for %d of %d workers; running on %d",
                                                    len(up), self.workers, len(up))
                self.workers = len(up)
            self._slots = [_ActorSlot(ray, actor) for actor in up]
        return list(self._slots)

    def close(self) -> None:
        """Stop the actors; shut down the local cluster this executor started, or disconnect from the cluster it
        connected to (which keeps running); a Ray session this process had already started is left as it was."""
        for slot in self._slots:
            with contextlib.suppress(Exception):  # already gone with its cluster
                self._ray.kill(slot.actor, no_restart=True)
        self._slots = []
        if self._owns:
            self._ray.shutdown()
            self._owns = False
        self._started = False
