"""A killed ``expunge bench`` leaves no worker behind: each pool worker exits with the process that started it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process states from /proc")


def alive(pid: int) -> bool:
    """The process exists and is not a zombie (an orphan's zombie lingers where PID 1 does not reap)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_gone(pid: int, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if not alive(pid):
            return True
        time.sleep(0.2)
    return False


def python(code: str) -> list[str]:
    return [sys.executable, "-c", textwrap.dedent(code)]


def test_a_process_whose_parent_is_not_the_one_it_watches_exits_and_one_whose_is_runs_on():
    watched_other = subprocess.run(python("""
        import time
        from expunge.harness.executors import exit_with_parent
        exit_with_parent(parent=-1, interval=0.1)   # -1 is nobody's pid: as if the parent had died
        time.sleep(30)
    """), timeout=60, capture_output=True)
    assert watched_other.returncode == 1  # the watchdog's exit, long before the sleep ends

    watched_own = subprocess.run(python("""
        import os, time
        from expunge.harness.executors import exit_with_parent
        exit_with_parent(parent=os.getppid(), interval=0.1)
        time.sleep(1)
        print("finished")
    """), timeout=60, capture_output=True, text=True)
    assert watched_own.returncode == 0 and "finished" in watched_own.stdout


def test_pool_workers_exit_when_the_bench_process_is_killed(tmp_path: Path):
    pids, stderr = tmp_path / "worker_pids", tmp_path / "stderr"
    with stderr.open("w") as err:
        bench = subprocess.Popen(python(f"""
            import multiprocessing, pathlib, time
            from expunge.harness.executors import PoolExecutor
            pool = PoolExecutor(workers=2, threads=1)
            [slot.submit(abs, 0).result() for slot in pool.slots()]  # each worker started and set up
            workers = [p.pid for p in multiprocessing.active_children() if p.name.startswith("SpawnProcess")]
            pathlib.Path({str(pids)!r}).write_text(" ".join(map(str, workers)))
            time.sleep(600)
        """), stderr=err)
    try:
        end = time.monotonic() + 300  # two workers importing torch and every plug-in: 20 s idle, minutes on busy cores
        while not (pids.exists() and pids.read_text().strip()) and time.monotonic() < end:
            time.sleep(0.2)
        assert pids.exists(), f"the bench process (exit {bench.poll()}) started no workers: {stderr.read_text()}"
        workers = [int(p) for p in pids.read_text().split()]
        assert len(workers) == 2 and all(alive(p) for p in workers)
        os.kill(bench.pid, signal.SIGKILL)  # no clean-up at all: the worst case
        bench.wait(timeout=30)
        assert all(wait_gone(p, timeout=15) for p in workers), f"orphaned workers still running: {workers}"
    finally:
        if bench.poll() is None:
            bench.kill()
