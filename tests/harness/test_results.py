"""The SQLite result store: whole cells or nothing, baselines once per request, the lock, the long export."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from expunge.harness.results import DB_NAME, BenchLock, BenchLocked, NoResults, ResultStore


def cell(key: str, method: str = "finetune", tier: int = 0) -> dict[str, Any]:
    return {"key": key, "dataset": "digits", "model": "mlp", "request_label": "class:3", "seed": 0,
            "method": method, "label": method, "tier": tier, "metrics": None}


def record(method: str, forget_acc: float, *, original: float = 1.0, retrain: float = 0.0,
           fingerprint: str = "fp3") -> dict[str, Any]:
    return {"method": method, "status": "ok", "forget": "class:3", "request": {"fingerprint": fingerprint},
            "original_key": "orig", "oracle_key": "orc", "time_s": 0.5,
            "metrics": {"forget_acc": forget_acc, "test_acc": 0.9},
            "original": {"forget_acc": original, "test_acc": 0.95},
            "retrain": {"forget_acc": retrain, "test_acc": 0.93},
            "gap_to_retrain": {"forget_acc": abs(forget_acc - retrain), "test_acc": 0.03}}


def ok(*records: dict[str, Any]) -> dict[str, Any]:
    return {"status": "ok", "records": list(records), "started_at": "t0", "wall_s": 1.0, "pid": 1}


def test_wal_mode_and_cell_round_trip(tmp_path: Path) -> None:
    with ResultStore(tmp_path) as rs:
        assert rs.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        rs.write_cell(cell("a"), ok(record("finetune", 0.1)))
        assert rs.finished() == {"a"}
        (run,) = rs.runs()
        assert (run["run_key"], run["status"], run["time_s"]) == ("a:0", "ok", 0.5)
        assert rs.records()[0]["metrics"]["forget_acc"] == 0.1


def test_original_and_retrain_are_stored_once_per_request(tmp_path: Path) -> None:
    with ResultStore(tmp_path) as rs:
        rs.write_cell(cell("a", "finetune"), ok(record("finetune", 0.1)))
        rs.write_cell(cell("b", "ssd"), ok(record("ssd", 0.2)))
        rows = rs.conn.execute("SELECT role, COUNT(*) FROM metrics GROUP BY role").fetchall()
        assert dict(rows) == {"unlearned": 4, "gap": 4, "original": 2, "retrain": 2}  # 2 runs × 2 metrics
        # another request (other fingerprint) has its own baseline
        rs.write_cell(cell("c", "ssd"), ok(record("ssd", 0.3, retrain=0.05, fingerprint="fp5")))
        retrain = rs.conn.execute("SELECT value FROM metrics WHERE role = 'retrain' AND metric = 'forget_acc' "
                                  "ORDER BY value").fetchall()
        assert [r[0] for r in retrain] == [0.0, 0.05]


def test_a_cell_is_written_whole_or_not_at_all(tmp_path: Path) -> None:
    """Fault injection: the metrics insert fails after the cell's runs rows went in; the transaction rolls back,
    so no run row of the cell is left to pass for a finished cell on --resume."""

    class FailingMetrics:
        def __init__(self, conn: sqlite3.Connection) -> None:
            self.conn = conn

        def __getattr__(self, name: str) -> Any:
            return getattr(self.conn, name)

        def executemany(self, sql: str, rows: Any) -> Any:
            if "INTO metrics" in sql:
                raise sqlite3.OperationalError("disk I/O error (injected)")
            return self.conn.executemany(sql, rows)

    with ResultStore(tmp_path) as rs:
        rs.write_cell(cell("a"), ok(record("finetune", 0.1)))
        real = rs.conn
        rs.conn = FailingMetrics(real)  # type: ignore[assignment]
        with pytest.raises(sqlite3.OperationalError, match="injected"):
            rs.write_cell(cell("x"), ok(record("finetune", 0.2), record("finetune", 0.3)))
        rs.conn = real
        assert rs.finished() == {"a"}
        assert [r["run_key"] for r in rs.runs()] == ["a:0"]
        assert not rs.conn.in_transaction


def test_failed_cell_is_stored_with_its_error(tmp_path: Path) -> None:
    with ResultStore(tmp_path) as rs:
        rs.write_cell(cell("f"), {"status": "failed", "records": [], "error": "RuntimeError: boom",
                                  "traceback": "Traceback ..."})
        (run,) = rs.runs()
        assert (run["status"], run["error"]) == ("failed", "RuntimeError: boom")
        assert rs.finished() == {"f"}
        assert next(iter(rs.long_rows()))["metric"] is None


def test_long_rows_join_baselines_to_each_run(tmp_path: Path) -> None:
    with ResultStore(tmp_path) as rs:
        rs.write_cell(cell("a", "finetune"), ok(record("finetune", 0.1)))
        rs.write_cell(cell("b", "ssd"), ok(record("ssd", 0.2)))
        rows = list(rs.long_rows())
    assert len(rows) == 2 * 2 * 4  # runs × metrics × roles
    by = {(r["run_key"], r["metric"], r["role"]): r["value"] for r in rows}
    assert by["b:0", "forget_acc", "unlearned"] == 0.2
    assert by["b:0", "forget_acc", "original"] == by["a:0", "forget_acc", "original"] == 1.0


def test_a_method_bound_baseline_is_each_runs_own(tmp_path: Path) -> None:
    """U-LiRA scores the Original and the Retrain against shadows unlearned by the method under test: two methods on
    one request have different Original rows, and each run's export shows its own (not the first cell's), while
    forget accuracy's baseline stays stored once per request."""
    def with_ulira(method: str, forget_acc: float, ulira_original: float) -> dict[str, Any]:
        r = record(method, forget_acc)
        r["metrics"]["ulira_auc"], r["original"]["ulira_auc"], r["retrain"]["ulira_auc"] = 0.5, ulira_original, 0.5
        r["gap_to_retrain"]["ulira_auc"] = 0.0
        return r

    with ResultStore(tmp_path) as rs:
        rs.write_cell(cell("a", "finetune"), ok(with_ulira("finetune", 0.1, 0.80)))
        rs.write_cell(cell("b", "retrain"), ok(with_ulira("retrain", 0.0, 0.55)))
        by_run = {}
        for row in rs.long_rows():
            by_run.setdefault(row["run_key"], {})[(row["metric"], row["role"])] = row["value"]
        assert by_run["a:0"][("ulira_auc", "original")] == 0.80 and by_run["b:0"][("ulira_auc", "original")] == 0.55
        assert by_run["b:0"][("forget_acc", "original")] == 1.0 and len(by_run["a:0"]) == len(by_run["b:0"]) == 12
        n = rs.conn.execute("SELECT COUNT(*) FROM metrics WHERE metric = 'forget_acc' AND role = 'original'")
        assert n.fetchone()[0] == 1


