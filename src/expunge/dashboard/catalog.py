"""The runs of a bench folder as the dashboard shows them: the screening table, one run's record, a sequential timeline.

Reads a result store written by ``expunge bench`` (``results.sqlite``) or its committed compact form (``runs.jsonl``
and friends, rebuilt once into a temporary folder by :func:`expunge.harness.compact.load`). The SQLite file is opened
per request (a connection belongs to one thread, FastAPI answers on a pool), never created or migrated: the folder is
only read. Every verdict — speed-up, seeds at parity, gap closure, the request's MIA column — comes from
:mod:`expunge.harness.rules` and :mod:`expunge.harness.tables`; this module only selects and shapes them.
"""

from __future__ import annotations

import json
import sqlite3
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

from expunge.errors import ExpungeError, InvalidPath
from expunge.harness.compact import RECORDS, load_records, runs_file
from expunge.harness.compact import load as load_compact
from expunge.harness.results import DB_NAME, NoResults
from expunge.harness.rules import GridRules, gap_closure, seed_parity
from expunge.harness.tables import mia_of, tolerances
from expunge.record import RunRecord
from expunge.tasks import TASKS

ROLES = ("unlearned", "original", "retrain")


class UnknownRun(ExpungeError, LookupError):
    """A run id the result store does not list."""


