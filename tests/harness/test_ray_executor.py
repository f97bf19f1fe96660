"""The Ray executor: the same records as the local executors with request affinity, failures stored per cell,
``expunge bench --executor ray`` end to end, and one error line when Ray is missing. One local Ray cluster
(127.0.0.1, 2 CPUs) serves the module; executors built while it runs use it and leave it running."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_bench_cli import TINY, cli, write_config

from expunge.harness.config import parse_config
from expunge.harness.dispatch import map_unordered
from expunge.harness.grid import expand
from expunge.harness.results import DB_NAME, ResultStore
from expunge.harness.run import PoolExecutor, SequentialExecutor, run_grid

GRID: dict[str, Any] = {**TINY, "seeds": [0], "requests": [{"forget": "class:3"}, {"forget": "random:0.1"}],
                        "methods": ["finetune", "ssd"]}


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[str]:
    """A local cluster for the module; its GCS address."""
    ray = pytest.importorskip("ray")
    from expunge.harness.ray_executor import RayExecutor

    owner = RayExecutor(2, threads=1)
    owner.start()
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        owner.close()
    assert not ray.is_initialized()


def stored(rs: ResultStore) -> dict[str, tuple[Any, ...]]:
    """Per cell key: what the run produced (metrics, the Original's and oracle's keys, status)."""
    runs = {r["run_key"]: r for r in rs.runs()}
    return {r["cell_key"]: (rec["metrics"], rec["original_key"], rec["oracle_key"], r["status"])
            for r, rec in ((runs[k], json.loads(doc)) for k, doc in rs.conn.execute("SELECT run_key, record FROM "
                                                                                  "runs"))}


def test_ray_and_the_pool_give_the_records_of_the_sequential_run_with_request_affinity(ray_cluster: str,
                                                                                       tmp_path: Path) -> None:
    """Two Ray actors (on a cold artifact store), two pool workers and one in-process run store, cell by cell, the
    same metrics and artifact keys. On the cold store the Original is trained once and each request's oracle once,
    by one worker each (the second request waits for the Original rather than training it too); the later runs
    train nothing. With 2 workers and 2 requests of 2 cells, each request's cells ran in one worker process, and
    the two requests in two."""
    from expunge.harness.ray_executor import RayExecutor

    cells = expand(parse_config(GRID))
    out: dict[str, dict[str, tuple[Any, ...]]] = {}
    trained: dict[str, list[str]] = {}
    for name, executor in (("ray", RayExecutor(2, threads=1)), ("pool", PoolExecutor(2, threads=1)),
                           ("local", SequentialExecutor())):
        with ResultStore(tmp_path / name) as rs:
            summary = run_grid(cells, rs, executor, store_root=str(tmp_path / "store"))
            assert (summary.ok, summary.failed, summary.lost) == (4, 0, 0)
            out[name] = stored(rs)
            trained[name] = summary.trained
            pid_of = {(r[0], r[1]): r[2] for r in rs.conn.execute("SELECT request, method, pid FROM runs")}
        pids = set(pid_of.values())
        if name == "local":
            assert pids == {os.getpid()}
        else:
            assert os.getpid() not in pids
            per_request = {req: {p for (rq, _), p in pid_of.items() if rq == req} for req in ("class:3", "random:0.1")}
            assert all(len(p) == 1 for p in per_request.values()), per_request
            assert len(pids) == 2
    assert set(out["ray"]) == {c.key for c in cells}
    assert out["ray"] == out["pool"] == out["local"]
    assert sorted(k.split("/")[0] for k in trained["ray"]) == ["oracle", "oracle", "original"]
    assert len(set(trained["ray"])) == 3 and trained["pool"] == trained["local"] == []
    assert len(list((tmp_path / "store" / "original").iterdir())) == 1  # one Original for the 4 cells
    import ray

    assert ray.is_initialized()  # the executors found the module's session running: close() left it so


def test_a_failing_cell_under_ray_is_stored_as_failed_and_the_grid_goes_on(ray_cluster: str, tmp_path: Path) -> None:
    """A cell that fails in a Ray worker (a hyperparameter the method does not have) is stored as failed with its
    error; the other cells run and are stored."""
    from expunge.harness.ray_executor import RayExecutor

    good, other = expand(parse_config({**GRID, "requests": [{"forget": "class:3"}]}))
    bad = dataclasses.replace(other, key="bad-cell", params={**other.params, "no_such_param": 1})
    with ResultStore(tmp_path / "out") as rs:
        summary = run_grid([bad, good], rs, RayExecutor(2, threads=1), store_root=str(tmp_path / "store"))
        runs = {r["cell_key"]: r for r in rs.runs()}
    assert (summary.ok, summary.failed, summary.lost) == (1, 1, 0)
    assert runs[good.key]["status"] == "ok"
    assert runs["bad-cell"]["status"] == "failed" and "no_such_param" in runs["bad-cell"]["error"]


def test_a_task_that_raises_is_yielded_as_its_items_exception(ray_cluster: str) -> None:
    """As the process pool: the exception comes back for its own item (an instance of the task's exception class),
    and the other items' results still arrive."""
    from expunge.harness.ray_executor import RayExecutor

    executor = RayExecutor(2, threads=1)
    try:
        results = dict(map_unordered(executor, int, ["1", "x", "3"]))
    finally:
        executor.close()
    assert (results["1"], results["3"]) == (1, 3)
    assert isinstance(results["x"], ValueError) and "invalid literal" in str(results["x"])


def test_an_actor_that_dies_twice_loses_its_item(ray_cluster: str) -> None:
    """An item whose worker process exits: Ray restarts the actor once and runs it again; the second death is
    WorkerLost (the cell would be reported lost and not stored), not an exception of the item's own."""
    from expunge.harness.executors import WorkerLost
    from expunge.harness.ray_executor import RayExecutor

    executor = RayExecutor(1, threads=1)
    try:
        ((item, result),) = list(map_unordered(executor, os._exit, [3]))
    finally:
        executor.close()
    assert item == 3 and isinstance(result, WorkerLost), result


def test_bench_executor_ray_end_to_end_on_an_existing_cluster(ray_cluster: str, tmp_path: Path) -> None:
    """`expunge bench --executor ray --ray-address` runs the grid on the module's cluster, stores every cell, and
    disconnects without shutting that cluster down."""
    import ray

    config = write_config(tmp_path / "grid.yaml", {**GRID, "requests": [{"forget": "class:3"}]})
    res = cli("bench", str(config), "--out", "out", "--executor", "ray", "--ray-address", ray_cluster,
              "--workers", "2", "--json", cwd=tmp_path, store=tmp_path / "store")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["ok"] == 2
    with ResultStore(tmp_path / "out", create=False) as rs:
        assert {r["method"]: r["status"] for r in rs.runs()} == {"finetune": "ok", "ssd": "ok"}
    assert ray.get(ray.remote(lambda: 1).remote()) == 1  # still up


def test_executor_ray_without_ray_is_one_error_line(tmp_path: Path) -> None:
    """Ray made unimportable in the CLI's process: one `error:` line naming the extra, exit 2, nothing written."""
    config = write_config(tmp_path / "grid.yaml", {**GRID, "methods": ["finetune"]})
    code = ("import sys; sys.modules['ray'] = None; from expunge.cli.main import main; "
            f"sys.argv = ['expunge', 'bench', {str(config)!r}, '--out', 'out', '--executor', 'ray']; main()")
    env = {**os.environ, "EXPUNGE_CACHE": str(tmp_path / "store")}
    res = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, env=env,
                         timeout=120)
    assert res.returncode == 2
    (line,) = res.stderr.strip().splitlines()
    assert line.startswith("error: --executor ray needs Ray") and "pip install 'expunge[ray]'" in line
    assert not (tmp_path / "out").exists()


def test_ray_address_without_executor_ray_is_refused(tmp_path: Path) -> None:
    config = write_config(tmp_path / "grid.yaml", {**GRID, "methods": ["finetune"]})
    res = cli("bench", str(config), "--out", "out", "--ray-address", "127.0.0.1:6379", cwd=tmp_path,
              store=tmp_path / "store")
    assert res.returncode == 2 and "pass --executor ray" in res.stderr
    assert not (tmp_path / "out" / DB_NAME).exists()


def test_a_ray_address_where_no_cluster_listens_is_one_error_line(ray_cluster: str, tmp_path: Path) -> None:
    """Ray itself retries for minutes; the CLI refuses at once, writing nothing."""
    config = write_config(tmp_path / "grid.yaml", {**GRID, "methods": ["finetune"]})
    res = cli("bench", str(config), "--out", "out", "--executor", "ray", "--ray-address", "127.0.0.1:1",
              cwd=tmp_path, store=tmp_path / "store", timeout=60)
    assert res.returncode == 2
    (line,) = res.stderr.strip().splitlines()
    assert line.startswith("error: no Ray cluster answers at --ray-address '127.0.0.1:1'") and "ray start" in line
    assert not (tmp_path / "out").exists()
