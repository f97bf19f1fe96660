"""Ray scaling: the same grid with Ray at 1 worker and at 2 workers, side by side, and whether their records agree.

Each run times exactly what `expunge bench --executor ray --workers N` does once its cluster is up: `run_grid`, which
starts the N worker actors (each imports torch and warms up), schedules the cells with request affinity and stores
each as it finishes; the clock stops when the last cell is stored (the cluster's shutdown is not timed). Cluster
start-up is `setup`, not timed.

Two pairs of runs: on an empty artifact store each (the grid trains its Originals and oracles, as a first
`expunge bench` does), and on one store filled first in this process (not timed: the cells only, as a rerun of the
grid or another grid on the same settings). Then (first grid size only) the second pair's grid at 1 worker with all
cores, and in this process (`--executor local --workers 1`). Every process uses one torch thread unless said. The
whole set runs at each grid size of `--seeds` (the workers' start-up is a fixed cost, so the ratio grows with the
grid).

    python benchmarks/ray_scaling.py                          # configs/digits.yaml, seeds 0-3 and 0-7
    python benchmarks/ray_scaling.py --config my.yaml --work runs/ray_scaling

Writes benchmarks/results/ray_scaling.md and .csv (one row per run), with each run's per-cell time split into
preparing the request (loading or training its Original, oracle and baseline metrics), the method's own call
(`time_s`) and the rest (evaluating the unlearned model, saving it). The target on 2 cores is a ratio of at least
1.7 (wall time of 1 worker over that of 2).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import shutil
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
import yaml

from expunge._io import atomic_write_text, stable_hash
from expunge.harness.config import parse_config
from expunge.harness.executors import Executor, SequentialExecutor
from expunge.harness.grid import Cell, expand
from expunge.harness.ray_executor import RayExecutor
from expunge.harness.results import ResultStore
from expunge.harness.run import Job, prepare_setting, run_grid
from expunge.store.artifacts import environment_info

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
TARGET = 1.7


class Clock:
    """A run_grid progress that notes when each cell was stored."""

    def __init__(self) -> None:
        self.t0, self.stamps = time.perf_counter(), []

    def start(self, total: int, done: int) -> None: ...

    def advance(self, status: str) -> None:
        self.stamps.append(time.perf_counter() - self.t0)

    def stop(self) -> None: ...


class KeepingStore(ResultStore):
    """A result store that also keeps each cell's whole outcome (its time split, what it trained)."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.outcomes: list[Mapping[str, Any]] = []

    def write_cell(self, cell: Mapping[str, Any], outcome: Mapping[str, Any]) -> None:
        self.outcomes.append(outcome)
        super().write_cell(cell, outcome)


def prewarm(cells: list[Cell], store_root: str) -> float:
    """Train every Original and oracle the grid needs into the shared store (in this process)."""
    t0 = time.perf_counter()
    firsts = {stable_hash([c.setting, c.request]): c for c in cells}
    for cell in firsts.values():
        error = prepare_setting(Job((cell,), store_root))
        if error:
            raise SystemExit(f"preparing {cell.request_label} seed {cell.seed} failed: {error}")
    return time.perf_counter() - t0


def run(name: str, cells: list[Cell], make: Callable[[], Executor], work: Path, store_root: str) -> dict[str, Any]:
    setup = time.perf_counter()
    executor = make()
    if isinstance(executor, RayExecutor):
        executor.start()  # the cluster, as `expunge bench` starts it before run_grid
    setup = time.perf_counter() - setup
    out = work / name.replace(" ", "_").replace(",", "")
    with KeepingStore(out) as rs:
        clock = Clock()
        executor.slots()  # the worker actors, started and warmed up (run_grid's own call finds them up)
        startup = time.perf_counter() - clock.t0
        summary = run_grid(cells, rs, executor, store_root=store_root, progress=clock)
        metrics = {f"{key}/{step}": json.loads(doc)["metrics"] if doc else None
                   for key, step, doc in rs.conn.execute("SELECT cell_key, step, record FROM runs")}
        pids = {p for (p,) in rs.conn.execute("SELECT pid FROM runs")}
        outcomes = rs.outcomes
    cell_s = sum(o["wall_s"] for o in outcomes)
    prepare_s = sum(o.get("prepare_s") or 0.0 for o in outcomes)
    method_s = sum(r.get("time_s") or 0.0 for o in outcomes for r in o["records"])
    wall = clock.stamps[-1] if clock.stamps else 0.0
    return {"run": name, "workers": executor.workers,
            "threads": getattr(executor, "threads", torch.get_num_threads()), "cells": summary.total,
            "ok": summary.ok, "failed": summary.failed, "lost": summary.lost, "setup_s": round(setup, 2),
            "wall_s": round(wall, 2), "startup_s": round(startup, 2), "sum_cell_s": round(cell_s, 2),
            "prepare_s": round(prepare_s, 2), "method_s": round(method_s, 2),
            "rest_s": round(cell_s - prepare_s - method_s, 2),
            "preparations": sum(bool(o.get("prepared")) for o in outcomes), "trained": len(summary.trained),
            "trained_twice": len(summary.trained) - len(set(summary.trained)),
            "idle_s": round(max(0.0, executor.workers * (wall - startup) - cell_s), 2),
            "processes": len(pids), "metrics": metrics}


