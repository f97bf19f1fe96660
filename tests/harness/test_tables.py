"""The markdown benchmark page (expunge.harness.tables, rules from expunge.harness.rules): parity per seed, which
MIA a scenario is judged on, the direction of a miss, like-for-like speed-ups and the oracle-noise warning, on
synthetic records with known answers; and the committed pages are exactly what the committed results generate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from expunge.harness.compact import open_results
from expunge.harness.results import ResultStore
from expunge.harness.tables import instance_note, markdown
from expunge.record import RunRecord

RESULTS = Path(__file__).parents[2] / "benchmarks" / "results"
ORIGINAL = {"forget_acc": 1.0, "retain_acc": 0.99, "test_acc": 0.92, "mia_loss_auc": 0.60,
            "mia_loss_auc_matched": 0.60}
RETRAIN = {"forget_acc": 0.90, "retain_acc": 0.98, "test_acc": 0.91, "mia_loss_auc": 0.50,
           "mia_loss_auc_matched": 0.50}


def record(method: str, seed: int = 0, scenario: str = "random", *, platform: str = "img-a", oracle_s: float = 100.0,
           ratio: float = 0.1, oracle_key: str | None = None, retrain: dict[str, float] | None = None,
           **metrics: float | None) -> dict[str, Any]:
    """A run whose method metrics are RETRAIN's, overridden by ``metrics``; gaps are |method − retrain|."""
    ret = dict(RETRAIN if retrain is None else retrain)
    got: dict[str, float | None] = {**ret, **metrics}
    env = {"torch_threads": 2, "platform": platform, "torch": "2.13.0+cpu", "cpu_count": 2}
    return {
        "seed": seed, "scenario": scenario, "method": method, "label": method, "params_source": "paper defaults",
        "forget": "random:0.1", "params": {}, "dataset": "d", "dataset_fingerprint": "fp", "model": "n",
        "time_s": ratio * oracle_s, "env": env, "oracle_env": env,
        "oracle_key": oracle_key or f"oracle-{seed}-{scenario}-{platform}",
        "request": {"n_retain": 900, "n_forget": 100}, "retrain_time_s": oracle_s, "time_ratio_to_retrain": ratio,
        "original": dict(ORIGINAL), "retrain": ret, "metrics": got,
        "gap_to_retrain": {k: None if v is None else abs(v - ret[k]) for k, v in got.items()},
        "peak_delta_bytes": 2**20, "memory_probe": "hwm, release-first",
    }


def summarise(tmp_path: Path, records: list[dict[str, Any]], failed: dict[tuple[str, str], str] | None = None) -> str:
    """The page of a store holding ``records`` (one cell each) and ``failed`` cells ((scenario, method) -> error)."""
    with ResultStore(tmp_path / f"store{len(list(tmp_path.iterdir()))}") as rs:
        for i, r in enumerate(records):
            rs.write_cell(cell(r["scenario"], r["method"], r["seed"], i),
                          {"status": "ok", "records": [RunRecord.from_json(r).to_json()]})
        for (scenario, method), error in (failed or {}).items():
            rs.write_cell(cell(scenario, method, 0, -1), {"status": "failed", "error": error, "records": []})
        return markdown(rs, title="t")


def cell(scenario: str, method: str, seed: int, i: int) -> dict[str, Any]:
    return {"key": f"{scenario}/{method}/{seed}/{i}", "dataset": "d", "model": "n", "seed": seed, "method": method,
            "label": method, "request": {"scenario": scenario, "params": {}}, "request_label": scenario, "tier": 0,
            "metrics": None}


def section(table: str, name: str) -> str:
    return table.split(f"## {name}\n", 1)[1].split("\n## ", 1)[0]


def row(table: str, method: str, scenario: str = "random") -> str:
    return next(line for line in section(table, scenario).splitlines() if line.startswith(f"| {method} |"))