def test_second_lock_on_the_same_folder_fails_fast(tmp_path: Path) -> None:
    busy = r"another `expunge bench` \(pid \d+\) is running"
    with BenchLock(tmp_path), pytest.raises(BenchLocked, match=busy), BenchLock(tmp_path):
        pass
    with BenchLock(tmp_path):  # released on exit
        pass


def test_reader_on_a_folder_without_results(tmp_path: Path) -> None:
    with pytest.raises(NoResults, match="holds no bench results"):
        ResultStore(tmp_path, create=False)
    assert not (tmp_path / DB_NAME).exists()


def dists(*steps: int, error: str | None = None) -> dict[str, Any]:
    """A cell outcome's summaries: every role and kind for each step (payload: which role and step wrote it)."""
    return {"distributions": [{"step": s, "role": role, "kind": kind, "payload": {"role": role, "step": s}}
                              for s in steps for role in ("unlearned", "original", "retrain")
                              for kind in ("mia_loss", "class_acc")],
            "distributions_error": error}


def test_distributions_of_baselines_are_stored_once_per_request(tmp_path: Path) -> None:
    with ResultStore(tmp_path) as rs:
        rs.write_cell(cell("a", "finetune"), {**ok(record("finetune", 0.1)), **dists(0)})
        rs.write_cell(cell("b", "ssd"), {**ok(record("ssd", 0.2)), **dists(0)})
        rows = rs.conn.execute("SELECT role, COUNT(*) FROM distributions GROUP BY role").fetchall()
        assert dict(rows) == {"unlearned": 4, "original": 2, "retrain": 2}  # 2 runs × 2 kinds; baselines once
        b = next(r for r in rs.runs() if r["run_key"] == "b:0")
        assert {role: sorted(k) for role, k in rs.run_distributions("b:0", b["request_key"]).items()} == \
            {role: ["class_acc", "mia_loss"] for role in ("original", "retrain", "unlearned")}
        # a cell whose summaries failed: stored ok, with the error as its run's one row
        rs.write_cell(cell("c", "neggrad"), {**ok(record("neggrad", 0.3, fingerprint="fp5")),
                                             **dists(error="RuntimeError: boom")})
        assert rs.run_distributions("c:0", None) == {"unlearned": {"error": {"error": "RuntimeError: boom"}}}
        assert [r["status"] for r in rs.runs()] == ["ok", "ok", "ok"]


def test_a_non_finite_payload_is_stored_as_an_error_not_a_failed_write(tmp_path: Path) -> None:
    with ResultStore(tmp_path) as rs:
        rs.write_cell(cell("a"), {**ok(record("finetune", 0.1)),
                                  "distributions": [{"step": 0, "role": "unlearned", "kind": "mia_loss",
                                                     "payload": {"mean": float("nan")}}]})
        assert "ValueError" in rs.distributions()[("a:0", "unlearned", "mia_loss")]["error"]


def test_a_store_written_before_the_distributions_table_still_reads_and_migrates(tmp_path: Path) -> None:
    """An old store (no distributions table) opened read-only has no summaries and no error; opened by a grid, the
    table is added and the old cells are kept."""
    with ResultStore(tmp_path) as rs:
        rs.conn.execute("DROP TABLE distributions")
        rs.write_cell(cell("old"), ok(record("finetune", 0.1)) | {"distributions": []})
    with ResultStore(tmp_path, create=False) as rs:
        assert not rs.has_distributions()
        assert rs.distributions() == {} and rs.run_distributions("old:0", None) == {}
        assert rs.finished() == {"old"}
    with ResultStore(tmp_path) as rs:
        assert rs.has_distributions()
        rs.write_cell(cell("new", "ssd"), {**ok(record("ssd", 0.2)), **dists(0)})
        assert rs.finished() == {"old", "new"} and len(rs.distributions()) == 6
