"""Run a grid's cells as Ray tasks: a local cluster on this machine, or an existing cluster (``--ray-address``).

:class:`RayExecutor` implements :class:`~expunge.harness.run.Executor`, so :func:`~expunge.harness.run.run_grid`
stores each cell as it completes, exactly as with the local process pool. Ray does the scheduling: every item is
submitted as one task that declares ``num_cpus = threads`` and sets torch to that many threads (the same worker set-up
as the pool: :func:`~expunge.harness.run._init_worker`, warm-up included), and :func:`ray.wait` hands back results in
completion order. A task that raises (a lost worker included, after one retry) is yielded as that item's exception,
as the pool does.

Ray is an optional extra and is imported only when this executor is built: without it, :class:`RayUnavailable`
names the fix. A local cluster listens on 127.0.0.1 only (no dashboard, quiet logging) and is shut down by
:meth:`RayExecutor.close`; a cluster it connected to is only disconnected from, and a Ray session already running
in this process is left as it was.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from expunge.errors import ExpungeError
from expunge.harness.run import _init_worker

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


def _task(fn: Callable[[T], R], item: T, threads: int) -> R:
    _init_worker(threads)  # torch threads and warm-up; cheap after the first task of a worker process
    return fn(item)


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
    """Cells as Ray tasks of ``threads`` CPUs each (default: this machine's cores divided between ``workers``).

    Without ``address`` a local cluster of ``workers * threads`` CPUs is started on 127.0.0.1 on first use (so
    ``workers`` tasks run at once); with ``address`` (``HOST:PORT`` or ``auto``) the executor connects to that
    cluster, whose nodes need expunge installed and the artifact store on a shared path, and Ray fits as many tasks
    as the cluster's CPUs allow. Raises :class:`RayUnavailable` when Ray is not installed."""

    def __init__(self, workers: int, address: str | None = None, threads: int | None = None) -> None:
        self._ray = _import_ray()
        self.workers = workers
        self.address = address
        self.threads = threads or (1 if address else max(1, (os.cpu_count() or 1) // workers))
        self._owns = False
        self._remote: Any = None

    def start(self) -> None:
        """Start the local cluster or connect to ``address`` (once; a running Ray session is reused)."""
        ray = self._ray
        if self._remote is not None:
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
        # One retry: a worker lost to a transient cause (killed, out of memory) gets its task run again.
        self._remote = ray.remote(_task).options(num_cpus=self.threads, max_retries=1)

    def map_unordered(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[tuple[T, R | BaseException]]:
        self.start()
        ray = self._ray
        pending: dict[Any, T] = {self._remote.remote(fn, item, self.threads): item for item in items}
        try:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                for ref in done:
                    item = pending.pop(ref)
                    try:
                        result: R | BaseException = ray.get(ref)
                    except Exception as exc:  # RayTaskError(<the task's exception class>), WorkerCrashedError ...
                        result = exc
                    yield item, result
        finally:
            for ref in pending:
                ray.cancel(ref)

    def close(self) -> None:
        """Shut down the local cluster this executor started, or disconnect from the cluster it connected to (which
        keeps running); a Ray session this process had already started is left as it was."""
        if self._owns:
            self._ray.shutdown()
            self._owns = False
        self._remote = None
