"""Wall time and peak memory of a block of work, on CPU.

``tracemalloc`` does not see PyTorch's allocator, so peak memory is the peak resident set size, sampled from
``/proc/self/statm`` every few milliseconds by a daemon thread, reported both absolute and as the increase over the
RSS at the start of the block. On platforms without ``/proc`` it falls back to ``resource.ru_maxrss`` (absolute only).
"""

from __future__ import annotations

import os
import resource
import threading
import time
from dataclasses import dataclass
from types import TracebackType

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def current_rss() -> int | None:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * _PAGE
    except OSError:
        return None


@dataclass
class Measurement:
    wall_s: float = 0.0
    peak_rss_bytes: int = 0
    peak_delta_bytes: int = 0


class Monitor:
    """Context manager measuring wall time and peak RSS: ``with Monitor() as m: ...; m.result``."""

    def __init__(self, interval_s: float = 0.005) -> None:
        self.interval_s = interval_s
        self.result = Measurement()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._start_rss = 0
        self._peak = 0

    def _poll(self) -> None:
        while not self._stop.wait(self.interval_s):
            rss = current_rss()
            if rss is not None and rss > self._peak:
                self._peak = rss

    def __enter__(self) -> Monitor:
        rss = current_rss()
        self._start_rss = self._peak = rss or 0
        if rss is not None:
            self._thread = threading.Thread(target=self._poll, daemon=True)
            self._thread.start()
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        wall = time.perf_counter() - self._t0
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            rss = current_rss() or 0
            peak = max(self._peak, rss)
            self.result = Measurement(wall, peak, max(0, peak - self._start_rss))
        else:  # pragma: no cover - no /proc
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
            self.result = Measurement(wall, peak, 0)
