"""The method-zoo table's verdicts (benchmarks/method_zoo.py, rules from expunge.harness.rules): parity per seed,
which MIA a scenario is judged on, the direction of a miss, like-for-like speed-ups and the oracle-noise warning, on
synthetic records with known answers. The committed tables are the claims of the closing notes, so the logic that
writes them is tested here."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "method_zoo.py"


@pytest.fixture(scope="module")
def zoo() -> Any:
    spec = importlib.util.spec_from_file_location("method_zoo_under_test", _PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses / typing resolve the module by name
    spec.loader.exec_module(module)
    return module


ORIGINAL = {"forget_acc": 1.0, "retain_acc": 0.99, "test_acc": 0.92, "mia_loss_auc": 0.60,
            "mia_loss_auc_matched": 0.60}
RETRAIN = {"forget_acc": 0.90, "retain_acc": 0.98, "test_acc": 0.91, "mia_loss_auc": 0.50,
           "mia_loss_auc_matched": 0.50}


def record(method: str, seed: int = 0, scenario: str = "random", *, platform: str = "img-a", oracle_s: float = 100.0,
           ratio: float = 0.1, oracle_key: str | None = None, retrain: dict[str, float] | None = None,
           **metrics: float | None) -> dict[str, Any]:
    """A zoo row whose method metrics are RETRAIN's, overridden by ``metrics``; gaps are |method − retrain|."""
    ret = dict(RETRAIN if retrain is None else retrain)
    got: dict[str, float | None] = {**ret, **metrics}
    env = {"torch_threads": 2, "platform": platform, "torch": "2.13.0+cpu", "cpu_count": 2}
    return {
        "seed": seed, "scenario": scenario, "method": method, "preset": "paper defaults", "forget": "random:0.1",
        "params": {}, "dataset": "d", "dataset_fingerprint": "fp", "model": "n", "time_s": ratio * oracle_s,
        "env": env, "oracle_env": env, "oracle_key": oracle_key or f"oracle-{seed}-{scenario}-{platform}",
        "request": {"n_retain": 900, "n_forget": 100}, "retrain_time_s": oracle_s, "time_ratio_to_retrain": ratio,
        "original": dict(ORIGINAL), "retrain": ret, "metrics": got,
        "gap_to_retrain": {k: None if v is None else abs(v - ret[k]) for k, v in got.items()},
        "peak_delta_bytes": 2**20, "memory_probe": "hwm, release-first",
    }


def section(table: str, name: str) -> str:
    return table.split(f"## {name}\n", 1)[1].split("\n## ", 1)[0]


def row(table: str, method: str, scenario: str = "random") -> str:
    return next(line for line in section(table, scenario).splitlines() if line.startswith(f"| {method} |"))


def test_parity_is_judged_per_seed_never_on_the_mean(zoo: Any) -> None:
    # seed 0 misses test by 0.03, seed 1 is exact: the mean gap 0.015 is within 0.02, but 1/2 seeds are at parity
    # (the Original is within 0.02 of the Retrain on test accuracy: that criterion has no power, listed, not met)
    recs = [record("m", 0, test_acc=RETRAIN["test_acc"] - 0.03), record("m", 1)]
    table = zoo.summarise(recs, "d", "n")
    assert row(table, "m").endswith("| no (1/2 seeds): test_acc missed on 1/2 seeds |")
    both = zoo.summarise([record("m", 0), record("m", 1)], "d", "n")
    assert row(both, "m").endswith("| **yes** (2/2 seeds; no power: test_acc 2/2) |")
    assert "- random: `m` (2/2 seeds; no power: test_acc 2/2) at 10.0× speed-up, 10.0× amortised" in both


def test_a_miss_names_its_criterion_and_direction(zoo: Any) -> None:
    recs = [record("nothing", forget_acc=1.0),  # still at the Original's forget accuracy
            record("under", forget_acc=0.95),
            record("over", forget_acc=0.50, test_acc=0.85)]
    table = zoo.summarise(recs, "d", "n")
    assert row(table, "nothing").endswith("| no (0/1 seeds): forgets nothing |")
    assert row(table, "under").endswith("| no (0/1 seeds): under-forgets (+0.050) |")
    assert row(table, "over").endswith("| no (0/1 seeds): over-forgets (-0.400), test -0.060 |")


def test_sub_class_parity_reads_the_matched_mia(zoo: Any) -> None:
    # the whole-test attack is off by 0.3, the matched one by 0.01: sub-class is judged on the matched one only
    kwargs = {"mia_loss_auc": RETRAIN["mia_loss_auc"] + 0.3, "mia_loss_auc_matched": RETRAIN["mia_loss_auc"] + 0.01}
    recs = [record("m", scenario="sub-class", **kwargs), record("m", scenario="random", **kwargs)]
    table = zoo.summarise(recs, "d", "n")
    assert row(table, "m", "sub-class").endswith("| **yes** (1/1 seeds; no power: test_acc 1/1) |")
    assert "`mia_loss_auc_matched`" in section(table, "sub-class")
    assert row(table, "m", "random").endswith("| no (0/1 seeds): MIA AUC +0.300 |")


def test_seeds_missing_on_opposite_sides_are_not_parity(zoo: Any) -> None:
    recs = [record("m", 0, forget_acc=RETRAIN["forget_acc"] + 0.04),
            record("m", 1, forget_acc=RETRAIN["forget_acc"] - 0.04)]
    assert row(zoo.summarise(recs, "d", "n"), "m").endswith("| no (0/2 seeds): forget_acc missed on 2/2 seeds |")


def test_a_collapsed_run_blocks_parity(zoo: Any) -> None:
    bad = record("m", 1, **dict.fromkeys(RETRAIN))
    line = row(zoo.summarise([record("m", 0), bad], "d", "n"), "m")
    assert "collapsed (non-finite outputs) in 1 of 2 runs" in line and "**yes**" not in line


def test_speed_up_is_against_the_fastest_equal_oracle_on_the_methods_image(zoo: Any) -> None:
    fast = record("fast", 0, oracle_s=80.0, ratio=0.5)    # its own oracle was the least loaded: 40 s method
    slow = record("slow", 1, oracle_s=100.0, ratio=0.1)   # 10 s method; its oracle shared the machine
    other = record("other", 2, platform="img-b", oracle_s=300.0, ratio=0.1)  # another image: only its own oracle
    table = zoo.summarise([fast, slow, other], "d", "n")
    assert "| 2.0× |" in row(table, "fast") and "| 8.0× |" in row(table, "slow")
    assert "| 10.0× |" in row(table, "other")


def test_two_trainings_of_one_seed_are_reported_as_the_noise_floor(zoo: Any) -> None:
    second = {**RETRAIN, "forget_acc": 0.87, "mia_loss_auc": 0.56}
    recs = [record("a", 0, oracle_key="k1"), record("b", 0, oracle_key="k2", retrain=second)]
    note = " ".join(zoo.instance_note(recs))
    assert "Seed(s) [0]" in note
    assert "0.030 forget accuracy, 0.000 test accuracy and 0.060 MIA AUC" in note
    assert zoo.instance_note([record("a", 0), record("b", 0)]) == []
