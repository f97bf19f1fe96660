"""`expunge demo`: paper-default rows, plus `[tuned]` rows from the preset of the request's scenario."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from expunge import presets
from expunge.demo import run_demo
from expunge.errors import UnknownName
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


def test_tuned_rows_follow_the_request_scenarios_preset(tmp_path: Path, preset_dir: Path) -> None:
    out = tmp_path / "demo"
    records = run_demo(out=out, data="digits", model="mlp", forget="class:3", store=ArtifactStore(tmp_path / "s"),
                       methods=["ssd", "neggrad"])
    by_row = {(r["method"], r.get("preset")) for r in records}
    assert ("ssd", None) in by_row and ("ssd", "digits/mlp/full-class") in by_row
    tuned_ssd = next(r for r in records if r["method"] == "ssd" and r.get("preset"))
    assert {k: tuned_ssd["params"][k] for k in SSD_VALUES} == SSD_VALUES  # the user's folder wins over the shipped
    default_ssd = next(r for r in records if r["method"] == "ssd" and not r.get("preset"))
    assert default_ssd["params"]["alpha"] == 10.0  # the paper's
    # neggrad gets a tuned row exactly when some preset (here the shipped one) covers it
    assert (("neggrad", "digits/mlp/full-class") in by_row) == (
        presets.find("digits", "mlp", "full-class", "neggrad") is not None)
    report = (out / "report.md").read_text()
    assert "| ssd [tuned] |" in report and "| ssd |" in report and "`digits/mlp/full-class`" in report
    assert json.loads((out / "results.json").read_text()) == records


def test_paper_defaults_only_has_no_tuned_rows(tmp_path: Path, preset_dir: Path) -> None:
    records = run_demo(out=tmp_path / "demo", data="digits", model="mlp", forget="class:3",
                       store=ArtifactStore(tmp_path / "s"), methods=["ssd"], tuned=False)
    assert [(r["method"], r.get("preset")) for r in records] == [("ssd", None)]


def test_unknown_method_fails_before_any_training(tmp_path: Path) -> None:
    with pytest.raises(UnknownName, match="ssd"):  # the message lists the registered methods
        run_demo(out=tmp_path / "demo", data="digits", model="mlp", store=ArtifactStore(tmp_path / "s"),
                 methods=["ssd", "no_such_method"])
    assert not (tmp_path / "demo").exists()
    assert not any((tmp_path / "s").rglob("*.safetensors"))


def test_find_falls_back_to_the_nearest_scenario(preset_dir: Path) -> None:
    assert presets.find("digits", "mlp", "sub-class", "ssd") == ("digits/mlp/full-class", SSD_VALUES)
    assert presets.find("digits", "mlp", "hard-forget", "ssd") is None  # no preset, no fallback
    assert presets.find("no-such-data", "mlp", "full-class", "ssd") is None


def test_terminal_table_keeps_the_tuned_label(capsys: pytest.CaptureFixture[str]) -> None:
    from expunge.experiment import HEADLINE_METRICS
    from expunge.report import print_table

    values = dict.fromkeys(HEADLINE_METRICS, 0.5)
    rec = {"method": "ssd", "metrics": values, "original": values, "retrain": values,
           "gap_to_retrain": dict.fromkeys(HEADLINE_METRICS, 0.0), "time_s": 1.0, "retrain_time_s": 2.0,
           "time_ratio_to_retrain": 0.5}
    print_table([rec, {**rec, "preset": "digits/cnn/full-class"}], "t")
    out = capsys.readouterr().out
    assert "ssd [tuned]" in out  # not swallowed as rich markup
