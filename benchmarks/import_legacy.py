"""Import the records of the retired benchmark scripts (``method_zoo.py``, ``foundation.py``) into result stores and
write them in the committed compact form (:mod:`expunge.harness.compact`): ``benchmarks/results/<grid>/``.

The legacy files were lists of record JSON documents, one per (scenario, seed, method) row and sequential step, plus
an ``error`` row per method a scenario could not run. Every record is kept: read with :meth:`RunRecord.from_json
<expunge.record.RunRecord.from_json>` (older rows: status "unknown", NaN -> None) and stored as the run of a cell
synthesised from it — request (the scenario with its parameters, or the forget spec), seed, method, label (older
rows kept the label in ``method``: the method is the label's first word), params and their source — marked
``imported_from`` (the file and the last commit that changed it). An error row becomes a failed cell.

    python benchmarks/import_legacy.py [--keep]   # then: expunge results benchmarks/results/GRID --format markdown

``--keep`` leaves the legacy JSON files in place (by default they are deleted once their import is written); once
deleted (they were, in the commit that retired the scripts) they are read from the last commit that changed them.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from expunge.harness import compact
from expunge.harness.grid import cell_key
from expunge.harness.results import ResultStore
from expunge.record import RunRecord
from expunge.train.oracle import default_recipe

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
# grid -> (legacy file, the script that wrote it, dataset, model, page title)
LEGACY = {
    "fashion-zoo": ("method_zoo_fashion-mnist_cnn.json", "benchmarks/method_zoo.py --data fashion-mnist --model cnn",
                    "fashion-mnist", "cnn", "Method zoo: fashion-mnist / cnn"),
    "digits-zoo": ("method_zoo_digits_mlp.json", "benchmarks/method_zoo.py --data digits --model mlp", "digits", "mlp",
                   "Method zoo: digits / mlp"),
    "foundation": ("foundation.json", "benchmarks/foundation.py", "fashion-mnist", "cnn",
                   "Foundation benchmark: Fashion-MNIST, small CNN"),
}


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout


def last_commit(path: Path) -> str:
    """The last commit that added or changed ``path`` (so its content there is the legacy file)."""
    return git("log", "-1", "--format=%H", "--diff-filter=AM", "--", str(path.relative_to(ROOT))).strip() \
        or "uncommitted"


def legacy_rows(path: Path, commit: str) -> list[dict[str, Any]]:
    """The legacy file from the working tree, or (deleted since) from ``commit``."""
    text = path.read_text() if path.exists() else git("show", f"{commit}:{path.relative_to(ROOT)}")
    return json.loads(text)


def method_of(label: str) -> str:
    """``"ssd [tuned]"`` / ``"ssd:alpha=30"`` -> ``"ssd"``."""
    return re.split(r"[ :\[]", label, maxsplit=1)[0]


def cells_of(rows: list[dict[str, Any]], origin: dict[str, str], dataset: str, model: str) \
        -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(cell description, outcome) per (scenario, seed, label), in first-seen order; a cell's steps in step order."""
    groups: dict[tuple[str, int, str], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["scenario"], r["seed"], str(r.get("label") or r["method"])), []).append(r)
    out = []
    for (scenario, seed, label), rs in groups.items():
        rs.sort(key=lambda r: r.get("step", 0))
        first = rs[0]
        if "scenario_params" in first or ("error" in first and "forget" not in first):
            params = next((r["scenario_params"] for r in rows if r["scenario"] == scenario and "scenario_params" in r),
                          {})
            request: dict[str, Any] = {"scenario": scenario, "params": params}
        else:
            request = {"forget": first["forget"]}
        parts = {"imported": origin["file"], "dataset": dataset, "model": model, "request": request, "seed": seed,
                 "label": label}
        cell = {"key": cell_key(parts), "dataset": first.get("dataset", dataset), "model": first.get("model", model),
                "request": request, "request_label": scenario, "seed": seed, "method": method_of(label),
                "label": label, "params": first.get("params", {}),
                "params_source": first.get("preset") or first.get("params_source") or "paper defaults",
                "recipe": dataclasses.asdict(default_recipe(dataset)), "tier": 0, "metrics": None,
                "imported_from": origin}
        if "error" in first:
            # a legacy error row has no time: stamped with the legacy file's commit date (deterministic, no earlier)
            outcome = {"status": "failed", "error": first["error"], "records": [], "finished_at": origin["date"]}
        else:
            records = [RunRecord.from_json({**r, "method": method_of(label), "label": label}).to_json() for r in rs]
            outcome = {"status": "ok", "records": records, "started_at": rs[0].get("created_at"),
                       "finished_at": rs[-1].get("created_at")}
        out.append((cell, outcome))
    return out


def import_grid(grid: str, keep: bool) -> dict[str, Any]:
    file, script, dataset, model, title = LEGACY[grid]
    path = RESULTS / file
    commit = last_commit(path)
    rows = legacy_rows(path, commit)
    origin = {"file": f"benchmarks/results/{file}", "commit": commit, "script": script,
              "date": git("log", "-1", "--format=%cI", commit).strip()}
    out = RESULTS / grid
    with tempfile.TemporaryDirectory() as tmp, ResultStore(tmp) as rs:
        rs.set_meta(title=title, imported_from=json.dumps(origin, sort_keys=True))
        cells = cells_of(rows, origin, dataset, model)
        for cell, outcome in cells:
            rs.write_cell(cell, outcome)
        assert len(rs.runs()) == len(rows), "every legacy row is one stored run"
        sizes = compact.export(rs, out)
    before = len(json.dumps(rows, indent=2)) if not path.exists() else path.stat().st_size
    if not keep:
        path.unlink(missing_ok=True)
    return {"grid": grid, "legacy_bytes": before, "rows": len(rows), "cells": len(cells), **sizes}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("grids", nargs="*", default=list(LEGACY))
    ap.add_argument("--keep", action="store_true", help="keep the legacy JSON files")
    args = ap.parse_args()
    for grid in args.grids:
        print(json.dumps(import_grid(grid, args.keep)))


if __name__ == "__main__":
    main()
