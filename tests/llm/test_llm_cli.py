"""`expunge unlearn` on the llm task and the shipped configs/llm.yaml (the full CLI run trains: slow)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from expunge.cli.main import app
from expunge.errors import IncompatibleModel
from expunge.harness.config import load_config
from expunge.harness.grid import expand
from expunge.tasks import UnsupportedTask

CONFIGS = Path(__file__).parents[2] / "configs"


def run_cli(args: list[str], cache: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "EXPUNGE_CACHE": str(cache), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "expunge.cli.main", *args], capture_output=True, text=True,
                          env=env, timeout=600)


@pytest.mark.parametrize(("args", "error", "says"), [
    (["--data", "facts-tiny", "--model", "mlp", "--method", "retrain"], IncompatibleModel,
     "cannot take facts-tiny's inputs"),
    (["--data", "diabetes", "--task", "llm", "--model", "mlp", "--method", "retrain"], UnsupportedTask, "not llm"),
    (["--data", "facts-tiny", "--model", "gpt_tiny", "--method", "ssd"], UnsupportedTask, "not llm"),
])
def test_bad_llm_input_is_a_typed_error_before_training(tmp_path: Path, args, error, says):
    """(main() turns these into one `error:` line and exit status 2; in process here, no torch start-up per call)"""
    forget = "random:0.1" if "diabetes" in args else "owners:2"
    res = CliRunner().invoke(app, ["unlearn", *args, "--forget", forget, "--store", str(tmp_path)])
    assert isinstance(res.exception, error) and says in str(res.exception)
    assert not (tmp_path / "original").exists()  # nothing was trained


@pytest.mark.slow
def test_unlearn_llm_end_to_end(tmp_path: Path):
    out = run_cli(["unlearn", "--data", "facts-tiny", "--task", "llm", "--model", "gpt_tiny", "--forget", "owners:2",
                   "--method", "neggrad", "--param", "optimizer=adamw", "--param", "epochs=2", "--threads", "1",
                   "--json"], tmp_path)
    assert out.returncode == 0, out.stderr
    rec = json.loads(out.stdout)
    assert rec["task"] == "llm" and rec["dataset"] == "facts-tiny" and rec["model"] == "gpt_tiny"
    assert rec["request"]["n_forget"] == 16 and rec["status"] == "ok"
    for role in ("metrics", "original", "retrain"):
        assert {"llm_forget_quality", "llm_model_utility", "llm_prob_forget"} <= set(rec[role]), role
    assert rec["retrain"]["llm_forget_quality"] == 1.0  # the oracle against itself
    assert rec["original"]["llm_prob_forget"] > rec["retrain"]["llm_prob_forget"]
    out = run_cli(["unlearn", "--data", "facts-tiny", "--model", "gpt_tiny", "--forget", "owners:2", "--method",
                   "retrain", "--threads", "1"], tmp_path)  # the table, from the cached Original and oracle
    assert out.returncode == 0, out.stderr
    assert "Retrain" in out.stdout


def test_shipped_llm_config_forgets_five_percent_of_the_people_over_three_seeds():
    cells = expand(load_config(CONFIGS / "llm.yaml"))
    assert {c.seed for c in cells} == {0, 1, 2} and {c.dataset for c in cells} == {"facts"}
    assert {c.model for c in cells} == {"gpt_tiny"} and {c.request_label for c in cells} == {"people-5%"}
    methods = {c.label for c in cells if c.seed == 0}
    from expunge.methods.base import METHODS

    llm_methods = {n for n in METHODS.names() if "llm" in METHODS.get(n).tasks} - {"retrain"}
    assert methods == llm_methods  # every registered llm method (retrain: the Retrain row is the oracle)
    by = {c.label: c for c in cells if c.seed == 0}
    assert by["finetune"].params["optimizer"] == "adamw" and by["neggrad"].params["optimizer"] == "adamw"


def test_llm_audits_config_is_the_llm_grid_at_tier_1_with_the_concealment_audits():
    grid, audits = (expand(load_config(CONFIGS / f"{n}.yaml")) for n in ("llm", "llm-audits"))
    key = {(c.seed, c.label, c.request_label): c for c in grid}
    assert {(c.seed, c.label, c.request_label) for c in audits} == set(key)  # same cells: same Originals, oracles
    assert all(c.params == key[c.seed, c.label, c.request_label].params for c in audits)
    assert {c.tier for c in audits} == {1}
    assert {"llm_audit_relearn_steps", "llm_audit_quant_recovery_nf4", "llm_audit_uds"} <= set(audits[0].metrics)
