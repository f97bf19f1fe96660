"""``expunge bench`` and ``expunge results`` end to end: bad input, failing cells, kill -9 then --resume, the lock,
and the CSV export."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from expunge.harness.config import parse_config
from expunge.harness.grid import expand
from expunge.harness.results import DB_NAME, BenchLock, ResultStore
from expunge.harness.run import PoolExecutor, SequentialExecutor, run_grid
from expunge.methods.base import METHODS

TINY: dict[str, Any] = {"name": "tiny", "datasets": ["digits"], "models": ["mlp"], "recipe": {"epochs": 3},
                        "requests": [{"forget": "class:3"}], "methods": ["finetune", "neggrad_plus", "ssd"],
                        "seeds": [0, 1, 2]}


def cli(*args: str, cwd: Path, store: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "EXPUNGE_CACHE": str(store), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "expunge.cli.main", *args], cwd=cwd, capture_output=True,
                          text=True, env=env, timeout=timeout)


def write_config(path: Path, doc: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(doc))
    return path


def test_bad_config_is_one_error_line_and_writes_nothing(tmp_path: Path) -> None:
    config = write_config(tmp_path / "grid.yaml", {**TINY, "methods": [{"name": "ssd", "parms": {"alpha": 1}}]})
    res = cli("bench", str(config), "--out", "out", cwd=tmp_path, store=tmp_path / "store")
    assert res.returncode == 2
    assert res.stdout == ""
    (line,) = res.stderr.strip().splitlines()
    assert line.startswith("error: ") and "unknown key 'parms'" in line and "Allowed keys" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grid.yaml"]


def test_failing_and_diverging_cells_are_stored_and_the_grid_goes_on(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Fault injection: ssd raises, neggrad_plus returns a model of NaN weights (a diverged record); finetune's cells
    and every other cell still run and are stored."""

    def boom(self: Any, model: Any, data: Any, ctx: Any) -> Any:
        raise RuntimeError("injected failure")

    def nan_model(self: Any, model: Any, data: Any, ctx: Any) -> Any:
        with torch.no_grad():
            for p in model.parameters():
                p.fill_(float("nan"))
        return model

    monkeypatch.setattr(METHODS.get("ssd"), "unlearn", boom)
    monkeypatch.setattr(METHODS.get("neggrad_plus"), "unlearn", nan_model)
    cells = expand(parse_config({**TINY, "seeds": [0]}))
    with ResultStore(tmp_path / "out") as rs:
        summary = run_grid(cells, rs, SequentialExecutor(), store_root=str(tmp_path / "store"))
        runs = {r["method"]: r for r in rs.runs()}
    assert (summary.ok, summary.failed) == (1, 2)
    assert runs["finetune"]["status"] == "ok"
    assert runs["ssd"]["status"] == "failed"
    assert runs["ssd"]["error"] == "RuntimeError: injected failure"
    assert runs["neggrad_plus"]["status"] == "diverged"
    assert runs["neggrad_plus"]["error"]  # the record's status_reason


