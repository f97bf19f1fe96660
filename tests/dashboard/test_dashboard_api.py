"""The dashboard's JSON API on a real tiny grid (FastAPI TestClient): the screening rows carry the harness rules'
verdicts, each view's payload, path traversal in every encoding, bad parameters, and empty / failed / compact
folders."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from expunge.dashboard.app import create_app
from expunge.harness.compact import export
from expunge.harness.results import ResultStore
from expunge.harness.rules import GridRules, seed_parity
from expunge.harness.tables import tolerances
from expunge.record import RunRecord
from expunge.store import ArtifactStore


def runs(client: Any) -> list[dict[str, Any]]:
    res = client.get("/api/runs")
    assert res.status_code == 200
    return res.json()["rows"]


def by(client: Any, method: str, request: str = "class:3") -> dict[str, Any]:
    return next(r for r in runs(client) if r["method"] == method and r["request"] == request)


def test_screening_rows_take_their_verdicts_from_the_harness_rules(client: Any, bench: tuple[Path, Path]) -> None:
    rows = runs(client)
    assert len(rows) == 4  # class:3 × 2 methods + 2 sequential steps
    with ResultStore(bench[0], create=False) as rs:
        recs = [RunRecord.from_json(d) for d in rs.records()]
    rules = GridRules(recs)
    for row in rows:
        rec = next(r for r in recs if r.label == row["label"] and r.forget == row["forget"])
        assert row["speed_up"] == pytest.approx(rules.speed_up(rec))
        assert row["gaps"]["forget_acc"] == pytest.approx(rec.metrics["forget_acc"] - rec.retrain["forget_acc"])
        assert row["original"]["test_acc"] == rec.original["test_acc"]
    ft = by(client, "finetune")
    class_recs = [r for r in recs if r.method == "finetune" and r.forget == "class:3"]
    assert ft["parity"].startswith(seed_parity(class_recs, tolerances("mia_loss_auc")).label)
    seq = [r for r in rows if r["request"].startswith("sequential")]
    assert sorted(r["step"] for r in seq) == [0, 1] and {r["steps"] for r in seq} == {2}


def test_classwise_is_the_accuracy_of_the_stored_model_per_class(client: Any) -> None:
    ref = by(client, "finetune")["id"]
    a = client.get(f"/api/models/{ref}/classwise").json()
    r = client.get(f"/api/models/{ref}:retrain/classwise").json()
    assert a["forget_classes"] == [3] and len(a["test"]) == 10
    assert r["forget"][3] is not None and all(v is None for i, v in enumerate(r["forget"]) if i != 3)
    # the Retrain never saw class 3: it cannot predict it (its train accuracy there is that of its forget set)
    assert r["train"][3] == pytest.approx(r["forget"][3]) and r["forget"][3] < 0.5
    assert sum(a["n_test"]) == 450 and sum(a["n_train"]) == 1347


def test_prediction_matrix_rows_are_label_distributions(client: Any) -> None:
    ref = by(client, "neggrad_plus")["id"]
    p = client.get(f"/api/models/{ref}/predictions", params={"split": "forget"}).json()
    share = np.asarray(p["share"])
    assert share[3].sum() == pytest.approx(1.0) and share[[i for i in range(10) if i != 3]].sum() == 0
    assert all(c is None or 0 < c <= 1 for row in p["confidence"] for c in row)


def test_attack_view_gives_both_models_strategies_and_exposed_images(client: Any) -> None:
    a, b = by(client, "finetune")["id"], by(client, "neggrad_plus")["id"]
    d = client.get("/api/attack", params={"a": str(a), "b": f"{a}:original", "feature": "confidence",
                                          "threshold": 0.5}).json()
    assert d["member_if"] == "above" and set(d["models"]) == {"A", "B"}
    orig = d["models"]["B"]
    assert orig["n_forget"] == len(orig["forget_values"]) > 0 and orig["n_test"] == 450
    assert 0.5 <= orig["max_success"]["accuracy"] <= 1 and orig["custom"]["threshold"] == 0.5
    assert set(orig["tpr_at_fpr"]) == {"0.01", "0.001"} and orig["tpr_at_fpr"]["0.001"] is None  # 450 < 1000 tests
    img = orig["exposed"][0]["image"]
    assert (img["height"], img["width"], img["channels"]) == (8, 8, 1) and len(img["pixels"]) == 64
    # the most exposed example is the forget example of highest confidence under the Original
    assert orig["exposed"][0]["value"] == pytest.approx(max(v for v in orig["forget_values"]), rel=1e-3)
    loss = client.get("/api/attack", params={"a": str(a), "b": str(b)}).json()
    assert loss["feature"] == "loss" and loss["common_threshold"] is not None


def test_timeline_lists_each_step_of_a_sequential_run(client: Any) -> None:
    step = next(r for r in runs(client) if r["request"].startswith("sequential") and r["step"] == 1)
    t = client.get(f"/api/runs/{step['id']}/timeline").json()
    assert [s["step"] for s in t["steps"]] == [0, 1]
    assert t["steps"][1]["unlearned"]["forget_acc"] == step["values"]["forget_acc"]
    single = client.get(f"/api/runs/{by(client, 'finetune')['id']}/timeline").json()
    assert len(single["steps"]) == 1


def test_model_outputs_are_cached_in_the_store_once_per_model(client: Any, bench: tuple[Path, Path]) -> None:
    client.get(f"/api/models/{by(client, 'finetune')['id']}/classwise")
    folder = bench[1] / "dashboard_outputs"
    entries = sorted(folder.iterdir())
    manifest = json.loads((entries[0] / "manifest.json").read_text())
    assert manifest["forget_derived"]["parent"] == manifest["model_key"]  # a purge of its model takes it along
    client.get(f"/api/models/{by(client, 'finetune')['id']}/classwise")
    assert sorted(folder.iterdir()) == entries


TRAVERSALS = ["/static/..%2f..%2f..%2fetc%2fpasswd", "/static/%2e%2e%2fapp.py", "/static/%252e%252e%252fapp.py",
              "/static/..%252f..%252fpyproject.toml", "/static/....//....//etc/passwd", "/static/app.py",
              "/static/%2e%2e/%2e%2e/etc/passwd", "/api/models/..%2f..%2fstore/classwise",
              "/api/models/%252e%252e%252f1/classwise", "/api/models/1%2f..%2f..%2foracle/info",
              "/api/models/1:..%2foriginal/classwise", "/api/runs/..%2f1/timeline", "/../../etc/passwd",
              "/%2e%2e/%2e%2e/etc/passwd", "/static/%c0%ae%c0%ae/etc/passwd"]


@pytest.mark.parametrize("path", TRAVERSALS)
def test_no_path_reaches_a_file_outside_the_shipped_ones(client: Any, path: str) -> None:
    res = client.get(path)
    assert 400 <= res.status_code < 500, (path, res.status_code)
    assert res.headers["content-type"].startswith("application/json")
    assert "error" in res.json() and "root:" not in res.text and "Traceback" not in res.text


@pytest.mark.parametrize(("path", "params", "status", "says"), [
    ("/api/models/abc/classwise", {}, 400, "not ID, ID:original or ID:retrain"),
    ("/api/models/1:shadow/classwise", {}, 400, "not ID"),
    ("/api/models/999999/classwise", {}, 404, "is not in"),
    ("/api/models/1/predictions", {"split": "../x"}, 400, "is not one of"),
    ("/api/attack", {"a": "1"}, 400, "bad parameter"),
    ("/api/attack", {"a": "1", "b": "1", "feature": "margin"}, 400, "is not one of"),
    ("/api/attack", {"a": "1", "b": "1", "threshold": "nan"}, 400, "finite"),
    ("/api/attack", {"a": "1", "b": "1", "threshold": "x"}, 400, "bad parameter"),
    ("/api/runs/x/timeline", {}, 400, "bad parameter"),
    ("/api/runs/0/timeline", {}, 404, "is not in"),
    ("/api/nothing", {}, 404, "not found"),
])
def test_bad_parameters_are_4xx_json(client: Any, path: str, params: dict[str, str], status: int, says: str) -> None:
    res = client.get(path, params=params)
    assert res.status_code == status, res.text
    assert says in res.json()["error"]


def test_static_front_end_and_plotly_are_served_from_the_package(client: Any) -> None:
    assert "<script type=\"module\" src=\"/static/app.js\">" in client.get("/").text
    assert client.get("/static/app.js").headers["content-type"].startswith("text/javascript")
    plotly = client.get("/static/plotly.min.js")
    assert plotly.status_code == 200 and len(plotly.content) > 1_000_000 and b"http" not in plotly.content[:200]


def test_a_folder_without_weights_says_so_instead_of_drawing(bench: tuple[Path, Path], tmp_path: Path) -> None:
    """The committed compact form of the grid, served without its artifact store: the screening table and the
    timeline work, the model views answer 404 with the reason."""
    from fastapi.testclient import TestClient

    with ResultStore(bench[0], create=False) as rs:
        export(rs, tmp_path / "compact")
    with TestClient(create_app(tmp_path / "compact", store=ArtifactStore(tmp_path / "empty-store"))) as c:
        rows = runs(c)
        assert len(rows) == 4
        res = c.get(f"/api/models/{rows[0]['id']}/classwise")
        assert res.status_code == 404 and "not in the artifact store" in res.json()["error"]
        assert c.get(f"/api/runs/{rows[0]['id']}/timeline").status_code == 200
        assert c.get(f"/api/models/{rows[0]['id']}/info").json()["weights"] is False


def test_empty_and_failed_runs_give_messages(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    with ResultStore(tmp_path / "empty"):
        pass
    with TestClient(create_app(tmp_path / "empty", store=ArtifactStore(tmp_path / "s"))) as c:
        assert c.get("/api/runs").json() == {"title": "empty", "metrics": [], "rows": [], "failed": []}
    cell = {"key": "k1", "dataset": "digits", "model": "mlp", "request_label": "random:0.1", "seed": 0,
            "method": "ssd", "label": "ssd"}
    with ResultStore(tmp_path / "failed") as rs:
        rs.write_cell(cell, {"status": "failed", "error": "ssd needs a class request", "records": []})
    with TestClient(create_app(tmp_path / "failed", store=ArtifactStore(tmp_path / "s"))) as c:
        body = c.get("/api/runs").json()
        assert body["rows"] == [] and body["failed"][0]["error"] == "ssd needs a class request"
        res = c.get(f"/api/models/{body['failed'][0]['id']}/classwise")
        assert res.status_code == 404 and "failed" in res.json()["error"]


def test_serving_never_writes_the_bench_folder(bench: tuple[Path, Path], tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    out = tmp_path / "copy"
    shutil.copytree(bench[0], out)
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    with TestClient(create_app(out, store=ArtifactStore(bench[1]))) as c:
        rows = runs(c)
        c.get(f"/api/models/{rows[0]['id']}/classwise")
    after = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    assert {k: v for k, v in after.items() if k in before} == before


def test_a_purge_takes_the_cached_outputs_along(client: Any, bench: tuple[Path, Path]) -> None:
    """The outputs encode what the models learnt of the forget set: purging the run's request or its Original plans
    to delete them with the models (plans only: the store is shared by the session)."""
    from expunge.store import purge

    run = by(client, "finetune")
    for ref in (str(run["id"]), f"{run['id']}:retrain", f"{run['id']}:original"):
        assert client.get(f"/api/models/{ref}/classwise").status_code == 200
    assert client.get("/api/cka", params={"a": str(run["id"]), "b": f"{run['id']}:original"}).status_code == 200
    with ResultStore(bench[0], create=False) as rs:
        rec = next(RunRecord.from_json(d) for d in rs.records()
                   if d["method"] == "finetune" and d["forget"] == "class:3")
    store = ArtifactStore(bench[1])
    def derived(plan: Any) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        for item in plan.items:
            if item.kind.startswith("dashboard_"):
                out.setdefault(item.kind, set()).add(item.lineage["parent"])
        return out

    # the request's purge: the outputs of its unlearned models (this run's among them) and of its oracle
    on_request = derived(purge.plan_run(store, rec.unlearned_key))
    assert {rec.unlearned_key, rec.oracle_key} <= on_request["dashboard_outputs"] & on_request["dashboard_repr"]
    assert rec.original_key not in on_request["dashboard_outputs"]  # the Original is shared: it stays
    on_original = derived(purge.plan_original(store, rec.original_key))
    assert {rec.original_key, rec.unlearned_key} <= on_original["dashboard_outputs"] & on_original["dashboard_repr"]
