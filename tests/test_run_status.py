"""A run that unlearned nothing says so: ``RunRecord.status`` ("ok", "no change", "diverged", "unknown"), in the
verdict, in the tables and in the CLI's exit status (3). Regression: ``neggrad --param lr=1e30`` skipped every step,
returned the unchanged Original and was printed as a regular row with rc 0 (the trace only inside ``notes``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from expunge.api import evaluate, unlearn
from expunge.record import RecordSchemaError, RunRecord
from expunge.report import EXIT_NOT_UNLEARNED, markdown_table, status_lines, table_rows
from expunge.verdict import judge


def _strict(text: str):
    def refuse(constant: str):
        raise ValueError(f"non-standard JSON constant {constant}")

    return json.loads(text, parse_constant=refuse)


@pytest.fixture(scope="module")
def diverged(prepared_class3) -> RunRecord:
    record, _ = unlearn(prepared_class3, "neggrad", {"lr": 1e30}, save=False)
    return record


def test_every_step_rolled_back_is_diverged(diverged):
    assert diverged.status == "diverged" and diverged.failed
    assert "rolled back" in diverged.status_reason
    assert diverged.notes["skipped_nonfinite"] == diverged.notes["steps"] > 0  # what the old record hid in notes


def test_a_diverged_run_is_never_at_parity_and_the_table_says_so(diverged):
    verdict = judge(diverged)
    assert not verdict.at_parity and verdict.label == "diverged"
    _, rows = table_rows([diverged])
    assert rows[-1][-3] == "DIVERGED"
    assert status_lines([diverged]) == [f"neggrad: DIVERGED — {diverged.status_reason}"]
    assert "**neggrad: DIVERGED" in markdown_table([diverged])


def test_a_method_that_returns_its_input_is_no_change(prepared_class3):
    # SSD dampens parameters whose forget importance exceeds alpha x their full importance: none at alpha=1e30
    record, _ = unlearn(prepared_class3, "ssd", {"alpha": 1e30}, save=False)
    assert record.status == "no change" and "bit-identical" in record.status_reason
    assert judge(record).label == "no change" and not judge(record).at_parity


def test_an_external_model_identical_to_the_original_is_no_change(prepared_class3):
    assert evaluate(prepared_class3, prepared_class3.original.model).status == "no change"
    assert evaluate(prepared_class3, prepared_class3.oracle.model).status == "ok"


def test_a_real_unlearning_is_ok(prepared_class3):
    record, _ = unlearn(prepared_class3, "finetune", {"epochs": 1}, save=False)
    assert record.status == "ok" and record.status_reason == "" and not record.failed
    assert status_lines([record]) == []


def test_parity_metrics_do_not_rescue_a_failed_run(make_record):
    at_parity = {"metrics": {"forget_acc": 0.0, "test_acc": 0.88}, "original": {"forget_acc": 1.0, "test_acc": 0.97},
                 "retrain": {"forget_acc": 0.0, "test_acc": 0.88}}
    criteria = {"forget_acc": 0.02, "test_acc": 0.02}
    assert judge(make_record(**at_parity, status="ok"), criteria).at_parity
    assert judge(make_record(**at_parity), criteria).at_parity  # "unknown": an old record, judged on its metrics
    for status in ("no change", "diverged"):
        v = judge(make_record(**at_parity, status=status), criteria)
        assert not v.at_parity and v.label == status


def test_schema_1_records_without_status_read_as_unknown(make_record):
    doc = make_record().to_json()
    del doc["status"], doc["status_reason"]
    old = RunRecord.from_json(doc)
    assert old.status == "unknown" and not old.failed
    assert RunRecord.loads(make_record(status="diverged", status_reason="x").dumps()).status == "diverged"
    with pytest.raises(RecordSchemaError, match="status"):
        make_record(status="fine")


def test_non_finite_metrics_become_none_with_a_reason_and_json_stays_strict(make_record):
    nan = float("nan")
    r = make_record(metrics={"forget_acc": nan, "test_acc": 0.9}, retrain={"forget_acc": float("inf")},
                    gap_to_retrain={"forget_acc": nan}, notes={"noise_ce": nan, "losses": [1.0, float("-inf")]})
    assert r.metrics == {"forget_acc": None, "test_acc": 0.9} and r.retrain == {"forget_acc": None}
    assert "non-finite" in r.reasons["forget_acc"]["unlearned"] and "retrain" in r.reasons["forget_acc"]
    doc = _strict(r.dumps())  # a bare NaN would raise here
    assert doc["metrics"]["forget_acc"] is None and doc["notes"] == {"noise_ce": None, "losses": [1.0, None]}


def test_to_json_bytes_refuses_nan():
    from expunge._io import to_json_bytes

    with pytest.raises(ValueError):
        to_json_bytes({"x": float("nan")})


# --- the command line: exit status 3 after the record is printed -------------------------------------------------
def _cli(args: list[str], cache: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "EXPUNGE_CACHE": str(cache), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "expunge.cli.main", *args], capture_output=True, text=True,
                          env=env, timeout=300)


@pytest.fixture(scope="module")
def cli_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("status-cli-cache")


def test_unlearn_exits_3_after_printing_a_diverged_record(cli_cache):
    out = _cli(["unlearn", "--model", "mlp", "--method", "neggrad", "--param", "lr=1e30", "--json"], cli_cache)
    assert out.returncode == EXIT_NOT_UNLEARNED == 3, out.stderr
    rec = _strict(out.stdout)
    assert rec["status"] == "diverged" and "neggrad: DIVERGED" in out.stderr
    table = _cli(["unlearn", "--model", "mlp", "--method", "neggrad", "--param", "lr=1e30"], cli_cache)
    assert table.returncode == 3 and "DIVERGED" in table.stdout and "Traceback" not in table.stderr
    ok = _cli(["unlearn", "--model", "mlp", "--method", "finetune", "--param", "epochs=1", "--json"], cli_cache)
    assert ok.returncode == 0 and _strict(ok.stdout)["status"] == "ok"


def test_scenario_exits_3_when_a_request_unlearned_nothing(cli_cache):
    out = _cli(["scenario", "full-class", "--model", "mlp", "--method", "ssd", "--param", "alpha=1e30", "--json"],
               cli_cache)
    assert out.returncode == 3, out.stderr
    assert [r["status"] for r in _strict(out.stdout)] == ["no change"]


def test_non_finite_method_notes_reach_the_store_as_null(prepared_class3, monkeypatch):
    """Notes go into store manifests (the tier-2 caches write them raw): the strict writer must never see a NaN."""
    from expunge.methods.base import METHODS, RunContext, get_method
    from expunge.protocols.runner import run_method

    cls = METHODS.get("finetune")
    plain = cls.unlearn

    def noisy(self, model, data, ctx):
        out = plain(self, model, data, ctx)
        ctx.notes.update(noise_ce=float("nan"), per_step=[1.0, float("inf")])
        return out

    monkeypatch.setattr(cls, "unlearn", noisy)
    prep = prepared_class3
    res = run_method(get_method("finetune", {"epochs": 1}), prep.original.model, prep.dataset, prep.splits,
                     RunContext(store=prep.store))
    assert res.notes["noise_ce"] is None and res.notes["per_step"] == [1.0, None]
    prep.store.save_model("unlearned", "status-notes", res.model, {"notes": res.notes})  # strict JSON: no raise