def max_abs_diff(ref: dict[str, Any], other: dict[str, Any]) -> float:
    """The largest absolute difference of a metric between two runs' cells (a missing or non-numeric mismatch:
    infinite)."""
    worst = 0.0
    for key, metrics in ref.items():
        theirs = other.get(key)
        if metrics is None or theirs is None:
            worst = max(worst, 0.0 if theirs == metrics else float("inf"))
            continue
        for name, value in metrics.items():
            if isinstance(value, int | float) and isinstance(theirs.get(name), int | float):
                worst = max(worst, abs(value - theirs[name]))
            elif value != theirs.get(name):
                worst = float("inf")
    return worst


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", type=Path, default=ROOT / "configs" / "digits.yaml")
    ap.add_argument("--seeds", type=int, nargs="+", default=[4, 8],
                    help="one grid per value: seeds 0..N-1 instead of the config's (0: the config's); the reference "
                         "runs (all cores, local) on the first grid only")
    ap.add_argument("--work", type=Path, default=ROOT / "runs" / "ray_scaling", help="result stores (emptied)")
    ap.add_argument("--no-local", action="store_true", help="skip the in-process reference run")
    args = ap.parse_args()

    doc = yaml.safe_load(args.config.read_text())
    shutil.rmtree(args.work, ignore_errors=True)
    # One torch thread everywhere (this process too: it fills the shared store and runs `local`): the thread count
    # changes floating-point reductions, so only runs at the same thread count can give identical records.
    torch.set_num_threads(1)
    load_start = os.getloadavg()
    grids = []
    for g, seeds in enumerate(args.seeds):
        if seeds:
            doc["seeds"] = list(range(seeds))
        cells = expand(parse_config(doc))
        work = args.work / f"seeds-{seeds}"
        runs = [run(f"ray-{n}, empty store", cells, lambda n=n: RayExecutor(n, threads=1), work,
                    str(work / f"store-{n}")) for n in (1, 2)]
        store_root = str(work / "store")
        prewarm_s = prewarm(cells, store_root)
        runs += [run(f"ray-{n}", cells, lambda n=n: RayExecutor(n, threads=1), work, store_root) for n in (1, 2)]
        if g == 0:
            runs.append(run("ray-1, all cores", cells, lambda: RayExecutor(1), work, store_root))
            if not args.no_local:
                runs.append(run("local", cells, SequentialExecutor, work, store_root))
        ref = runs[0]["metrics"]
        for r in runs:
            r["seeds"] = seeds
            r["identical"] = r["metrics"] == ref
            r["cells_differing"] = sum(r["metrics"].get(k) != v for k, v in ref.items())
            r["max_abs_diff"] = max_abs_diff(ref, r["metrics"])
        grids.append((seeds, cells, runs, prewarm_s))
    write(args.config, grids, environment_info(), load_start, os.getloadavg())
    print((RESULTS / "ray_scaling.md").read_text())


COLUMNS = ["seeds", "run", "workers", "threads", "cells", "ok", "failed", "lost", "setup_s", "wall_s", "startup_s",
           "sum_cell_s", "prepare_s", "method_s", "rest_s", "preparations", "trained", "trained_twice", "idle_s",
           "processes", "identical", "cells_differing", "max_abs_diff"]


