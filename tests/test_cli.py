"""The CLI contract: one JSON record from `expunge unlearn --json`, one-line errors for user mistakes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from expunge.tasks import get_task

REQUIRED_METRICS = set(get_task("classification").headline_metrics)  # what every record and report leads with


def run_cli(args: list[str], cache: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "EXPUNGE_CACHE": str(cache), "OMP_NUM_THREADS": "1"}  # tiny models: 1 thread is fastest
    return subprocess.run([sys.executable, "-m", "expunge.cli.main", *args], capture_output=True, text=True,
                          env=env, timeout=300)


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cli-cache")


def test_unlearn_json_contract(cache: Path):
    out = run_cli(["unlearn", "--data", "digits", "--model", "mlp", "--forget", "class:3", "--method", "ssd",
                   "--seed", "0", "--param", "alpha=10", "--json"], cache)
    assert out.returncode == 0, out.stderr
    rec = json.loads(out.stdout)  # exactly one JSON document on stdout
    for key in ("method", "dataset", "model", "forget", "seed", "metrics", "original", "retrain", "time_s",
                "retrain_time_s"):
        assert key in rec, key
    assert rec["method"] == "ssd" and rec["dataset"] == "digits" and rec["model"] == "mlp"
    assert rec["forget"] == "class:3" and rec["seed"] == 0 and rec["params"]["alpha"] == 10.0
    for role in ("metrics", "original", "retrain"):
        assert set(rec[role]) >= REQUIRED_METRICS, role
    assert rec["retrain"]["forget_acc"] == 0.0 and rec["retrain"]["js_to_retrain_forget"] == 0.0
    assert rec["original"]["forget_acc"] > 0.9
    assert 0 < rec["time_s"] < rec["retrain_time_s"]
    # second call: original and oracle come from the cache
    again = json.loads(run_cli(["unlearn", "--data", "digits", "--model", "mlp", "--forget", "class:3", "--method",
                                "finetune", "--param", "epochs=1", "--json"], cache).stdout)
    assert again["cache"]["original_hit"] and again["cache"]["oracle_hit"]
    # the cached oracle's training environment is recorded, so it can be a speed-up reference (rules.oracle_env)
    assert "oracle_env" not in rec and again["oracle_env"]["platform"] == rec["env"]["platform"]
    assert again["oracle_env"]["torch_threads"] == again["cache"]["threads"]["oracle"]
    one = json.loads(run_cli(["unlearn", "--data", "digits", "--model", "mlp", "--forget", "class:3", "--method",
                              "finetune", "--param", "epochs=1", "--threads", "1", "--json"], cache).stdout)
    assert one["env"]["torch_threads"] == 1  # --threads reaches torch (and the record says so)


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["unlearn", "--forget", "class:42", "--model", "mlp"], "class 42 does not exist"),
        (["unlearn", "--forget", "random:2", "--model", "mlp"], "fraction must be in (0, 1)"),
        (["unlearn", "--method", "negrad"], "Did you mean 'neggrad'"),
        (["unlearn", "--method", "ssd", "--param", "alpha=-1"], "'alpha' parameter of ssd"),
        (["unlearn", "--method", "ssd", "--param", "alhpa=3"], "Did you mean alpha"),
        (["unlearn", "--method", "ssd", "--param", "alpha"], "NAME=VALUE"),
        (["unlearn", "--data", "fashion-mnist", "--data-dir", "/nonexistent"], "dataset-fashion-mnist"),
    ],
)
def test_user_errors_are_one_line(cache: Path, args: list[str], fragment: str):
    out = run_cli(args, cache)
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    lines = [x for x in out.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], out.stderr


def test_methods_and_metrics_listings(cache: Path):
    methods = json.loads(run_cli(["methods", "--json"], cache).stdout)
    ssd = next(m for m in methods if m["name"] == "ssd")
    assert ssd["access"] == "forget+train_stats" and {"alpha", "lam"} <= {p["name"] for p in ssd["params"]}
    metrics = json.loads(run_cli(["metrics", "--json"], cache).stdout)
    assert {m["name"] for m in metrics} >= REQUIRED_METRICS
    assert all(m["definition"] for m in metrics)
    text = run_cli(["methods"], cache).stdout
    assert "neggrad_plus" in text and "defaults:" in text


def test_train_command(cache: Path):
    out = run_cli(["train", "--data", "digits", "--model", "mlp", "--json"], cache)
    info = json.loads(out.stdout)
    assert info["cache_hit"] is True  # trained by the unlearn test above


@pytest.mark.parametrize("method", ["finetune", "analytic_head"])  # analytic_head: its result carries state buffers
def test_evaluate_existing_run(cache: Path, method: str):
    params = ["--param", "epochs=1"] if method == "finetune" else []
    out = run_cli(["unlearn", "--model", "mlp", "--forget", "random:0.1", "--method", method, *params, "--json"],
                  cache)
    rec = json.loads(out.stdout)
    ev = run_cli(["evaluate", rec["unlearned_key"], "--tier", "0", "--json"], cache)
    assert ev.returncode == 0, ev.stderr
    res = json.loads(ev.stdout)
    for name in REQUIRED_METRICS:
        assert res["metrics"][name] == pytest.approx(rec["metrics"][name], abs=1e-9), name
        assert res["retrain"][name] == pytest.approx(rec["retrain"][name], abs=1e-9), name
    assert set(res["power"].values()) <= {"ok", "no power", None}
    only = json.loads(run_cli(["evaluate", rec["unlearned_key"], "--metrics", "forget_acc", "--json"], cache).stdout)
    assert set(only["metrics"]) == {"forget_acc"}
    bad = run_cli(["evaluate", "nope"], cache)
    assert bad.returncode == 2 and "no unlearned run 'nope'" in bad.stderr


def test_aggregate_over_seeds(cache: Path, tmp_path: Path):
    files = []
    for seed in (0, 1):
        out = run_cli(["unlearn", "--data", "digits", "--model", "mlp", "--forget", "class:3", "--method", "ssd",
                       "--seed", str(seed), "--param", "alpha=10", "--json"], cache)
        assert out.returncode == 0, out.stderr
        files.append(tmp_path / f"seed{seed}.json")
        files[-1].write_text(out.stdout)
    recs = [json.loads(f.read_text()) for f in files]
    out = run_cli(["aggregate", *map(str, files), "--json"], cache)
    assert out.returncode == 0, out.stderr
    (group,) = json.loads(out.stdout)  # same method, params and request: one group of two seeds
    assert group["n_seeds"] == 2 and group["seeds"] == [0, 1] and group["method"] == "ssd"
    for section in ("metrics", "original", "retrain"):
        agg = group[section]["test_acc"]
        values = [r[section]["test_acc"] for r in recs]
        assert agg["n"] == 2 and agg["mean"] == pytest.approx(sum(values) / 2)
        assert agg["low"] <= min(values) and agg["high"] >= max(values)  # the t-interval with 1 dof is wide
    text = run_cli(["aggregate", *map(str, files)], cache)
    assert text.returncode == 0 and "2 seed(s) [0, 1]" in text.stdout and "±" in text.stdout
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    err = run_cli(["aggregate", str(bad)], cache)
    assert err.returncode == 2 and err.stderr.startswith("error:") and "bad.json" in err.stderr