def test_retry_failed_reruns_only_the_failed_cells(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cells = expand(parse_config({**TINY, "seeds": [0], "methods": ["finetune", "ssd"]}))
    store = str(tmp_path / "store")
    with ResultStore(tmp_path / "out") as rs:
        with monkeypatch.context() as m:
            m.setattr(METHODS.get("ssd"), "unlearn", lambda *a: (_ for _ in ()).throw(RuntimeError("transient")))
            run_grid(cells, rs, SequentialExecutor(), store_root=store)
        first = {r["method"]: (r["id"], r["status"]) for r in rs.runs()}
        assert first["ssd"][1] == "failed"
        assert run_grid(cells, rs, SequentialExecutor(), store_root=store).skipped == 2  # --resume alone: kept
        summary = run_grid(cells, rs, SequentialExecutor(), store_root=store, retry_failed=True)
        second = {r["method"]: (r["id"], r["status"]) for r in rs.runs()}
    assert (summary.skipped, summary.ok) == (1, 1)
    assert second["finetune"] == first["finetune"]  # not recomputed
    assert second["ssd"][1] == "ok" and second["ssd"][0] > first["ssd"][0]


def test_cells_lost_with_a_worker_are_not_stored(tmp_path: Path) -> None:
    """A dead worker fails its item with WorkerLost: no cell is started after it, and none is stored as failed (the
    cell was not at fault), so --resume runs them."""
    from concurrent.futures import Future

    from expunge.harness.executors import WorkerLost

    class DeadSlot:
        def submit(self, fn: Any, item: Any) -> Future[Any]:
            fut: Future[Any] = Future()
            fut.set_exception(WorkerLost("BrokenProcessPool: a child process terminated abruptly"))
            return fut

    class DyingExecutor:
        workers = 1

        def slots(self) -> list[DeadSlot]:
            return [DeadSlot()]

        def close(self) -> None:
            pass

    cells = expand(parse_config({**TINY, "seeds": [0], "methods": ["finetune", "ssd"]}))
    with ResultStore(tmp_path / "out") as rs:
        summary = run_grid(cells, rs, DyingExecutor(), store_root=str(tmp_path / "store"))
        assert (summary.lost, summary.failed, rs.runs()) == (2, 0, [])
        assert "terminated abruptly" in summary.lost_error
        assert run_grid(cells, rs, SequentialExecutor(), store_root=str(tmp_path / "store")).ok == 2


def test_a_reused_preparation_gives_the_records_of_a_fresh_one(tmp_path: Path) -> None:
    """A worker keeps its last preparations for the next method on the same request: a method run after others on
    a kept preparation stores exactly what it stores on a fresh one (no method leaves a mark on the Original)."""
    from expunge.harness import run

    finetune, neggrad, ssd = expand(parse_config({**TINY, "seeds": [0], "methods": ["finetune", "neggrad_plus",
                                                                                     "ssd"]}))
    store = str(tmp_path / "store")
    run._PREPARED.clear()
    fresh = run.run_cell(run.Job((ssd,), store))
    reused = [run.run_cell(run.Job((c,), store)) for c in (finetune, neggrad, ssd)][-1]
    assert len(run._PREPARED) == 1  # one request: one kept preparation
    assert fresh["status"] == reused["status"] == "ok"
    assert fresh["records"][0]["metrics"] == reused["records"][0]["metrics"]
    assert fresh["records"][0]["original"] == reused["records"][0]["original"]


WARM_PROBE = """
import json, sys, torch
torch.set_num_threads(1)
import expunge
from expunge.train.loop import TrainRecipe
prep = expunge.prepare("digits", "mlp", "class:3", seed=0, recipe=TrainRecipe(epochs=3), progress=False)
print(json.dumps([expunge.unlearn(prep, "neggrad_plus", save=False)[0].time_s for _ in range(2)]))
"""


def test_the_first_unlearning_call_of_a_process_is_not_charged_torch_start_up(tmp_path: Path) -> None:
    """Without the runner's warm-up (expunge.train.warmup) the first unlearning call of a process also pays torch's
    lazy initialisation (about a second on a tiny model, several times the call itself), and its speed-up is
    understated. The probe loads a cached Original and oracle (no backward pass) and times two calls."""
    env = {**os.environ, "EXPUNGE_CACHE": str(tmp_path / "store"), "OMP_NUM_THREADS": "1"}
    run = [sys.executable, "-c", WARM_PROBE]
    subprocess.run(run, env=env, check=True, capture_output=True, timeout=300)  # fill the cache
    first, second = json.loads(subprocess.run(run, env=env, check=True, capture_output=True, text=True,
                                              timeout=300).stdout)
    assert first < 2.5 * second + 0.15, (first, second)


def test_process_pool_gives_the_records_of_the_sequential_run(tmp_path: Path) -> None:
    """Two spawned workers (shared Original trained once first) store the same metrics as one in-process run."""
    cells = expand(parse_config({**TINY, "seeds": [0], "requests": [{"forget": "class:3"}, {"forget": "random:0.1"}],
                                 "methods": ["finetune", "ssd"]}))
    metrics = {}
    for name, executor in (("pool", PoolExecutor(2, threads=1)), ("seq", SequentialExecutor())):
        with ResultStore(tmp_path / name) as rs:
            summary = run_grid(cells, rs, executor, store_root=str(tmp_path / "store"))
            assert (summary.ok, summary.failed) == (4, 0)
            metrics[name] = {(r["method"], r["forget"]): (r["metrics"], r["original_key"], r["oracle_key"])
                             for r in rs.records()}
            pids = {r["pid"] for r in rs.conn.execute("SELECT pid FROM runs")}
        assert (os.getpid() not in pids) if name == "pool" else (pids == {os.getpid()})
    assert metrics["pool"] == metrics["seq"]
    assert len(list((tmp_path / "store" / "original").iterdir())) == 1  # one Original for the 4 cells


def test_a_pool_worker_killed_mid_grid_loses_only_unfinished_cells_and_resume_completes(tmp_path: Path) -> None:
    """kill -9 of the worker that stored the first cell: the cells it had not finished are lost (not stored), the
    other worker's cell in flight is still stored, nothing is stored as failed; --resume runs exactly the rest."""
    cells = expand(parse_config({**TINY, "seeds": [0], "requests": [{"forget": "class:3"}, {"forget": "random:0.1"}],
                                 "methods": ["finetune", "neggrad_plus", "ssd"]}))
    store = str(tmp_path / "store")

    class KillAfterFirst:
        def __init__(self, rs: ResultStore) -> None:
            self.rs, self.killed = rs, 0

        def start(self, total: int, done: int) -> None: ...

        def advance(self, status: str) -> None:
            if not self.killed:
                (self.killed,) = self.rs.conn.execute("SELECT pid FROM runs ORDER BY id DESC LIMIT 1").fetchone()
                os.kill(self.killed, signal.SIGKILL)

        def stop(self) -> None: ...

    with ResultStore(tmp_path / "out") as rs:
        progress = KillAfterFirst(rs)
        first = run_grid(cells, rs, PoolExecutor(2, threads=1), store_root=store, progress=progress)
        kept = {r["cell_key"]: r["id"] for r in rs.runs()}
        assert first.lost >= 1 and first.failed == 0 and first.ok == len(kept) >= 1
        assert first.ok + first.lost == 6 and "WorkerLost" in first.lost_error
        assert {r["status"] for r in rs.runs()} == {"ok"}
        again = run_grid(cells, rs, SequentialExecutor(), store_root=store)
        assert (again.skipped, again.ok, again.lost) == (len(kept), 6 - len(kept), 0)
        after = {r["cell_key"]: r["id"] for r in rs.runs()}
    assert set(after) == {c.key for c in cells}
    assert all(after[k] == i for k, i in kept.items())  # the finished cells were kept, not recomputed


def db_runs(out: Path) -> list[tuple[int, str, str]]:
    path = out / DB_NAME
    if not path.exists():
        return []
    try:
        with sqlite3.connect(path, timeout=5) as conn:
            return conn.execute("SELECT id, run_key, finished_at FROM runs ORDER BY id").fetchall()
    except sqlite3.OperationalError:  # the schema is not created yet
        return []


def test_kill_9_mid_grid_then_resume_keeps_and_skips_finished_cells(tmp_path: Path) -> None:
    config = write_config(tmp_path / "grid.yaml", TINY)
    out, store = tmp_path / "out", tmp_path / "store"
    env = {**os.environ, "EXPUNGE_CACHE": str(store), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "expunge.cli.main", "bench", str(config), "--out", str(out),
                             "--json"], cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        while not db_runs(out) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    before = db_runs(out)
    assert 1 <= len(before) < 9, before  # killed mid-grid

    res = cli("bench", str(config), "--out", str(out), "--resume", "--json", cwd=tmp_path, store=store)
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout)
    assert (summary["cells"], summary["skipped"], summary["ran"]) == (9, len(before), 9 - len(before))
    after = db_runs(out)
    assert after[:len(before)] == before  # finished cells kept, same row ids, not recomputed
    assert len(after) == 9 and len({r[1] for r in after}) == 9

    again = cli("bench", str(config), "--out", str(out), "--resume", "--json", cwd=tmp_path, store=store)
    assert json.loads(again.stdout)["ran"] == 0
    assert db_runs(out) == after


