"""benchmarks/results/continual-stream.md is `python benchmarks/continual.py benchmarks/results/continual`: no hand
edits, no stale page; its tables hold the Original, the Retrain and every method of the grid."""

from __future__ import annotations

import importlib.util
from pathlib import Path

RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results"
SCRIPT = RESULTS.parent / "continual.py"


def test_committed_stream_page_is_generated_from_the_committed_results() -> None:
    spec = importlib.util.spec_from_file_location("continual_page", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    records = mod.load(RESULTS / "continual")
    text = mod.page(records)
    assert text == (RESULTS / "continual-stream.md").read_text()
    assert text.count("| Retrain (oracle) |") == 4  # three forget steps and the average over them
    for label in ("ckd", "ckd:kd_weight=0", "finetune", "bad_teacher", "retrain"):
        assert f"| {label} |" in text
