"""The compact, committable form of a result store, and its inverse: JSON Lines a store is rebuilt from exactly.

A bench folder's ``results.sqlite`` holds each run's full :class:`~expunge.record.RunRecord`, whose Original and
Retrain values (about 40% of a record) repeat on every method of a request. :func:`export` writes:

* ``runs.jsonl`` — one line per stored run (a sequential cell has one per step, a failed cell one without a record):
  ``cell`` (the cell's description: :meth:`~expunge.harness.grid.Cell.describe`), ``outcome`` (when and where it
  ran; the error and traceback of a failed cell), ``record`` (the record without ``original`` and ``retrain``, and
  without ``gap_to_retrain`` when that is |unlearned − retrain| recomputed bit for bit) and ``baseline`` (its id).
  Gzipped (``runs.jsonl.gz``, reproducible bytes) when larger than :data:`GZIP_OVER`.
* ``baselines.jsonl`` — the Original's and Retrain's values once per distinct pair, by id (a content hash: records
  of one request measured against two trainings of its oracle keep both).
* ``meta.json`` — the store's ``meta`` table (the config text; ``imported_from`` for imported grids).
* ``distributions.jsonl`` — the per-example summaries the report draws (:mod:`expunge.harness.distributions`), one
  line per ``(key, role, kind)`` row as stored; absent when the store holds none (imported grids).

:func:`load` writes the lines back through :meth:`ResultStore.write_cell <expunge.harness.results.ResultStore.
write_cell>` in their order, so the rebuilt store's runs, records and metric rows equal the original's.
:func:`open_results` reads either form, so ``expunge results`` and ``expunge report`` take a committed folder.
"""

from __future__ import annotations

import gzip
import json
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from expunge._io import atomic_write_bytes, atomic_write_json, stable_hash
from expunge.harness.results import DB_NAME, NoResults, ResultStore
from expunge.protocols.pipeline import gaps

RUNS, BASELINES, META, DISTRIBUTIONS = "runs.jsonl", "baselines.jsonl", "meta.json", "distributions.jsonl"
RECORDS = "results.json"  # what `expunge demo` writes: a JSON list of run records, one per method
GZIP_OVER = 1_000_000  # bytes: above this runs.jsonl is written gzipped (git stores it compressed either way)
_OUTCOME = ("started_at", "finished_at", "wall_s", "pid")


def _line(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)


def compact_record(record: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the record without its baselines, the baselines ``{"original", "retrain"}``)."""
    rec = dict(record)
    base = {"original": rec.pop("original", None), "retrain": rec.pop("retrain", None)}
    if rec.get("gap_to_retrain") == gaps(rec.get("metrics") or {}, base["retrain"] or {}):
        del rec["gap_to_retrain"]  # derivable: rebuilt by full_record
    return rec, base


def full_record(rec: Mapping[str, Any], base: Mapping[str, Any]) -> dict[str, Any]:
    out = {**rec, "original": base["original"], "retrain": base["retrain"]}
    if "gap_to_retrain" not in out:
        out["gap_to_retrain"] = gaps(out.get("metrics") or {}, base["retrain"] or {})
    return out


def export(rs: ResultStore, out: str | Path) -> dict[str, int]:
    """Write ``rs`` as runs / baselines JSON Lines and ``meta.json`` into ``out``; the files' sizes in bytes."""
    out = Path(out)
    runs, baselines = [], {}
    rows = rs.conn.execute("SELECT run_key, cell, status, error, traceback, record, started_at, finished_at, wall_s, "
                           "pid FROM runs ORDER BY id").fetchall()
    for row in rows:
        cell = json.loads(row["cell"])
        line: dict[str, Any] = {"cell": cell, "outcome": {k: row[k] for k in _OUTCOME}}
        if row["record"] is None:
            line["outcome"].update(status="failed", error=row["error"], traceback=row["traceback"])
        else:
            rec, base = compact_record(json.loads(row["record"]))
            bid = stable_hash(base)[:16]
            baselines.setdefault(bid, {"id": bid, **base})
            line.update(record=rec, baseline=bid)
        runs.append(_line(line))
    text = ("\n".join(runs) + "\n").encode() if runs else b""
    sizes: dict[str, int] = {}
    for stale in (out / RUNS, out / f"{RUNS}.gz"):
        stale.unlink(missing_ok=True)
    if len(text) > GZIP_OVER:
        atomic_write_bytes(out / f"{RUNS}.gz", data := gzip.compress(text, mtime=0))
        sizes[f"{RUNS}.gz"] = len(data)
    else:
        atomic_write_bytes(out / RUNS, text)
        sizes[RUNS] = len(text)
    base_text = "".join(_line(b) + "\n" for b in baselines.values()).encode()
    atomic_write_bytes(out / BASELINES, base_text)
    atomic_write_json(out / META, rs.meta())
    sizes[BASELINES], sizes[META] = len(base_text), (out / META).stat().st_size
    dists = rs.distributions()
    (out / DISTRIBUTIONS).unlink(missing_ok=True)
    if dists:
        dist_text = "".join(_line({"key": k, "role": r, "kind": kind, "payload": p}) + "\n"
                            for (k, r, kind), p in sorted(dists.items())).encode()
        atomic_write_bytes(out / DISTRIBUTIONS, dist_text)
        sizes[DISTRIBUTIONS] = len(dist_text)
    return sizes


