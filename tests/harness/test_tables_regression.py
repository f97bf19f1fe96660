"""The benchmark page of a regression grid: the task's columns (forget / retain / test MSE), its tolerances, the
direction of a miss read on an error (lower = remembered), the second table of the task's page metrics, and one
section per dataset when a grid has several."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from expunge.harness.results import ResultStore
from expunge.harness.tables import markdown
from expunge.record import RunRecord

ORIGINAL = {"forget_mse": 0.20, "retain_mse": 0.15, "test_mse": 0.70, "mia_loss_auc": 0.70, "ain": 0.0,
            "relearn_steps": 0.0, "mse_to_retrain_forget": 0.4}
RETRAIN = {"forget_mse": 0.80, "retain_mse": 0.14, "test_mse": 0.68, "mia_loss_auc": 0.50, "ain": 1.0,
           "relearn_steps": 12.0, "mse_to_retrain_forget": 0.0}


def record(method: str, **metrics: float) -> dict[str, Any]:
    got = {**RETRAIN, **metrics}
    env = {"torch_threads": 1, "platform": "img", "torch": "2.13.0+cpu", "cpu_count": 2}
    return {"seed": 0, "scenario": "random", "method": method, "label": method, "params_source": "paper defaults",
            "forget": "random:0.1", "params": {}, "dataset": "diabetes", "dataset_fingerprint": "fp", "model": "mlp",
            "task": "regression", "time_s": 1.0, "env": env, "oracle_env": env, "oracle_key": "o",
            "request": {"n_retain": 300, "n_forget": 33}, "retrain_time_s": 2.0, "time_ratio_to_retrain": 0.5,
            "original": dict(ORIGINAL), "retrain": dict(RETRAIN), "metrics": got,
            "gap_to_retrain": {k: abs(v - RETRAIN[k]) for k, v in got.items()}}


def page(tmp_path: Path, records: list[dict[str, Any]]) -> str:
    with ResultStore(tmp_path / "store") as rs:
        for i, r in enumerate(records):
            rs.write_cell({"key": f"k{i}", "dataset": r["dataset"], "model": "mlp", "seed": 0, "method": r["method"],
                           "label": r["method"], "request": {"forget": "random:0.1"}, "request_label": "random:0.1",
                           "tier": 1, "metrics": None}, {"status": "ok", "records": [RunRecord.from_json(r).to_json()]})
        return markdown(rs, title="t")


def row(table: str, method: str) -> str:
    return next(line for line in table.splitlines() if line.startswith(f"| {method} |"))


def test_columns_tolerances_and_miss_directions(tmp_path: Path) -> None:
    table = page(tmp_path, [record("nothing", forget_mse=0.21), record("under", forget_mse=0.40),
                            record("over", forget_mse=1.50), record("good", forget_mse=0.75)])
    assert ("regression task: the forget / retain / test / MIA AUC columns are `forget_mse`, `retain_mse`, `test_mse`, "
            "`mia_loss_auc`; parity criteria (the task's): |Δforget_mse| ≤ 0.15, |Δtest_mse| ≤ 0.1, "
            "|Δmia_loss_auc| ≤ 0.1.") in table
    assert row(table, "Original").startswith("| Original | | 0.200 | 0.150 | 0.700 | 0.700 |")
    assert row(table, "nothing").endswith("| no (0/1 seeds): forgets nothing |")
    assert row(table, "under").endswith("| no (0/1 seeds): under-forgets (-0.400) |")  # error too low: remembers
    assert row(table, "over").endswith("| no (0/1 seeds): over-forgets (+0.700) |")
    assert "**yes**" in row(table, "good")


def test_the_task_s_page_metrics_get_their_own_table(tmp_path: Path) -> None:
    n = record("n")
    n["metrics"]["forget_mae"] = 0.3
    table = page(tmp_path, [record("m", ain=0.5, relearn_steps=6.0), n])
    # no run has test_mae or the DRU attack: no column; forget_mae only "n" has: '—' for the others
    assert "| method | mse_to_retrain_forget | forget_mae | relearn_steps | ain |" in table
    assert "| m | 0.000 | — | 6.000 | 0.500 |" in table
    assert "| n | 0.000 | 0.300 | 12.000 | 1.000 |" in table
    assert "| Retrain | 0.000 | — | 12.000 | 1.000 |" in table


def test_a_grid_of_several_datasets_gets_one_section_per_dataset_and_request(tmp_path: Path) -> None:
    """Requests of one label on two datasets are different forget sets with different oracles: never averaged."""
    other = {**record("m", forget_mse=0.75), "dataset": "synthetic-regression"}
    table = page(tmp_path, [record("m", forget_mse=0.75), other])
    assert "## diabetes/mlp · random:0.1\n" in table and "## synthetic-regression/mlp · random:0.1\n" in table
    assert "\n## random:0.1\n" not in table
    single = page(tmp_path / "one", [record("m", forget_mse=0.75)])  # one dataset: sections keep the request label
    assert "\n## random:0.1\n" in single