def test_parity_is_judged_per_seed_never_on_the_mean(tmp_path: Path) -> None:
    # seed 0 misses test by 0.03, seed 1 is exact: the mean gap 0.015 is within 0.02, but 1/2 seeds are at parity
    # (the Original is within 0.02 of the Retrain on test accuracy: that criterion has no power, listed, not met)
    table = summarise(tmp_path, [record("m", 0, test_acc=RETRAIN["test_acc"] - 0.03), record("m", 1)])
    assert row(table, "m").endswith("| no (1/2 seeds): test_acc missed on 1/2 seeds |")
    both = summarise(tmp_path, [record("m", 0), record("m", 1)])
    assert row(both, "m").endswith("| **yes** (2/2 seeds; no power: test_acc 2/2) |")
    assert "- random: `m` (2/2 seeds; no power: test_acc 2/2) at 10.0× speed-up, 10.0× amortised" in both


def test_a_miss_names_its_criterion_and_direction(tmp_path: Path) -> None:
    table = summarise(tmp_path, [record("nothing", forget_acc=1.0),  # still at the Original's forget accuracy
                                 record("under", forget_acc=0.95),
                                 record("over", forget_acc=0.50, test_acc=0.85)])
    assert row(table, "nothing").endswith("| no (0/1 seeds): forgets nothing |")
    assert row(table, "under").endswith("| no (0/1 seeds): under-forgets (+0.050) |")
    assert row(table, "over").endswith("| no (0/1 seeds): over-forgets (-0.400), test -0.060 |")


def test_sub_class_parity_reads_the_matched_mia(tmp_path: Path) -> None:
    # the whole-test attack is off by 0.3, the matched one by 0.01: sub-class is judged on the matched one only
    kwargs = {"mia_loss_auc": RETRAIN["mia_loss_auc"] + 0.3, "mia_loss_auc_matched": RETRAIN["mia_loss_auc"] + 0.01}
    table = summarise(tmp_path, [record("m", scenario="sub-class", **kwargs), record("m", scenario="random", **kwargs)])
    assert row(table, "m", "sub-class").endswith("| **yes** (1/1 seeds; no power: test_acc 1/1) |")
    assert "`mia_loss_auc_matched`" in section(table, "sub-class")
    assert row(table, "m", "random").endswith("| no (0/1 seeds): MIA AUC +0.300 |")


def test_seeds_missing_on_opposite_sides_are_not_parity(tmp_path: Path) -> None:
    recs = [record("m", 0, forget_acc=RETRAIN["forget_acc"] + 0.04),
            record("m", 1, forget_acc=RETRAIN["forget_acc"] - 0.04)]
    assert row(summarise(tmp_path, recs), "m").endswith("| no (0/2 seeds): forget_acc missed on 2/2 seeds |")


def test_a_collapsed_run_blocks_parity(tmp_path: Path) -> None:
    bad = record("m", 1, **dict.fromkeys(RETRAIN))
    line = row(summarise(tmp_path, [record("m", 0), bad]), "m")
    assert "collapsed (non-finite outputs) in 1 of 2 runs" in line and "**yes**" not in line


def test_speed_up_is_against_the_fastest_equal_oracle_on_the_methods_image(tmp_path: Path) -> None:
    fast = record("fast", 0, oracle_s=80.0, ratio=0.5)    # its own oracle was the least loaded: 40 s method
    slow = record("slow", 1, oracle_s=100.0, ratio=0.1)   # 10 s method; its oracle shared the machine
    other = record("other", 2, platform="img-b", oracle_s=300.0, ratio=0.1)  # another image: only its own oracle
    table = summarise(tmp_path, [fast, slow, other])
    assert "| 2.0× |" in row(table, "fast") and "| 8.0× |" in row(table, "slow")
    assert "| 10.0× |" in row(table, "other")
    assert "| 1 | random | 100 | 2 | 2 | 80 | 1 |" in table  # timing conditions: seed 1's reference is seed 0's oracle


def test_a_failed_cell_is_a_not_applicable_row(tmp_path: Path) -> None:
    table = summarise(tmp_path, [record("m")], failed={("random", "svd_class"): "svd_class forgets whole classes"})
    assert row(table, "svd_class").startswith("| svd_class | | not applicable: svd_class forgets whole classes |")


