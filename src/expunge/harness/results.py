"""The result store of a bench directory: one SQLite file (``results.sqlite``, WAL mode) and a lock.

Tables:

* ``runs`` — one row per record a cell produced (a scenario such as ``sequential`` produces several: ``step``), or one
  row for a cell that failed (``status = 'failed'``, ``error``, ``traceback``, no record). ``record`` is the full
  :class:`~expunge.record.RunRecord` JSON (what the verdict rules read); ``cell`` the cell's description.
* ``metrics`` — long form ``(key, metric, role, value)``: roles ``unlearned`` and ``gap`` under the run's
  ``run_key``; roles ``original`` and ``retrain`` under the ``request_key`` (Original, oracle, request, metric
  selection), so the baselines are stored once per request, not once per method — except for a metric whose
  Original and Retrain rows depend on the method (U-LiRA scores them against shadows unlearned by it:
  :func:`method_bound`), stored under the ``run_key`` too.
* ``distributions`` — ``(key, role, kind, payload)``: compact per-example summaries for the report
  (:mod:`expunge.harness.distributions`: ``mia_loss`` quantiles forget vs test, ``class_acc`` per-class accuracy
  vectors), keyed like ``metrics`` — the unlearned model's under its ``run_key``, the Original's and Retrain's under
  the ``request_key`` (stored once per request). A cell whose summaries could not be computed has one ``error`` row
  under its first run; the cell itself is stored as it ran. Stores written before this table existed simply lack it
  (``CREATE TABLE IF NOT EXISTS`` adds it when a grid next writes there; readers find none).
* ``meta`` — the config text and when the grid was started.

A cell is written in one transaction (:meth:`ResultStore.write_cell`): after a kill -9 it is either wholly there or
absent, and a present cell is finished (``--resume`` skips it). One ``expunge bench`` at a time per directory:
:class:`BenchLock` (``fcntl.flock``) makes a second one fail at once with :class:`BenchLocked`.
"""

from __future__ import annotations

import fcntl
import functools
import json
import os
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from expunge._io import to_json_bytes
from expunge.errors import ExpungeError
from expunge.store import ArtifactStore

DB_NAME = "results.sqlite"
LOCK_NAME = "bench.lock"
RUN_ROLES = ("unlearned", "gap")
BASELINE_ROLES = ("original", "retrain")
_ROLE_FIELDS = {"unlearned": "metrics", "gap": "gap_to_retrain", "original": "original", "retrain": "retrain"}

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused: a recomputed cell gets a new id
    run_key TEXT NOT NULL UNIQUE,
    cell_key TEXT NOT NULL,
    step INTEGER NOT NULL,
    dataset TEXT, model TEXT, request TEXT, seed INTEGER, method TEXT, label TEXT,
    status TEXT NOT NULL,
    error TEXT, traceback TEXT,
    request_key TEXT,
    record TEXT, cell TEXT,
    started_at TEXT, finished_at TEXT, wall_s REAL, time_s REAL, pid INTEGER
);
CREATE INDEX IF NOT EXISTS runs_cell ON runs (cell_key);
CREATE TABLE IF NOT EXISTS metrics (
    key TEXT NOT NULL, metric TEXT NOT NULL, role TEXT NOT NULL, value REAL,
    PRIMARY KEY (key, metric, role)
);
CREATE TABLE IF NOT EXISTS distributions (
    key TEXT NOT NULL, role TEXT NOT NULL, kind TEXT NOT NULL, payload TEXT NOT NULL,
    PRIMARY KEY (key, role, kind)
);
"""
RUN_COLUMNS = ("id", "run_key", "cell_key", "step", "dataset", "model", "request", "seed", "method", "label", "status",
               "error", "request_key", "started_at", "finished_at", "wall_s", "time_s")


class BenchLocked(ExpungeError):
    """Another ``expunge bench`` holds the output directory's lock. Nothing is written."""


class NoResults(ExpungeError, FileNotFoundError):
    """A folder given to ``expunge results`` holds no result store."""