def test_second_bench_on_a_locked_folder_fails_fast(tmp_path: Path) -> None:
    """Another process holds the folder's lock (this test process): the bench fails at once, one error line,
    and writes no result."""
    config = write_config(tmp_path / "grid.yaml", {**TINY, "seeds": [0], "methods": ["finetune"]})
    out = tmp_path / "out"
    with BenchLock(out):
        t0 = time.monotonic()
        res = cli("bench", str(config), "--out", str(out), cwd=tmp_path, store=tmp_path / "store")
        took = time.monotonic() - t0
    assert res.returncode == 2
    (line,) = res.stderr.strip().splitlines()
    assert line.startswith("error: another `expunge bench` (pid ") and str(out) in line
    assert not (out / DB_NAME).exists()
    assert took < 60  # no training happened before the refusal


def test_existing_results_need_resume(tmp_path: Path) -> None:
    config = write_config(tmp_path / "grid.yaml", {**TINY, "seeds": [0], "methods": ["finetune"]})
    ResultStore(tmp_path / "out").close()
    res = cli("bench", str(config), "--out", "out", cwd=tmp_path, store=tmp_path / "store")
    assert res.returncode == 2 and "--resume" in res.stderr


def test_results_csv_round_trips_the_store(tmp_path: Path) -> None:
    config = write_config(tmp_path / "grid.yaml", {**TINY, "seeds": [0], "methods": ["finetune", "ssd"]})
    store = tmp_path / "store"
    res = cli("bench", str(config), "--out", "out", "--json", cwd=tmp_path, store=store)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["ok"] == 2
    out_csv = cli("results", "out", "--format", "csv", cwd=tmp_path, store=store)
    assert out_csv.returncode == 0, out_csv.stderr
    rows = list(csv.DictReader(io.StringIO(out_csv.stdout)))
    with ResultStore(tmp_path / "out", create=False) as rs:
        expected = list(rs.long_rows())
        n_metrics = rs.conn.execute("SELECT COUNT(*) FROM metrics").fetchone()[0]
    assert len(rows) == len(expected) > 0
    for got, want in zip(rows, expected, strict=True):
        assert got["run_key"] == want["run_key"] and got["metric"] == want["metric"] and got["role"] == want["role"]
        assert (got["value"] == "" and want["value"] is None) or float(got["value"]) == want["value"]
    assert {r["role"] for r in rows} == {"unlearned", "gap", "original", "retrain"}
    # the Original's and Retrain's values are stored once for the two methods' shared request
    per_run = len({(r["metric"]) for r in rows})
    assert n_metrics == 2 * 2 * per_run + 2 * per_run

    as_json = cli("results", "out", "--format", "json", cwd=tmp_path, store=store)
    docs = json.loads(as_json.stdout)
    assert [d["record"]["method"] for d in docs] == ["finetune", "ssd"]
    for d in docs:  # each run's per-example summaries, its request's Original and Retrain joined in
        assert {role: sorted(kinds) for role, kinds in d["distributions"].items()} == \
            {role: ["class_acc", "mia_loss"] for role in ("original", "retrain", "unlearned")}
    table = cli("results", "out", cwd=tmp_path, store=store)
    assert table.returncode == 0 and "finetune" in table.stdout and "forget_acc" in table.stdout

    # the compact committed form: written by --format jsonl, read back by every format
    exported = cli("results", "out", "--format", "jsonl", "--to", "exported", cwd=tmp_path, store=store)
    assert exported.returncode == 0 and "runs.jsonl" in exported.stdout, exported.stderr
    again = cli("results", "exported", "--format", "json", cwd=tmp_path, store=store)
    assert [{k: v for k, v in d.items() if k != "id"} for d in json.loads(again.stdout)] == \
        [{k: v for k, v in d.items() if k != "id"} for d in docs]
    assert not (tmp_path / "exported" / DB_NAME).exists()  # read through a temporary store


def test_results_on_a_folder_without_results(tmp_path: Path) -> None:
    res = cli("results", str(tmp_path), cwd=tmp_path, store=tmp_path / "store")
    assert res.returncode == 2 and "holds no bench results" in res.stderr