def test_two_trainings_of_one_seed_are_reported_as_the_noise_floor() -> None:
    second = {**RETRAIN, "forget_acc": 0.87, "mia_loss_auc": 0.56}
    recs = [RunRecord.from_json(r) for r in (record("a", 0, oracle_key="k1"),
                                             record("b", 0, oracle_key="k2", retrain=second))]
    note = " ".join(instance_note(recs))
    assert "Seed(s) [0]" in note
    assert "0.030 forget accuracy, 0.000 test accuracy and 0.060 MIA AUC" in note
    assert instance_note([RunRecord.from_json(record("a", 0)), RunRecord.from_json(record("b", 0))]) == []


@pytest.mark.parametrize("grid", ["fashion-zoo", "digits-zoo", "foundation", "digits", "recsys",
                                  "foundation-seed0", "regression", "graph", "digits-random-forgetting",
                                  "federated", "continual", "fashion-random-forgetting",
                                  "fashion-random-forgetting-epsilon"])
def test_committed_page_is_generated_from_the_committed_results(grid: str) -> None:
    """benchmarks/results/GRID.md is `expunge results benchmarks/results/GRID --format markdown`: no hand edits, no
    stale page."""
    with open_results(RESULTS / grid) as rs:
        assert markdown(rs) == (RESULTS / f"{grid}.md").read_text()


def test_a_grid_of_several_models_gets_a_table_per_model(tmp_path: Path) -> None:
    """Runs of two models on one request have different Originals and oracles: one table each, titled by
    dataset/model (a single-model grid keeps the request label alone)."""
    with ResultStore(tmp_path / "two-models") as rs:
        for i, model in enumerate(("m1", "m2")):
            r = {**record("a", 0), "model": model}
            rs.write_cell({**cell("random", "a", 0, i), "model": model},
                          {"status": "ok", "records": [RunRecord.from_json(r).to_json()]})
        page = markdown(rs, title="t")
    assert "## d/m1 · random\n" in page and "## d/m2 · random\n" in page and "## random\n" not in page
    assert "## random\n" in summarise(tmp_path, [record("a", 0)])


def test_the_command_writes_the_page() -> None:
    import subprocess
    import sys

    res = subprocess.run([sys.executable, "-m", "expunge.cli.main", "results", str(RESULTS / "foundation"), "--format",
                          "markdown"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert res.stdout == (RESULTS / "foundation.md").read_text()


def test_the_html_report_reads_a_committed_folder() -> None:
    from expunge.harness.report import load_groups

    groups, counts = load_groups(RESULTS / "foundation")
    assert counts == {"runs": 36, "records": 36, "failed": 0} and len(groups) == 12  # 6 methods × 2 requests


def test_peak_memory_is_exact_only_for_a_release_first_probe() -> None:
    """A delta is shown as measured when the run notes the exact probe (the monitor writes it into the record's
    notes; retired scripts stamped it beside the record), as a lower bound otherwise."""
    from expunge.harness.tables import peak_delta_mb

    def rec(**where: Any) -> RunRecord:
        doc = {k: v for k, v in record("ssd").items() if k != "memory_probe"}
        return RunRecord.from_json({**doc, **where, "peak_delta_bytes": 3 * 2**20})

    assert peak_delta_mb([rec(notes={"memory_probe": "hwm, release-first"})]) == "3.0"
    assert peak_delta_mb([rec(memory_probe="hwm, release-first")]) == "3.0"
    assert peak_delta_mb([rec(notes={"memory_probe": "hwm"})]) == "≥ 3"
    assert peak_delta_mb([rec()]) == "≥ 3"


def test_a_method_that_needs_the_retrain_claims_no_speed_up() -> None:
    """oracle_matching fine-tunes toward the oracle itself: its rows say so and show no speed-up, and it is never
    listed among the fastest at parity."""
    page = (RESULTS / "digits-random-forgetting.md").read_text()
    rows = [line for line in page.splitlines() if line.startswith("| oracle_matching")]
    assert len(rows) == 2 and all("(not deployable)" in r and "— (needs the retrain)" in r for r in rows)
    fastest = page.split("## Retrain parity", 1)[1]
    assert "oracle_matching" not in fastest
