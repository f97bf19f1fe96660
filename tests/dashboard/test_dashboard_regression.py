"""A task without classes (diabetes regression): the views that need classes say they do not apply (422 naming the
ones that do); the screening table, the attack on the loss, CKA, embeddings and the timeline work."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

REG: dict[str, Any] = {"name": "reg", "datasets": ["diabetes"], "models": ["mlp"], "recipe": {"epochs": 2},
                       "requests": [{"forget": "random:0.1"}], "methods": ["finetune"],
                       "metrics": ["forget_mse", "test_mse", "mia_loss_auc"], "seeds": [0]}


@pytest.fixture(scope="module")
def reg(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from fastapi.testclient import TestClient

    from expunge.dashboard.app import create_app
    from expunge.harness.config import parse_config
    from expunge.harness.grid import expand
    from expunge.harness.results import ResultStore
    from expunge.harness.run import SequentialExecutor, run_grid
    from expunge.store import ArtifactStore

    root: Path = tmp_path_factory.mktemp("reg")
    with ResultStore(root / "out") as rs:
        assert run_grid(expand(parse_config(REG)), rs, SequentialExecutor(), store_root=str(root / "store")).ok == 1
    with TestClient(create_app(root / "out", store=ArtifactStore(root / "store"))) as c:
        yield c


def test_views_without_classes_say_so_and_the_others_work(reg: Any) -> None:
    assert reg.get("/api/runs").json()["metrics"] == ["forget_mse", "test_mse", "mia_loss_auc"]
    views = reg.get("/api/models/1/info").json()["views"]
    assert views["classwise"] == views["predictions"] == "a regression task has no classes"
    assert views["attack_images"] == "the inputs are not images" and views["attack"] is None
    for path in ("/api/models/1/classwise", "/api/models/1/predictions"):
        res = reg.get(path)
        assert res.status_code == 422
        assert "The views that do: screening, timeline, attack, layers" in res.json()["error"]
    res = reg.get("/api/attack", params={"a": "1", "b": "1:retrain", "feature": "entropy"})
    assert res.status_code == 422 and "pick one of ['loss']" in res.json()["error"]
    attack = reg.get("/api/attack", params={"a": "1", "b": "1:retrain"}).json()
    assert attack["models"]["A"]["n_forget"] == 33 and "image" not in attack["models"]["A"]["exposed"][0]
    pair = {"a": "1", "b": "1:original"}
    for path, params in (("/api/cka", pair), ("/api/embeddings", pair), ("/api/runs/1/timeline", {})):
        assert reg.get(path, params=params).status_code == 200, path


@pytest.mark.parametrize("folder", ["graph", "recsys"])
def test_graph_and_recommendation_runs_get_the_table_timeline_and_build(folder: str, tmp_path: Path) -> None:
    """Their models need their graph or interaction data: the per-model views say so (422) before loading anything;
    the committed results folders serve the screening table and the timeline."""
    from fastapi.testclient import TestClient

    from expunge.dashboard.app import create_app
    from expunge.store import ArtifactStore

    results = Path(__file__).parents[2] / "benchmarks" / "results" / folder
    if not results.is_dir():
        pytest.skip(f"no committed {folder} results")
    with TestClient(create_app(results, store=ArtifactStore(tmp_path / "store"))) as c:
        rows = c.get("/api/runs").json()["rows"]
        assert rows and {r["task"] for r in rows} == {folder}
        run = rows[0]["id"]
        assert c.get(f"/api/runs/{run}/timeline").status_code == 200
        views = c.get(f"/api/models/{run}/info").json()["views"]
        assert views["screening"] is views["timeline"] is views["build"] is None
        for path, params in ((f"/api/models/{run}/classwise", {}), ("/api/attack", {"a": run, "b": run}),
                             ("/api/cka", {"a": run, "b": run}), ("/api/embeddings", {"a": run, "b": run})):
            res = c.get(path, params=params)
            assert res.status_code == 422 and "does not run on plain inputs" in res.json()["error"], path
