"""Wall time and peak memory of a block of work, on CPU.

``tracemalloc`` does not see PyTorch's allocator, so peak memory is the peak resident set size (RSS), reported both
absolute and as the increase over the RSS at the start of the block.

How the peak is measured, best first:

1. **Kernel high-water mark** (Linux ≥ 4.0): writing ``5`` to ``/proc/self/clear_refs`` resets the process's peak
   RSS, and ``VmHWM`` in ``/proc/self/status`` is then the exact peak since the reset — no sampling, no thread, no
   per-step cost. Monitors nest (``run_method`` around a method that calls the trainer): before a block resets the
   mark, the peak so far is handed to every enclosing open monitor, and when it ends its peak is handed to them too,
   so an outer block's peak covers its inner blocks.
2. **Sampling** (no writable ``clear_refs``): a daemon thread reads ``/proc/self/statm`` every ``interval_s``
   (short spikes between samples are missed).
3. No ``/proc``: ``resource.ru_maxrss`` (the process's lifetime peak; absolute only, delta 0).

Freed memory the allocator keeps would hide a block's new allocations from an RSS delta: glibc's malloc keeps freed
chunks under its (dynamic, up to 32 MB) mmap threshold in its arenas, so a method that allocates 400 MB of 2 MB
tensors after earlier work freed as much showed a delta of 2 MB. So a block starts by handing free memory back to the
OS (``gc.collect()`` then glibc's ``malloc_trim(0)``, which also releases free pages inside the arenas); elsewhere
(musl, macOS) this is skipped and the delta is a lower bound. Only the outermost open block does this: the full
collection costs ~70 ms with the package imported, and a nested block (the trainer inside ``run_method``) would add
it to the enclosing block's wall time — once per model when K shadow models are trained one by one.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import os
import resource
import threading
import time
from dataclasses import dataclass
from types import TracebackType

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_LOCK = threading.Lock()
_OPEN: list[Monitor] = []  # monitors in high-water-mark mode that are inside their block
_DEPTH = 0  # monitors of any mode inside their block (release only at depth 0)


def _load_malloc_trim() -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim  # type: ignore[no-any-return]
    except (OSError, AttributeError):  # not glibc
        return None


_MALLOC_TRIM = _load_malloc_trim()


def release_free_memory() -> bool:
    """Collect garbage and return the allocator's free memory to the OS; False where only the collection ran."""
    gc.collect()
    if _MALLOC_TRIM is None:
        return False
    _MALLOC_TRIM(0)
    return True


def current_rss() -> int | None:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * _PAGE
    except OSError:
        return None


def peak_rss_since_reset() -> int | None:
    """``VmHWM`` of this process in bytes (None without ``/proc``)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark to the current RSS; False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


@dataclass
class Measurement:
    wall_s: float = 0.0
    peak_rss_bytes: int = 0
    peak_delta_bytes: int = 0


class Monitor:
    """Context manager measuring wall time and peak RSS: ``with Monitor() as m: ...; m.result``.
    ``mode`` (after entering): ``"hwm"``, ``"sampled"`` or ``"lifetime"`` (see the module docstring); ``probe``
    adds ", release-first" when the block began by handing free memory back to the OS (its delta is then exact, not
    a lower bound)."""

    def __init__(self, interval_s: float = 0.005, *, use_hwm: bool = True, release_first: bool = True) -> None:
        self.interval_s = interval_s
        self.use_hwm = use_hwm
        self.release_first = release_first
        self.result = Measurement()
        self.mode = ""
        self.released = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._start_rss = 0
        self._peak = 0

    @property
    def probe(self) -> str:
        """How the peak was measured, as run records name it (``"hwm, release-first"``: the exact kind)."""
        return f"{self.mode}, release-first" if self.released else self.mode

    def _poll(self) -> None:
        while not self._stop.wait(self.interval_s):
            rss = current_rss()
            if rss is not None and rss > self._peak:
                self._peak = rss

    @staticmethod
    def _hand_peak_to_open() -> None:
        """Give the peak since the last reset to every open monitor (caller holds the lock)."""
        peak = peak_rss_since_reset()
        if peak is not None:
            for m in _OPEN:
                m._peak = max(m._peak, peak)

    def __enter__(self) -> Monitor:
        global _DEPTH
        with _LOCK:
            outermost = _DEPTH == 0
            _DEPTH += 1
        if self.release_first and outermost:
            self.released = release_free_memory()
        rss = current_rss()
        self._start_rss = self._peak = rss or 0
        if rss is not None and self.use_hwm:
            with _LOCK:
                self._hand_peak_to_open()
                if reset_peak_rss() and peak_rss_since_reset() is not None:
                    _OPEN.append(self)
                    self.mode = "hwm"
        if not self.mode and rss is not None:
            self.mode = "sampled"
            self._thread = threading.Thread(target=self._poll, daemon=True)
            self._thread.start()
        self.mode = self.mode or "lifetime"
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        global _DEPTH
        wall = time.perf_counter() - self._t0
        with _LOCK:
            _DEPTH -= 1
        if self.mode == "hwm":
            with _LOCK:
                self._hand_peak_to_open()  # includes self: its own peak, and the enclosing monitors'
                _OPEN.remove(self)
        elif self.mode == "sampled":
            self._stop.set()
            assert self._thread is not None
            self._thread.join()
        if self.mode == "lifetime":  # pragma: no cover - no /proc
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
            self.result = Measurement(wall, peak, 0)
            return
        peak = max(self._peak, current_rss() or 0)
        self.result = Measurement(wall, peak, max(0, peak - self._start_rss))
