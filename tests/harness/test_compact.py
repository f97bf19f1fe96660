"""The committed JSON Lines form of a result store: store -> JSON Lines -> store gives identical runs, records and
metric rows; baselines are written once per distinct pair; a derivable gap is left out, an odd one kept."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from expunge.harness import compact
from expunge.harness.results import NoResults, ResultStore


def cell(key: str, method: str, label: str = "", seed: int = 0) -> dict[str, Any]:
    return {"key": key, "dataset": "digits", "model": "mlp", "request": {"forget": "class:3"},
            "request_label": "class:3", "seed": seed, "method": method, "label": label or method, "params": {},
            "params_source": "paper defaults", "recipe": {}, "tier": 0, "metrics": None}


def record(method: str, forget: float, *, retrain: float = 0.0, step: int | None = None) -> dict[str, Any]:
    rec = {"method": method, "status": "ok", "status_reason": "", "forget": "class:3", "seed": 0,
           "request": {"fingerprint": "fp3", "n_forget": 10}, "original_key": "o", "oracle_key": "r", "time_s": 0.25,
           "metrics": {"forget_acc": forget, "test_acc": 0.9, "mia_loss_auc": None},
           "original": {"forget_acc": 1.0, "test_acc": 0.95, "mia_loss_auc": 0.6},
           "retrain": {"forget_acc": retrain, "test_acc": 0.93, "mia_loss_auc": 0.5},
           "notes": {"epoch_losses": [0.5, 0.25]}, "speed_up": 12.5}
    rec["gap_to_retrain"] = {"forget_acc": abs(forget - retrain), "test_acc": abs(0.9 - 0.93), "mia_loss_auc": None}
    return rec if step is None else {**rec, "step": step}


def outcome(*records: dict[str, Any], pid: int = 7) -> dict[str, Any]:
    return {"status": "ok", "records": list(records), "started_at": "t0", "finished_at": "t1", "wall_s": 1.5,
            "pid": pid}


def fill(rs: ResultStore) -> None:
    rs.set_meta(config="name: x\n", config_path="x.yaml")
    rs.write_cell(cell("a", "finetune"), outcome(record("finetune", 0.1)))
    rs.write_cell(cell("b", "ssd"), outcome(record("ssd", 0.3)))
    rs.write_cell(cell("c", "ssd", "ssd [seq]"), outcome(record("ssd", 0.2, step=0), record("ssd", 0.4, step=1)))
    odd = record("neggrad", 0.5, retrain=0.05)  # measured against another training of the oracle
    odd["gap_to_retrain"] = {"forget_acc": 0.123}  # a legacy gap that is not |unlearned - retrain|: kept verbatim
    rs.write_cell(cell("d", "neggrad", seed=1), outcome(odd))
    rs.write_cell(cell("e", "unsir"), {"status": "failed", "error": "ValueError: no class", "traceback": "Tb",
                                       "records": [], "started_at": "t2", "finished_at": "t3", "wall_s": 0.1,
                                       "pid": 8})


def dump(rs: ResultStore) -> dict[str, Any]:
    """Everything a reader sees: run rows (ids included), record and cell text, metric rows, meta."""
    return {"runs": [dict(r) for r in rs.conn.execute("SELECT * FROM runs ORDER BY id")],
            "metrics": sorted(tuple(r) for r in rs.conn.execute("SELECT key, metric, role, value FROM metrics")),
            "meta": rs.meta()}


def test_store_to_jsonl_to_store_is_identical(tmp_path: Path) -> None:
    with ResultStore(tmp_path / "a") as rs:
        fill(rs)
        before = dump(rs)
        sizes = compact.export(rs, tmp_path / "export")
    assert set(sizes) == {"runs.jsonl", "baselines.jsonl", "meta.json"}
    with compact.load(tmp_path / "export", tmp_path / "b") as rebuilt:
        after = dump(rebuilt)
    assert after == before
    lines = [json.loads(x) for x in (tmp_path / "export" / "runs.jsonl").read_text().splitlines()]
    assert len(lines) == 6 and [ln["cell"]["key"] for ln in lines] == ["a", "b", "c", "c", "d", "e"]
    assert "original" not in lines[0]["record"] and "gap_to_retrain" not in lines[0]["record"]  # derivable
    assert lines[4]["record"]["gap_to_retrain"] == {"forget_acc": 0.123}  # not derivable: kept
    assert lines[5]["outcome"]["error"] == "ValueError: no class" and "record" not in lines[5]
    baselines = (tmp_path / "export" / "baselines.jsonl").read_text().splitlines()
    assert len(baselines) == 2  # one per distinct (original, retrain): 4 records of one request, 1 of another


def test_finished_times_survive(tmp_path: Path) -> None:
    with ResultStore(tmp_path / "a") as rs:
        fill(rs)
        compact.export(rs, tmp_path / "export")
    with compact.load(tmp_path / "export", tmp_path / "b") as rebuilt:
        assert {r["finished_at"] for r in rebuilt.runs()} == {"t1", "t3"}


def test_a_large_export_is_gzipped_reproducibly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compact, "GZIP_OVER", 100)
    with ResultStore(tmp_path / "a") as rs:
        fill(rs)
        first = compact.export(rs, tmp_path / "e1")
        compact.export(rs, tmp_path / "e2")
        records = rs.records()
    assert "runs.jsonl.gz" in first and not (tmp_path / "e1" / "runs.jsonl").exists()
    assert (tmp_path / "e1" / "runs.jsonl.gz").read_bytes() == (tmp_path / "e2" / "runs.jsonl.gz").read_bytes()
    assert gzip.decompress((tmp_path / "e1" / "runs.jsonl.gz").read_bytes()).count(b"\n") == 6
    with compact.open_results(tmp_path / "e1") as rs:  # a committed folder reads like a bench folder
        assert rs.records() == records


def test_loading_needs_an_export_and_an_empty_destination(tmp_path: Path) -> None:
    with pytest.raises(NoResults, match=r"runs\.jsonl is missing"):
        compact.load(tmp_path, tmp_path / "b")
    with ResultStore(tmp_path / "a") as rs:
        fill(rs)
        compact.export(rs, tmp_path / "a")
    with pytest.raises(NoResults, match="already holds a result store"):
        compact.load(tmp_path / "a", tmp_path / "a")
    with pytest.raises(NoResults), compact.open_results(tmp_path / "nothing"):
        pass


def test_distributions_survive_the_round_trip(tmp_path: Path) -> None:
    """The report's per-example summaries are exported (distributions.jsonl) and rebuilt row for row; a store
    without any writes no file."""
    dists = [{"step": 0, "role": role, "kind": "mia_loss", "payload": {"forget": {"q": [0.1, 0.5, 2.0]}, "role": role}}
             for role in ("unlearned", "original", "retrain")]
    with ResultStore(tmp_path / "a") as rs:
        rs.write_cell(cell("a", "finetune"), {**outcome(record("finetune", 0.1)), "distributions": dists})
        sizes = compact.export(rs, tmp_path / "out")
        before = rs.distributions()
    assert compact.DISTRIBUTIONS in sizes and len(before) == 3
    with compact.load(tmp_path / "out", tmp_path / "b") as rebuilt:
        assert rebuilt.distributions() == before
    with ResultStore(tmp_path / "c") as rs:
        fill(rs)
        assert compact.DISTRIBUTIONS not in compact.export(rs, tmp_path / "out2")
    assert not (tmp_path / "out2" / compact.DISTRIBUTIONS).exists()
