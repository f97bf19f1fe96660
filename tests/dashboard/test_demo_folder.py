"""`expunge serve` on the folder `expunge demo` writes (results.json and its models in the artifact store): the
screening table lists the demo's methods and the per-model views draw from their stored weights; builds are refused
(the folder is not a bench store)."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture(scope="module")
def demo_client(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from fastapi.testclient import TestClient

    from expunge.dashboard.app import create_app
    from expunge.demo import run_demo
    from expunge.store import ArtifactStore

    root = tmp_path_factory.mktemp("demo")
    store = ArtifactStore(root / "store")
    run_demo(out=root / "out", model="mlp", methods=["finetune", "random_label"], store=store)
    with TestClient(create_app(root / "out", store=store), raise_server_exceptions=False) as c:
        yield c


def test_a_demo_folder_is_served_with_its_models(demo_client: Any) -> None:
    rows = demo_client.get("/api/runs").json()["rows"]
    assert sorted(r["method"] for r in rows) == ["finetune", "random_label"]
    ref = rows[0]["id"]
    cw = demo_client.get(f"/api/models/{ref}/classwise").json()
    assert demo_client.get(f"/api/models/{ref}:retrain/classwise").status_code == 200 and cw
    build = demo_client.post("/api/build", json={"template": ref, "method": "finetune", "params": {},
                                                  "forget": "class:3", "seeds": [0]})
    assert build.status_code in (400, 403, 409, 422) and "demo" in build.text


def test_expunge_results_reads_a_demo_folder_too(demo_client: Any, tmp_path_factory: pytest.TempPathFactory) -> None:
    from expunge.harness.compact import open_results

    demo_out = next(tmp_path_factory.getbasetemp().glob("demo*/out"))
    with open_results(demo_out) as rs:
        assert sorted(r["method"] for r in rs.runs()) == ["finetune", "random_label"]