class BenchLock:
    """An exclusive, non-blocking ``flock`` on ``DIR/bench.lock``, released when the process ends (even by kill -9:
    the kernel drops the lock with the file descriptor, so a crashed run never leaves a stale lock)."""

    def __init__(self, directory: Path) -> None:
        self.path = Path(directory) / LOCK_NAME
        self._fd: int | None = None

    def __enter__(self) -> BenchLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise BenchLocked(f"another `expunge bench` (pid {holder}) is running on {self.path.parent}. Fix: wait "
                              "for it to finish, or give this grid another --out folder") from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class ResultStore:
    """The SQLite store of one bench directory. Readers (``expunge results``) may open it while a grid writes."""

    def __init__(self, directory: str | os.PathLike[str], *, create: bool = True) -> None:
        self.directory = Path(directory)
        self.path = self.directory / DB_NAME
        if not create and not self.path.is_file():
            raise NoResults(f"{self.directory} holds no bench results ({DB_NAME} is missing). Fix: pass the --out "
                            "folder of an `expunge bench` run")
        if create:
            self.directory.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)  # explicit BEGIN ... COMMIT
        self.conn.row_factory = sqlite3.Row
        if create:
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=FULL")
            self.conn.executescript(SCHEMA)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def set_meta(self, **values: str) -> None:
        with self._transaction():
            self.conn.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", values.items())

    def meta(self) -> dict[str, str]:
        return {r["key"]: r["value"] for r in self.conn.execute("SELECT key, value FROM meta")}

    def finished(self) -> set[str]:
        """Keys of the cells stored (each wholly, in one transaction): finished, whether ok or failed."""
        return {r[0] for r in self.conn.execute("SELECT DISTINCT cell_key FROM runs")}

    def drop_failed(self, keys: set[str]) -> int:
        """Delete the cells among ``keys`` stored as ``failed`` (an exception, not a diverged or unchanged record),
        so that they run again; their number."""
        failed = [r[0] for r in self.conn.execute("SELECT cell_key FROM runs WHERE status = 'failed'") if r[0] in keys]
        with self._transaction():  # a failed cell has no metric rows
            self.conn.executemany("DELETE FROM runs WHERE cell_key = ?", [(k,) for k in failed])
        return len(failed)

    def write_cell(self, cell: Mapping[str, Any], outcome: Mapping[str, Any]) -> None:
        """Store one cell's outcome — its records and their metrics, or its failure — in one transaction.

        ``cell`` is :meth:`~expunge.harness.grid.Cell.describe`; ``outcome`` holds ``status``, ``error``,
        ``traceback``, ``records`` (RunRecord JSON documents), ``started_at``, ``finished_at``, ``wall_s``, ``pid``,
        and optionally ``distributions`` (``[{"step", "role", "kind", "payload"}]``) and ``distributions_error``."""
        key = cell["key"]
        base = {"cell_key": key, "dataset": cell["dataset"], "model": cell["model"], "request": cell["request_label"],
                "seed": cell["seed"], "method": cell["method"], "label": cell["label"],
                "cell": to_json_bytes(cell).decode(), "started_at": outcome.get("started_at"),
                "finished_at": outcome.get("finished_at") or now(), "wall_s": outcome.get("wall_s"),
                "pid": outcome.get("pid")}
        records: Sequence[Mapping[str, Any]] = outcome.get("records") or []
        rows: list[dict[str, Any]] = []
        metric_rows: list[tuple[str, str, str, float | None]] = []
        if outcome["status"] == "failed" or not records:
            rows.append({**base, "run_key": f"{key}:0", "step": 0, "status": "failed",
                         "error": outcome.get("error") or "the cell produced no record",
                         "traceback": outcome.get("traceback"), "request_key": None, "record": None, "time_s": None})
        for step, rec in enumerate(records):
            run_key = f"{key}:{step}"
            req_key = request_key(rec, cell)
            rows.append({**base, "run_key": run_key, "step": step, "status": rec.get("status") or "unknown",
                         "error": rec.get("status_reason") or None, "traceback": None, "request_key": req_key,
                         "record": to_json_bytes(rec).decode(), "time_s": rec.get("time_s")})
            for role, section in _ROLE_FIELDS.items():
                owner = run_key if role in RUN_ROLES else req_key
                if owner == req_key:  # a method-bound baseline row is the run's own
                    bound = [(run_key, m, role, _number(v)) for m, v in (rec.get(section) or {}).items()
                             if method_bound(m)]
                    metric_rows += bound
                metric_rows += [(owner, m, role, _number(v)) for m, v in (rec.get(section) or {}).items()]
        dist_rows = _distribution_rows(key, cell, records, outcome)
        columns = list(rows[0])
        sql = f"INSERT INTO runs ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
        with self._transaction():
            self.conn.executemany(sql, [tuple(r[c] for c in columns) for r in rows])
            self.conn.executemany("INSERT OR IGNORE INTO metrics (key, metric, role, value) VALUES (?, ?, ?, ?)",
                                  metric_rows)  # IGNORE: a request's baseline is stored by its first cell
            if dist_rows:
                self.conn.executemany("INSERT OR IGNORE INTO distributions (key, role, kind, payload) "
                                      "VALUES (?, ?, ?, ?)", dist_rows)

    def insert_distributions(self, rows: Iterable[tuple[str, str, str, Any]]) -> None:
        """Store summaries ``(key, role, kind, payload)`` as exported (:mod:`expunge.harness.compact` rebuilding a
        store); rows already present are kept."""
        with self._transaction():
            self.conn.executemany("INSERT OR IGNORE INTO distributions (key, role, kind, payload) VALUES (?, ?, ?, ?)",
                                  [(k, r, kind, _compact(p)) for k, r, kind, p in rows])

    def runs(self) -> list[dict[str, Any]]:
        """Every stored run row (without the record and cell JSON), in insertion order."""
        cols = ", ".join(RUN_COLUMNS)
        return [dict(r) for r in self.conn.execute(f"SELECT {cols} FROM runs ORDER BY id")]

    def records(self) -> list[dict[str, Any]]:
        """Every stored RunRecord JSON document, in insertion order (failed cells have none)."""
        return [json.loads(r[0]) for r in self.conn.execute(
            "SELECT record FROM runs WHERE record IS NOT NULL ORDER BY id")]

    def long_rows(self) -> Iterator[dict[str, Any]]:
        """The pandas-friendly long form: one row per (run, metric, role) with the run's identity columns; the
        Original's and Retrain's values are joined in from their request. A failed cell gives one row with no
        metric, so its status and error are visible."""
        ident = ("run_key", "dataset", "model", "request", "seed", "method", "label", "status")
        for run in self.runs():
            head = {k: run[k] for k in ident}
            found = self.conn.execute(
                "SELECT metric, role, value, key = ? AS own FROM metrics WHERE key = ? OR "
                "(key = ? AND role IN ('original', 'retrain')) ORDER BY metric, role, own",
                (run["run_key"], run["run_key"], run["request_key"])).fetchall()
            # the run's own row wins: a method-bound baseline (method_bound) is stored under the run's key too
            values = list({(v["metric"], v["role"]): v for v in found}.values())
            if not values:
                yield {**head, "metric": None, "role": None, "value": None, "error": run["error"]}
            for v in values:
                yield {**head, "metric": v["metric"], "role": v["role"], "value": v["value"], "error": run["error"]}

    def has_distributions(self) -> bool:
        """Whether the store has the ``distributions`` table (a store written before it existed has not)."""
        return self.conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'distributions'"
                                 ).fetchone() is not None

    def distributions(self) -> dict[tuple[str, str, str], dict[str, Any]]:
        """Every stored summary as ``{(key, role, kind): payload}`` (empty for a store without the table)."""
        if not self.has_distributions():
            return {}
        return {(r[0], r[1], r[2]): json.loads(r[3])
                for r in self.conn.execute("SELECT key, role, kind, payload FROM distributions")}

    def run_distributions(self, run_key: str, request_key: str | None) -> dict[str, dict[str, Any]]:
        """One run's summaries by role (``unlearned`` and, from its request, ``original`` and ``retrain``), each
        ``{kind: payload}``: what ``expunge results --format json`` shows beside the record."""
        if not self.has_distributions():
            return {}
        out: dict[str, dict[str, Any]] = {}
        for role, kind, payload in self.conn.execute(
                "SELECT role, kind, payload FROM distributions WHERE (key = ? AND role = 'unlearned') OR "
                "(key = ? AND role IN ('original', 'retrain')) ORDER BY role, kind", (run_key, request_key)):
            out.setdefault(role, {})[kind] = json.loads(payload)
        return out

    def _transaction(self) -> _Tx:
        return _Tx(self.conn)


