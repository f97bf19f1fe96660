"""View 8 (Build) through the API: invalid requests are refused before any work, a committed folder refuses builds,
cancel leaves nothing stored, and a finished build joins the screening table."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from expunge.dashboard.app import create_app
from expunge.harness.compact import export
from expunge.harness.results import ResultStore
from expunge.store import ArtifactStore


@pytest.fixture
def served(bench: tuple[Path, Path], tmp_path: Path) -> Iterator[tuple[Any, Path]]:
    from fastapi.testclient import TestClient

    folder = tmp_path / "out"
    shutil.copytree(bench[0], folder)
    with TestClient(create_app(folder, store=ArtifactStore(bench[1]))) as c:
        yield c, folder


def template(c: Any) -> int:
    return next(r["id"] for r in c.get("/api/runs").json()["rows"] if r["request"] == "class:3")


@pytest.mark.parametrize(("body", "says"), [
    ({"method": "finetune", "params": {"lr": -1}}, "the 'lr' parameter of finetune must be a number > 0.0"),
    ({"method": "finetune", "params": {"epochs": "many"}}, "epochs"),
    ({"method": "finetune", "params": {"nope": 1}}, "nope"),
    ({"method": "finetun"}, "Did you mean 'finetune'"),
    ({"method": "finetune", "forget": "class:11"}, "class 11 does not exist"),
    ({"method": "finetune", "seeds": [-1]}, "seeds must be"),
    ({"method": "finetune", "seeds": list(range(9))}, "seeds must be"),
    ({"method": 3}, "method must be"),
    ({"method": "finetune", "template": "1; rm"}, "template must be"),
    ({"method": "finetune", "template": 99999}, "is not in"),
])
def test_an_invalid_build_is_refused_before_any_work(served: tuple[Any, Path], body: dict[str, Any],
                                                     says: str) -> None:
    c, _ = served
    before = len(c.get("/api/runs").json()["rows"])
    res = c.post("/api/build", json={"template": template(c), "forget": "class:3", "seeds": [0], **body})
    assert 400 <= res.status_code < 500 and says in res.json()["error"], res.text
    assert c.get("/api/jobs").json() == [] and len(c.get("/api/runs").json()["rows"]) == before


def test_a_committed_folder_refuses_builds(bench: tuple[Path, Path], tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    with ResultStore(bench[0], create=False) as rs:
        export(rs, tmp_path / "compact")
    with TestClient(create_app(tmp_path / "compact", store=ArtifactStore(bench[1]))) as c:
        res = c.post("/api/build", json={"template": template(c), "method": "finetune", "forget": "class:3"})
        assert res.status_code == 400 and "committed results folder" in res.json()["error"]


def test_a_cancelled_build_stores_nothing(served: tuple[Any, Path]) -> None:
    c, _ = served
    before = len(c.get("/api/runs").json()["rows"])
    job = c.post("/api/build", json={"template": template(c), "method": "finetune", "params": {"epochs": 500},
                                     "forget": "class:3", "seeds": [0]}).json()
    assert c.post(f"/api/jobs/{job['id']}/cancel").json()["state"] == "cancelled"
    (listed,) = c.get("/api/jobs").json()
    assert (listed["state"], listed["stored"]) == ("cancelled", 0)
    assert len(c.get("/api/runs").json()["rows"]) == before
    assert c.post("/api/jobs/7/cancel").status_code == 404


@pytest.mark.slow
def test_a_finished_build_joins_the_screening_table(served: tuple[Any, Path]) -> None:
    c, _ = served
    job = c.post("/api/build", json={"template": template(c), "method": "finetune", "params": {"epochs": 2},
                                     "forget": "class:3", "seeds": [0], "label": "ft2"}).json()
    deadline = time.monotonic() + 180
    while (state := c.get("/api/jobs").json()[0])["state"] == "running" and time.monotonic() < deadline:
        time.sleep(0.5)
    assert (state["state"], state["progress"], job["label"]) == ("done", 1.0, "ft2"), state
    row = next(r for r in c.get("/api/runs").json()["rows"] if r["label"] == "ft2")
    assert row["status"] == "ok" and c.get(f"/api/models/{row['id']}/classwise").status_code == 200