def _read_lines(path: Path) -> list[dict[str, Any]]:
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    return [json.loads(line) for line in raw.decode().splitlines() if line.strip()]


def runs_file(directory: str | Path) -> Path | None:
    """The folder's ``runs.jsonl`` or ``runs.jsonl.gz``; None when it has neither."""
    for name in (RUNS, f"{RUNS}.gz"):
        if (path := Path(directory) / name).is_file():
            return path
    return None


def load(src: str | Path, dest: str | Path) -> ResultStore:
    """Rebuild the result store exported to ``src`` as a new store in ``dest`` (which must not hold one); the open
    store. Lines of one cell (its steps) are written together, in one transaction, in file order."""
    src, dest = Path(src), Path(dest)
    path = runs_file(src)
    if path is None:
        raise NoResults(f"{src} holds no exported results ({RUNS} is missing). Fix: pass a folder written by "
                        "`expunge results DIR --format jsonl`")
    if (dest / DB_NAME).exists():
        raise NoResults(f"{dest} already holds a result store; load the export into an empty folder")
    base = {b["id"]: b for b in _read_lines(src / BASELINES)} if (src / BASELINES).is_file() else {}
    cells: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
    for line in _read_lines(path):
        cell = line["cell"]
        _, outcome = cells.setdefault(cell["key"], (cell, {**line["outcome"], "records": []}))
        if line.get("record") is not None:
            outcome["records"].append(full_record(line["record"], base[line["baseline"]]))
    rs = ResultStore(dest)
    meta = json.loads((src / META).read_text()) if (src / META).is_file() else {}
    if meta:
        rs.set_meta(**meta)
    for cell, outcome in cells.values():
        rs.write_cell(cell, {**outcome, "status": outcome.get("status") or "ok"})
    if (src / DISTRIBUTIONS).is_file():
        rs.insert_distributions((d["key"], d["role"], d["kind"], d["payload"])
                                for d in _read_lines(src / DISTRIBUTIONS))
    return rs


def load_records(src: str | Path, dest: str | Path) -> ResultStore:
    """A result store in ``dest`` holding the run records of ``src/results.json`` (``expunge demo``'s output), one
    cell per record, so that the tools that read bench results (``expunge results``, ``expunge serve``) read a demo
    folder too. A record carries what a cell needs (dataset, model, request, seed, method, label, params); the
    training recipe is not in it, so the cells' ``recipe`` is empty (the dataset's default, which the demo uses).

    Raises:
        NoResults: ``src`` has no results.json, or it is not a list of run records (the file names what is wrong)."""
    from expunge.record import RunRecord

    path = Path(src) / RECORDS
    try:
        docs = json.loads(path.read_text(encoding="utf-8"))
        records = [RunRecord.from_json(d) for d in docs]
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise NoResults(f"{path} is not a list of run records ({type(exc).__name__}: {exc}). Fix: pass the --out "
                        "folder of `expunge demo` or of an `expunge bench` run") from None
    if (Path(dest) / DB_NAME).exists():
        raise NoResults(f"{dest} already holds a result store; load the records into an empty folder")
    rs = ResultStore(dest)
    rs.set_meta(title=f"{Path(src).name}: {len(records)} run record(s) from {RECORDS}")
    for rec in records:
        cell = {"dataset": rec.dataset, "model": rec.model, "request_label": rec.forget,
                "request": {"forget": rec.forget}, "seed": rec.seed, "method": rec.method, "label": rec.label,
                "params": dict(rec.params), "params_source": rec.params_source, "recipe": {}, "metrics": None,
                "tier": 0}
        cell["key"] = stable_hash(cell)
        rs.write_cell(cell, {"status": rec.status if rec.status != "unknown" else "ok", "records": [rec.to_json()],
                             "finished_at": rec.created_at})
    return rs


@contextmanager
def open_results(directory: str | Path) -> Iterator[ResultStore]:
    """The result store of ``directory``: its ``results.sqlite``, else one rebuilt in a temporary folder (removed on
    exit) from its exported JSON Lines or from ``expunge demo``'s ``results.json``; :class:`NoResults` when it has
    none of them."""
    directory = Path(directory)
    rebuild = load if runs_file(directory) is not None else load_records if (directory / RECORDS).is_file() else None
    if (directory / DB_NAME).is_file() or rebuild is None:
        with ResultStore(directory, create=False) as rs:
            yield rs
        return
    with tempfile.TemporaryDirectory(prefix="expunge-results-") as tmp, rebuild(directory, tmp) as rs:
        yield rs
