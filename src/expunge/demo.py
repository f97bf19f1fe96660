"""``expunge demo``: every registered method on one class-forgetting request, beside Original and Retrain."""

from __future__ import annotations

import time
from pathlib import Path

from expunge._io import atomic_write_json, atomic_write_text
from expunge.experiment import prepare, run_one
from expunge.methods.base import METHODS
from expunge.report import markdown_table, print_table
from expunge.store import ArtifactStore


def run_demo(*, out: Path, data: str = "digits", model: str = "cnn", forget: str = "class:3", seed: int = 0,
             store: ArtifactStore | None = None) -> list[dict[str, object]]:
    t0 = time.perf_counter()
    prep = prepare(data, model, forget, seed=seed, store=store)
    records = []
    for name in METHODS.names():
        record, _ = run_one(prep, name, None)
        records.append(record)
    title = f"expunge demo: {data}/{model}, forget {forget}, seed {seed}"
    print_table(records, title)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "results.json", records)
    md = (f"# {title}\n\nOriginal trained {prep.original.train_time_s:.2f} s; Retrain (oracle) "
          f"{prep.oracle.train_time_s:.2f} s on {len(prep.splits.retain)} retain examples; "
          f"{len(prep.splits.forget)} forgotten. Total demo wall time {time.perf_counter() - t0:.1f} s.\n\n"
          + markdown_table(records) + "\nΔ = absolute gap to Retrain. Metric definitions: `expunge metrics`. "
          "Every method runs with its paper defaults; tuned values: `expunge unlearn --preset digits/cnn/full-class`."
          "\n")
    atomic_write_text(out / "report.md", md)
    return records
