"""benchmarks/import_legacy.py: legacy rows of the retired scripts become cells of a result store — a sequential
stream's steps one cell in step order, an error row a failed cell, the label kept and the method its first word —
and the store holds every row."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest

from expunge.harness.results import ResultStore

_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "import_legacy.py"
ORIGIN = {"file": "benchmarks/results/x.json", "commit": "c0ffee", "script": "s", "date": "2026-12-07T00:00:00Z"}


@pytest.fixture(scope="module")
def imp() -> Any:
    spec = importlib.util.spec_from_file_location("import_legacy_under_test", _PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def row(method: str, scenario: str = "random", seed: int = 0, **extra: Any) -> dict[str, Any]:
    metrics = {"forget_acc": 0.5, "test_acc": 0.9}
    return {"method": method, "params": {"epochs": 2}, "dataset": "d", "dataset_fingerprint": "fp", "model": "n",
            "forget": "random:0.1", "request": {"n_forget": 10, "fingerprint": "f"}, "seed": seed, "scenario": scenario,
            "scenario_params": {"fraction": 0.1}, "metrics": metrics, "original": metrics, "retrain": metrics,
            "gap_to_retrain": {"forget_acc": 0.0, "test_acc": 0.0}, "preset": "paper defaults + epochs=2",
            "env": {"platform": "p"}, "created_at": f"t{extra.get('step', 0)}", **extra}


def test_rows_become_cells(imp: Any, tmp_path: Path) -> None:
    rows = [row("ssd [tuned]"), row("salun", "sequential", step=1), row("salun", "sequential", step=0),
            {"scenario": "random", "method": "unsir", "seed": 0, "error": "unsir forgets whole classes"}]
    cells = imp.cells_of(rows, ORIGIN, "d", "n")
    assert [(c["label"], c["method"], c["request_label"]) for c, _ in cells] == \
        [("ssd [tuned]", "ssd", "random"), ("salun", "salun", "sequential"), ("unsir", "unsir", "random")]
    tuned, seq, failed = (o for _, o in cells)
    assert tuned["records"][0]["label"] == "ssd [tuned]" and tuned["records"][0]["method"] == "ssd"
    assert [r["step"] for r in seq["records"]] == [0, 1]
    assert failed["status"] == "failed" and failed["finished_at"] == ORIGIN["date"]
    assert cells[0][0]["request"] == {"scenario": "random", "params": {"fraction": 0.1}}
    assert cells[0][0]["imported_from"] == ORIGIN and cells[0][0]["params_source"] == "paper defaults + epochs=2"
    assert imp.method_of("ssd:alpha=30") == "ssd"
    with ResultStore(tmp_path) as rs:
        for c, o in cells:
            rs.write_cell(c, o)
        assert len(rs.runs()) == len(rows)  # every legacy row is one stored run
        assert {r["status"] for r in rs.runs()} == {"unknown", "failed"}  # legacy rows predate the record status
