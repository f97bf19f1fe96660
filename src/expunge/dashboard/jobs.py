"""View 8, Build: start a new unlearning run from the page as a background job, with progress and cancel.

A build is one small grid — the method the user picked, with the hyperparameters typed into its dataclass's fields,
on the forget request and seeds given — set on the dataset, model, training recipe and metric selection of a
*template* run of the folder, so the new cells share its Original and are measured like it. It is expanded and
validated in the request (:func:`expunge.harness.grid.expand`: method and request names, hyperparameters under their
types and bounds, scenario parameters) and a bad value is refused with the message naming it before any work.

It then runs in a child process (``python -m expunge.dashboard.jobs``) that takes the folder's
:class:`~expunge.harness.results.BenchLock` (a grid running there makes the job fail at once, saying so) and writes
its cells through :meth:`~expunge.harness.results.ResultStore.write_cell` — one transaction per cell, the folder's
``meta`` untouched — so the new rows join the screening table when they are stored. Progress is the share of the
job's cells stored; cancel kills the child's process group (a cell is stored whole or not at all, so a cancelled job
leaves no partial row). These cells are the only writes the dashboard makes to DIR.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from expunge._io import stable_hash
from expunge.errors import ExpungeError

MAX_SEEDS = 5
MAX_JOBS = 2  # running at once: each trains on the machine's cores


class BuildRefused(ExpungeError, ValueError):
    """A build request that cannot run: bad method, hyperparameter, request or seeds, or a read-only folder."""


@dataclass
class Job:
    id: int
    label: str
    keys: list[str]
    config: dict[str, Any]
    proc: subprocess.Popen[bytes] | None = None
    state: str = "running"       # running / done / failed / cancelled
    error: str = ""
    started: float = field(default_factory=time.time)
    finished: float | None = None
    log: Path | None = None


def build_config(cell: dict[str, Any], method: str, params: dict[str, Any], forget: str, seeds: list[int],
                 label: str) -> dict[str, Any]:
    """The grid config of a build on the setting of a template run's ``cell``."""
    doc: dict[str, Any] = {"name": f"dashboard build: {label}", "datasets": [cell["dataset"]],
                           "models": [cell["model"]], "recipe": cell.get("recipe") or {},
                           "requests": [{"forget": forget}],
                           "methods": [{"name": method, "params": params, "label": label}], "seeds": seeds}
    if cell.get("metrics"):
        doc["metrics"] = list(cell["metrics"])
    else:
        doc["tier"] = cell.get("tier", 0)
    return doc


class Jobs:
    """The server's build jobs (kept in memory: a restarted server forgets them; their stored cells stay)."""

    def __init__(self, directory: Path, store_root: Path, data_dir: str | None, *, writable: bool) -> None:
        self.directory, self.store_root, self.data_dir, self.writable = directory, store_root, data_dir, writable
        self._jobs: dict[int, Job] = {}
        self._lock = threading.Lock()

    def start(self, cell: dict[str, Any], method: str, params: Any, forget: Any, seeds: Any,
              label: str | None) -> Job:
        if not self.writable:
            raise BuildRefused("this folder is a committed results folder or a demo's records (rebuilt in a temporary "
                               "place): builds need the --out folder of an `expunge bench` run")
        if not isinstance(params, dict) or not isinstance(forget, str) or not forget.strip():
            raise BuildRefused("a build needs params (an object of NAME: value) and forget (a request such as "
                               "class:3 or random:0.1)")
        if not isinstance(seeds, list) or not 1 <= len(seeds) <= MAX_SEEDS or \
                not all(isinstance(s, int) and not isinstance(s, bool) and 0 <= s < 2**32 for s in seeds):
            raise BuildRefused(f"seeds must be a list of 1 to {MAX_SEEDS} integers in [0, 2**32), got {seeds!r}")
        label = (label or f"{method} [{stable_hash(params)[:6]}]").strip()[:80]  # one label per setting
        doc = build_config(cell, method, params, forget.strip(), seeds, label)
        from expunge.harness.config import parse_config
        from expunge.harness.grid import expand

        cells = expand(parse_config(doc), data_dir=self.data_dir)  # BenchConfigError: refused before any work
        with self._lock:
            if sum(j.state == "running" for j in self._jobs.values()) >= MAX_JOBS:
                raise BuildRefused(f"{MAX_JOBS} builds are running: wait for one to finish or cancel it")
            job = Job(id=len(self._jobs) + 1, label=label, keys=[c.key for c in cells], config=doc)
            self._jobs[job.id] = job
        tmp = Path(tempfile.mkdtemp(prefix="expunge-build-"))
        (tmp / "config.json").write_text(json.dumps(doc))
        job.log = tmp / "log.txt"
        cmd = [sys.executable, "-m", "expunge.dashboard.jobs", str(tmp / "config.json"), str(self.directory),
               str(self.store_root), self.data_dir or ""]
        with job.log.open("wb") as log:
            job.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
        return job

    def cancel(self, job_id: int) -> Job:
        job = self.get(job_id)
        if job.state == "running" and job.proc is not None:
            with contextlib.suppress(ProcessLookupError):  # it may have just ended
                os.killpg(job.proc.pid, signal.SIGKILL)  # the child and any worker it started
            job.proc.wait(10)
            job.state, job.finished = "cancelled", time.time()
        return job

    def get(self, job_id: int) -> Job:
        with self._lock:
            if job_id not in self._jobs:
                raise LookupError(f"no build job {job_id}")
            return self._jobs[job_id]

    def describe(self, stored: set[str]) -> list[dict[str, Any]]:
        """Every job with its state and progress (its cells among ``stored``, the folder's finished cells)."""
        out = []
        for job in list(self._jobs.values()):
            if job.state == "running" and job.proc is not None and job.proc.poll() is not None:
                job.finished = time.time()
                job.state = "done" if job.proc.returncode in (0, 3) else "failed"  # 3: a cell stored not ok
                if job.state == "failed" and job.log is not None:
                    job.error = _last_line(job.log)
            done = sum(k in stored for k in job.keys)
            out.append({"id": job.id, "label": job.label, "state": job.state, "cells": len(job.keys), "stored": done,
                        "progress": 1.0 if job.state == "done" else done / len(job.keys), "error": job.error,
                        "elapsed_s": round((job.finished or time.time()) - job.started, 1)})
        return out

    def close(self) -> None:
        for job in list(self._jobs.values()):
            self.cancel(job.id)


def _last_line(path: Path) -> str:
    lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    errs = [ln for ln in lines if ln.startswith(("error", "Error")) or "Error:" in ln]
    return (errs or lines or ["the build process ended with an error"])[-1][:400]


def _main(config: str, directory: str, store_root: str, data_dir: str) -> int:
    """The child process: run the build's cells into the folder's result store under its lock."""
    import torch

    from expunge.harness.config import parse_config
    from expunge.harness.grid import expand
    from expunge.harness.results import BenchLock, ResultStore
    from expunge.harness.run import SequentialExecutor, run_grid

    torch.set_num_threads(1)
    cells = expand(parse_config(json.loads(Path(config).read_text())), data_dir=data_dir or None)
    try:
        with BenchLock(Path(directory)), ResultStore(directory) as results:
            summary = run_grid(cells, results, SequentialExecutor(), store_root=store_root, data_dir=data_dir or None)
    except ExpungeError as exc:
        print(f"error: {exc}", flush=True)
        return 2
    print(json.dumps(summary.to_json()), flush=True)
    return 0 if summary.failed == 0 else 3


if __name__ == "__main__":
    sys.exit(_main(*sys.argv[1:5]))