def write(config: Path, grids: list[tuple[int, list[Cell], list[dict[str, Any]], float]], env: dict[str, Any],
          load_start: tuple[float, ...], load_end: tuple[float, ...]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for _, _, runs, _ in grids:
        writer.writerows(runs)
    atomic_write_text(RESULTS / "ray_scaling.csv", buf.getvalue())

    def load(avg: tuple[float, ...]) -> str:
        return ", ".join(f"{x:.2f}" for x in avg)

    rel = config.resolve().relative_to(ROOT) if config.resolve().is_relative_to(ROOT) else config
    lines = [
        "# Ray scaling: 1 worker vs 2 workers", "",
        f"Grid `{rel}` with its seeds replaced by 0..N−1, N = {', '.join(str(g[0]) for g in grids)}. "
        f"torch {env.get('torch')}, "
        f"{os.cpu_count()} CPU cores; load average (1, 5, 15 min) {load(load_start)} at start and {load(load_end)} "
        "at end (above 0 means other work shared the cores)." + _autogroup_note(), "",
        "Each run times what `expunge bench --executor ray --workers N` does once its local cluster (127.0.0.1) is "
        "up (`setup`, not timed): `wall` runs from starting the N worker actors (`startup`: until every actor has "
        "imported torch and expunge and warmed up) through `run_grid` — the cells with request affinity, each "
        "stored as it finishes — to the last stored cell. The first pair runs on an empty artifact store each (the "
        "grid trains its Originals and oracles: `trained`; with 2 workers a seed's Original is trained by a job of "
        "its own, so its other request starts as soon as it is stored); the others share one store filled first in "
        "this process (not timed: the cells only, as a rerun of the grid or another grid on the same settings). "
        "`local` is the same grid in one process (`--executor local --workers 1`). Every process uses one torch "
        "thread, except `all cores`. The workers' start-up is a fixed cost of a few seconds whatever the grid, so "
        "the ratio grows with the grid: each size is shown.", ""]
    for seeds, cells, runs, prewarm_s in grids:
        lines += _grid_section(seeds, cells, runs, prewarm_s)
    lines += ["`preparing`: loading (or training) each cell's request — its Original, oracle and baseline metrics — "
              "unless its worker kept them from the request's previous cell (`preparations` counts those that did "
              "not); `method`: the unlearning call (the record's `time_s`); `rest`: the rest of the cell, chiefly "
              "evaluating the unlearned model (the loss-MIA's cross-validated logistic regressions) and saving it; "
              "`idle`: workers × (wall − startup) − sum of cells, the time the workers waited (for the dispatcher, "
              "a gate, a job training a shared Original, or the grid's tail).", "",
              "Numbers: `benchmarks/results/ray_scaling.csv`. Rerun: `python benchmarks/ray_scaling.py` "
              "(`--seeds 4 8`)."]
    atomic_write_text(RESULTS / "ray_scaling.md", "\n".join(lines) + "\n")


def _grid_section(seeds: int, cells: list[Cell], runs: list[dict[str, Any]], prewarm_s: float) -> list[str]:
    by = {r["run"]: r for r in runs}
    requests = len({stable_hash([c.setting, c.request]) for c in cells})
    lines = [f"## {len(cells)} cells: seeds 0–{seeds - 1}" if seeds else f"## {len(cells)} cells", "",
             f"{len(cells)} cells on {requests} requests (a request: one Original and oracle, shared by its methods' "
             f"cells); the shared store was filled in {prewarm_s:.0f} s.", "",
             "| run | workers × threads | cells ok | setup (s) | wall (s) | startup (s) | sum of cells (s) | preparing "
             "(s) | method (s) | rest (s) | preparations | trained (twice) | idle (s) | processes | identical |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in runs:
        ident = "yes" if r["identical"] else f"no ({r['cells_differing']} cells, ≤ {r['max_abs_diff']:.1e})"
        lines.append(f"| {r['run']} | {r['workers']} × {r['threads']} | {r['ok']}/{r['cells']} | {r['setup_s']:.1f} "
                     f"| {r['wall_s']:.1f} | {r['startup_s']:.1f} | {r['sum_cell_s']:.1f} | {r['prepare_s']:.1f} "
                     f"| {r['method_s']:.1f} | {r['rest_s']:.1f} | {r['preparations']} | {r['trained']} "
                     f"({r['trained_twice']}) | {r['idle_s']:.1f} | {r['processes']} | {ident} |")
    lines.append("")
    for label, one, two in (("on empty stores", "ray-1, empty store", "ray-2, empty store"),
                            ("on the filled store", "ray-1", "ray-2")):
        a, b = by[one], by[two]
        ratio = a["wall_s"] / max(b["wall_s"], 1e-9)
        net = (a["wall_s"] - a["startup_s"]) / max(b["wall_s"] - b["startup_s"], 1e-9)
        verdict = "meets" if ratio >= TARGET else "misses"
        lines.append(f"- Ratio of wall times {label}, 1 worker over 2: **{ratio:.2f}** ({verdict} the target of "
                     f"{TARGET} on 2 cores); without the workers' start-up, {net:.2f}. The 2-worker run's cells took "
                     f"{b['sum_cell_s'] / max(a['sum_cell_s'], 1e-9):.2f} times as long in total as the 1-worker "
                     f"run's, with {b['preparations']} request preparations against {a['preparations']}.")
    same = all(r["identical"] for r in runs if r["threads"] == 1)
    lines += [f"- Records (every metric of every cell, by cell key) of every one-thread run against "
              f"`{runs[0]['run']}`: **{'identical' if same else 'not identical'}**."
              + (" A worker with another number of torch threads sums in another order, and an unlearning run's "
                 "steps carry the rounding differences on." if any(r["threads"] != 1 for r in runs) else ""), ""]
    return lines


def _autogroup_note() -> str:
    """With the kernel's autogroup scheduling on, busy sessions share the cores equally, whatever their number of
    processes: the driver and its workers are one session, so under other sessions' load a second worker adds
    little CPU (a fact of the machine, checked when the benchmark runs)."""
    try:
        on = Path("/proc/sys/kernel/sched_autogroup_enabled").read_text().strip() == "1"
    except OSError:
        return ""
    return (" The kernel's autogroup scheduling is on: busy sessions share the cores equally whatever their number "
            "of processes, and this benchmark (driver, cluster and workers) is one session, so while other sessions "
            "are busy a second worker adds little CPU; only a run on an otherwise idle machine measures the "
            "scaling.") if on else ""


if __name__ == "__main__":
    main()
