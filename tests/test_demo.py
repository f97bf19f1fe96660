"""`expunge demo`: representative methods with the preset matching the request by default (paper defaults on
request), a parity verdict and a speed-up per row, and a closing line naming the fastest method at parity."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from expunge import presets
from expunge.demo import DEFAULT_METHODS, free_cores, run_demo
from expunge.errors import UnknownName
from expunge.methods.base import METHODS
from expunge.report import print_table, summary_line
from expunge.scenarios.base import SCENARIOS
from expunge.store import ArtifactStore

SSD_VALUES = {"alpha": 7.5, "lam": 0.5}


@pytest.fixture
def preset_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A user preset folder whose digits/mlp/full-class entry for ssd overrides the shipped one."""
    folder = tmp_path / "presets"
    folder.mkdir()
    (folder / presets.file_name("digits", "mlp", "full-class")).write_text(
        json.dumps({"ssd": {"params": SSD_VALUES, "objective": 0.0}}))
    monkeypatch.setenv(presets.ENV, str(folder))
    return folder


def test_the_preset_of_the_request_s_scenario_is_the_default(tmp_path: Path, preset_dir: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "demo"
    records = run_demo(out=out, data="digits", model="mlp", forget="class:3", store=ArtifactStore(tmp_path / "s"),
                       methods=["ssd", "retrain"])
    ssd, retrain = records
    assert ssd.label == "ssd [tuned]" and ssd.params_source == "preset digits/mlp/full-class"
    assert {k: ssd.params[k] for k in SSD_VALUES} == SSD_VALUES  # the user's folder wins over the shipped one
    assert retrain.label == "retrain" and retrain.params_source == "paper defaults"  # no preset tunes retrain
    printed = capsys.readouterr().out
    assert "verdict" in printed and "speed-up" in printed and printed.count("×") >= 2
    assert summary_line(records) in printed  # one closing line
    report = (out / "report.md").read_text()
    assert "| ssd [tuned] |" in report and "`preset digits/mlp/full-class`" in report
    assert summary_line(records) in report
    assert json.loads((out / "results.json").read_text()) == [json.loads(json.dumps(r.to_json())) for r in records]


def test_paper_defaults_override_the_preset(tmp_path: Path, preset_dir: Path) -> None:
    (ssd,) = run_demo(out=tmp_path / "demo", data="digits", model="mlp", forget="class:3",
                      store=ArtifactStore(tmp_path / "s"), methods=["ssd"], paper_defaults=True)
    assert ssd.label == "ssd" and ssd.params_source == "paper defaults" and ssd.params["alpha"] == 10.0


def test_exact_retraining_is_at_parity_and_named_fastest_when_alone(tmp_path: Path) -> None:
    """`retrain` reproduces an oracle of the same recipe: at parity on every criterion with power."""
    records = run_demo(out=tmp_path / "demo", data="digits", model="mlp", forget="class:3",
                       store=ArtifactStore(tmp_path / "s"), methods=["retrain"])
    assert summary_line(records).startswith("Fastest at parity with the Retrain: retrain")


def test_unknown_method_fails_before_any_training(tmp_path: Path) -> None:
    with pytest.raises(UnknownName, match="ssd"):  # the message lists the registered methods
        run_demo(out=tmp_path / "demo", data="digits", model="mlp", store=ArtifactStore(tmp_path / "s"),
                 methods=["ssd", "no_such_method"])
    assert not (tmp_path / "demo").exists()
    assert not any((tmp_path / "s").rglob("*.safetensors"))


def test_default_methods_are_registered_and_fewer_than_all() -> None:
    assert set(DEFAULT_METHODS) <= set(METHODS.names()) and len(DEFAULT_METHODS) < len(METHODS.names())
    assert free_cores() >= 1


def test_preset_fallbacks_are_declared_by_the_scenarios(preset_dir: Path) -> None:
    sub = SCENARIOS.get("sub-class")
    assert sub.preset_fallback == "full-class"
    assert sub.preset_for("digits", "mlp", "ssd") == ("digits/mlp/full-class", SSD_VALUES)
    assert SCENARIOS.get("corrective").preset_for("digits", "mlp", "ssd") is None  # no preset, no fallback
    assert SCENARIOS.get("full-class").preset_for("no-such-data", "mlp", "ssd") is None


def test_terminal_table_keeps_the_tuned_label(make_record, capsys: pytest.CaptureFixture[str]) -> None:
    values = {"forget_acc": 0.5, "test_acc": 0.5, "mia_loss_auc": 0.5}
    rec = make_record(label="ssd [tuned]", metrics=values, original=values, retrain=values,
                      gap_to_retrain=dict.fromkeys(values, 0.0), time_s=1.0, retrain_time_s=2.0)
    print_table([rec], "t")
    out = capsys.readouterr().out
    assert "ssd [tuned]" in out  # not swallowed as rich markup
    assert "2.0×" in out and "no power" in out  # Original = Retrain: no criterion can tell them apart


def test_the_demo_runs_the_methods_of_the_dataset_s_task(tmp_path: Path) -> None:
    from expunge.demo import methods_for
    from expunge.tasks import UnsupportedTask

    assert methods_for("classification") == list(DEFAULT_METHODS)
    regression = [n for n in METHODS.names() if "regression" in METHODS.get(n).tasks]
    assert methods_for("regression") == regression  # only finetune is among the defaults: every regression method
    assert {"blindspot_regression", "finetune", "retrain"} <= set(regression)
    assert methods_for("regression", all_methods=True) == methods_for("regression")
    with pytest.raises(UnsupportedTask, match="'ssd' supports classification tasks, not regression"):
        run_demo(out=tmp_path / "demo", data="diabetes", model="mlp", forget="random:0.1",
                 store=ArtifactStore(tmp_path / "s"), methods=["finetune", "ssd"])
    assert not (tmp_path / "demo").exists()
    assert not any((tmp_path / "s").rglob("*.safetensors"))