class Catalog:
    """The result store of ``directory`` (read-only). ``close`` removes the temporary rebuild of a compact folder."""

    def __init__(self, directory: str | Path) -> None:
        directory = Path(directory)
        if not directory.is_dir():
            raise InvalidPath(f"DIR {directory} is not a folder. Fix: pass the --out folder of an `expunge bench` "
                              "run or a committed results folder (benchmarks/results/NAME)")
        self.directory = directory
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if (directory / DB_NAME).is_file():
            self.db_dir = directory
        elif runs_file(directory) is not None:  # the committed compact form: rebuilt once, in a temporary folder
            self._tmp = tempfile.TemporaryDirectory(prefix="expunge-serve-")
            load_compact(directory, self._tmp.name).close()
            self.db_dir = Path(self._tmp.name)
        elif (directory / RECORDS).is_file():  # `expunge demo`'s folder: its records, one cell each
            self._tmp = tempfile.TemporaryDirectory(prefix="expunge-serve-")
            load_records(directory, self._tmp.name).close()
            self.db_dir = Path(self._tmp.name)
        else:
            raise NoResults(f"{directory} holds no results ({DB_NAME}, runs.jsonl or {RECORDS}). Fix: pass the --out "
                            "folder of an `expunge bench` run or of `expunge demo`, or a committed results folder")

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    @contextmanager
    def _conn(self) -> Iterator[sqlite3.Connection]:
        # mode=ro: never creates or writes the file (a grid may be writing it: WAL lets us read meanwhile)
        path = quote(str((self.db_dir / DB_NAME).absolute()))  # a '?' or '#' in the folder's name is not the URI's
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
        conn.row_factory = sqlite3.Row
        try:
            yield conn
        finally:
            conn.close()

    def _rows(self) -> list[sqlite3.Row]:
        with self._conn() as conn:
            return conn.execute("SELECT id, run_key, cell_key, step, dataset, model, request, seed, method, label, "
                                "status, error, record, cell, wall_s FROM runs ORDER BY id").fetchall()

    def stored_cells(self) -> set[str]:
        """Keys of the cells stored (a build job's progress)."""
        with self._conn() as conn:
            return {r[0] for r in conn.execute("SELECT DISTINCT cell_key FROM runs")}

    def meta(self) -> dict[str, str]:
        with self._conn() as conn:
            return {r[0]: r[1] for r in conn.execute("SELECT key, value FROM meta")}

    def record(self, run_id: int) -> tuple[RunRecord, dict[str, Any]]:
        """The record of run ``run_id`` and its cell description; :class:`UnknownRun` when absent or failed."""
        with self._conn() as conn:
            row = conn.execute("SELECT record, cell, status, error FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise UnknownRun(f"run {run_id} is not in {self.directory}. Fix: pick a run from the screening table")
        if row["record"] is None:
            raise UnknownRun(f"run {run_id} failed and has no model: {row['error'] or 'no record'}")
        return RunRecord.from_json(json.loads(row["record"])), json.loads(row["cell"])

    def screening(self) -> dict[str, Any]:
        """``{"metrics", "rows", "failed", "title"}``: one row per stored run (a sequential cell: one per step) with
        its headline metrics, their gaps to the Retrain, the group's seeds at parity and the speed-up."""
        rows = self._rows()
        recs = {r["id"]: RunRecord.from_json(json.loads(r["record"])) for r in rows if r["record"] is not None}
        rules = GridRules(list(recs.values()))
        groups: dict[tuple[str, str], list[RunRecord]] = {}
        cells: dict[str, dict[str, Any]] = {}
        for r in rows:
            if r["id"] in recs:
                groups.setdefault((r["request"], r["label"]), []).append(recs[r["id"]])
                cells.setdefault(r["request"], json.loads(r["cell"]))
        parity = {k: _parity(v, cells[k[0]]) for k, v in groups.items()}
        metrics = _headline(recs.values())
        out, failed = [], []
        for r in rows:
            base = {"id": r["id"], "method": r["method"], "label": r["label"], "request": r["request"],
                    "dataset": r["dataset"], "model": r["model"], "seed": r["seed"], "step": r["step"],
                    "status": r["status"]}
            rec = recs.get(r["id"])
            if rec is None:
                failed.append({**base, "error": r["error"] or "failed"})
                continue
            sp = parity[(r["request"], r["label"])]
            steps = rec.extra.get("k")
            out.append({**base, "task": rec.task, "forget": rec.forget, "steps": steps,
                        "values": {m: rec.metrics.get(m) for m in metrics},
                        "gaps": {m: _signed_gap(rec, m) for m in metrics},
                        "original": {m: rec.original.get(m) for m in metrics},
                        "retrain": {m: rec.retrain.get(m) for m in metrics},
                        "parity": sp["label"], "parity_all": sp["all"],
                        "speed_up": rules.speed_up(rec), "time_s": rec.time_s,
                        "gap_closed_forget": gap_closure(rec, metrics[0]) if metrics else None,
                        "has_weights": rec.unlearned_key is not None, "error": r["error"]})
        meta = self.meta()
        return {"title": meta.get("title") or self.directory.name, "metrics": metrics, "rows": out,
                "failed": failed}

    def timeline(self, run_id: int) -> dict[str, Any]:
        """Each step of the cell run ``run_id`` belongs to: the headline metrics of the unlearned model, the
        Original and the step's Retrain (a single request: one step)."""
        with self._conn() as conn:
            row = conn.execute("SELECT cell_key FROM runs WHERE id = ?", (run_id,)).fetchone()
            if row is None:
                raise UnknownRun(f"run {run_id} is not in {self.directory}. Fix: pick a run from the screening table")
            steps = conn.execute("SELECT id, step, record FROM runs WHERE cell_key = ? AND record IS NOT NULL "
                                 "ORDER BY step", (row["cell_key"],)).fetchall()
        recs = [(s["id"], s["step"], RunRecord.from_json(json.loads(s["record"]))) for s in steps]
        metrics = _headline(r for _, _, r in recs)
        return {"metrics": metrics, "steps": [
            {"id": i, "step": step, "forget": rec.forget, "n_forget": rec.request.get("n_forget"),
             "step_request": rec.extra.get("step_request"),
             **{role: {m: getattr(rec, "metrics" if role == "unlearned" else role).get(m) for m in metrics}
                for role in ROLES}} for i, step, rec in recs]}


def _headline(records: Any) -> list[str]:
    """The headline metrics of the records' tasks, in the task's order, that some record measured."""
    out: list[str] = []
    seen: list[RunRecord] = list(records)
    for task in dict.fromkeys(r.task for r in seen):
        names = TASKS.get(task).headline_metrics if task in TASKS else ()
        for m in names:
            if m not in out and any(r.metrics.get(m) is not None for r in seen):
                out.append(m)
    return out


def _signed_gap(rec: RunRecord, metric: str) -> float | None:
    u, ref = rec.metrics.get(metric), rec.retrain.get(metric)
    return None if u is None or ref is None else u - ref


def _parity(recs: list[RunRecord], cell: dict[str, Any]) -> dict[str, Any]:
    """Seeds at parity of one method on one request, with the tolerances the markdown page judges with."""
    crit = tolerances(mia_of(cell.get("request") or {})) if recs[0].task == "classification" else None
    sp = seed_parity(recs, crit)
    return {"label": sp.label + sp.power_note, "all": sp.all_seeds}