class _Tx:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on error): the write lock is taken up front, so a reader
    never sees half a cell and a writer never deadlocks upgrading a read lock."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, typ: Any, exc: Any, tb: Any) -> None:
        self.conn.execute("ROLLBACK" if typ is not None else "COMMIT")


def request_key(record: Mapping[str, Any], cell: Mapping[str, Any]) -> str:
    """What a record's Original and Retrain values depend on: both models, the request and the metric selection."""
    request = record.get("request") or {}
    return ArtifactStore.key({"original": record.get("original_key"), "oracle": record.get("oracle_key"),
                              "request": request.get("fingerprint") or record.get("forget"),
                              "tier": cell.get("tier"), "metrics": cell.get("metrics")})


def _distribution_rows(key: str, cell: Mapping[str, Any], records: Sequence[Mapping[str, Any]],
                       outcome: Mapping[str, Any]) -> list[tuple[str, str, str, str]]:
    """The ``distributions`` rows of a cell: the unlearned model's under its run key, the baselines' under their
    request key, and the error (if any) under the first run."""
    rows = []
    for entry in outcome.get("distributions") or []:
        step, role = int(entry["step"]), str(entry["role"])
        if not 0 <= step < len(records):
            continue
        owner = f"{key}:{step}" if role == "unlearned" else request_key(records[step], cell)
        rows.append((owner, role, str(entry["kind"]), _compact(entry["payload"])))
    if outcome.get("distributions_error") and records:
        rows.append((f"{key}:0", "unlearned", "error", _compact({"error": outcome["distributions_error"]})))
    return rows


def _compact(payload: Any) -> str:
    """One-line strict JSON; a payload JSON cannot hold (NaN) becomes an error payload rather than failing the
    cell's write."""
    try:
        return json.dumps(payload, separators=(",", ":"), sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        return json.dumps({"error": f"{type(exc).__name__}: {exc}"})


@functools.cache
def method_bound(metric: str) -> bool:
    """Whether ``metric``'s Original and Retrain values depend on the method under test (they need it:
    :meth:`expunge.metrics.base.Metric.run_needs_for`), so they cannot be stored once per request."""
    from expunge.metrics.base import METRICS

    try:
        cls = METRICS.get(metric)
    except ExpungeError:
        return False
    return not cls.unlearned_only and "method" in cls().run_needs_for("original")


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
