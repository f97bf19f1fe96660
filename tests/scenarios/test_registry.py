"""Every registered scenario is described, validated and reachable by the names the CLI and benchmarks use."""

from __future__ import annotations

import pytest

from expunge.errors import InvalidHyperparameter, UnknownName
from expunge.scenarios.base import SCENARIOS, Scenario, gap_objective, get_scenario, request_seed

REQUIRED = {"full-class", "sub-class", "random", "owners", "sequential", "corrective"}


def test_the_issue_s_scenario_names_are_registered():
    assert set(SCENARIOS.names()) >= REQUIRED


@pytest.mark.parametrize("name", SCENARIOS.names())
def test_metadata_and_params(name):
    cls = SCENARIOS.get(name)
    assert issubclass(cls, Scenario) and cls.name == name and cls.summary()
    sc = get_scenario(name)
    assert sc.params == cls.Params() and cls.describe()["params"] == cls.Params.describe()
    with pytest.raises(InvalidHyperparameter, match=f"scenario {name} has no parameter"):
        get_scenario(name, {"definitely_not_a_param": "1"})


def test_unknown_scenario_suggests_a_name():
    with pytest.raises(UnknownName, match="Did you mean 'sequential'"):
        get_scenario("sequental")


def test_gap_objective_is_the_mean_tier0_gap(make_record):
    rec = make_record(gap_to_retrain={"forget_acc": 0.3, "test_acc": 0.0, "mia_loss_auc": 0.6, "retain_acc": 9.0})
    assert gap_objective([rec]) == pytest.approx(0.3)
    other = make_record(gap_to_retrain={"forget_acc": 0.1, "test_acc": 0.1, "mia_loss_auc": 0.1})
    assert gap_objective([rec, other]) == pytest.approx(0.2)
    missing = make_record(gap_to_retrain={"forget_acc": 0.1, "test_acc": None, "mia_loss_auc": 0.1})
    assert gap_objective([missing]) is None
    assert request_seed(3, validation=False) == 3 and request_seed(3, validation=True) == 1003


def _cli(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    import sys

    from expunge.cli import main

    monkeypatch.setattr(sys, "argv", ["expunge", *args])
    code = 0
    try:
        main.main()
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_lists_scenarios(monkeypatch, capsys):
    import json

    code, out, _ = _cli(monkeypatch, capsys, "scenarios", "--json")
    listed = {d["name"]: d for d in json.loads(out)}
    assert code == 0 and set(listed) >= REQUIRED
    assert {p["name"] for p in listed["sequential"]["params"]} == {"base", "k"}


@pytest.mark.parametrize(("args", "fragment"), [
    (["scenario", "sequential", "--k", "0"], "'k' parameter of scenario sequential"),
    (["scenario", "sequential", "--base", "classes:1", "--k", "2", "--model", "mlp"], "at least k classes"),
    (["scenario", "corrective", "--k", "2"], "scenario corrective has no parameter 'k'"),
    (["scenario", "sequentail"], "Did you mean 'sequential'"),
    (["tune", "--methods", "retrain", "--model", "mlp"], "no search space"),
])
def test_cli_user_errors_are_one_line(monkeypatch, capsys, args, fragment):
    code, _, err = _cli(monkeypatch, capsys, *args)
    lines = [x for x in err.splitlines() if x.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], err
