"""The continual grid's stream measures, which the harness page (``continual.md``) has no column for: per forget step
of the stream, the average accuracy over the learned-and-kept classes, backward transfer, the accuracy on the removed
classes and on the cumulative forget set, each beside the Original (the stream learned without forgetting) and the
Retrain (joint training on everything still allowed), the gaps to the Retrain, and the forget step's time against the
Retrain's.

    OMP_NUM_THREADS=1 expunge bench configs/continual.yaml --out runs/bench/continual --workers 1
    expunge results runs/bench/continual --format jsonl --to benchmarks/results/continual
    expunge results benchmarks/results/continual --format markdown > benchmarks/results/continual.md
    python benchmarks/continual.py benchmarks/results/continual

Writes ``benchmarks/results/continual-stream.md``: mean ± 95% Student-t half-width over seeds
(``expunge.metrics.aggregate.format_mean_ci``, as the harness page); a gap is |method − Retrain| per seed, averaged;
the time ratio is the method's forget-step time / the Retrain's training time, per seed. The last table averages
each seed's steps first (as the harness page does for a stream).
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from expunge._io import atomic_write_text
from expunge.harness.compact import open_results
from expunge.metrics.aggregate import format_mean_ci
from expunge.record import RunRecord

RESULTS = Path(__file__).parent / "results"
VALUES = ("cl_avg_acc", "cl_bwt", "cl_removed_acc", "forget_acc", "test_acc")
GAPS = ("cl_avg_acc", "cl_removed_acc", "forget_acc")


def load(directory: Path) -> list[RunRecord]:
    with open_results(directory) as rs:
        rows = rs.conn.execute("SELECT record FROM runs WHERE record IS NOT NULL ORDER BY id").fetchall()
    return [RunRecord.from_json(json.loads(doc)) for (doc,) in rows]


def _gap(r: RunRecord, role: str, metric: str) -> float | None:
    v, ref = getattr(r, role).get(metric), r.retrain.get(metric)
    return None if v is None or ref is None else abs(v - ref)


def _ratio(r: RunRecord) -> float | None:
    return r.time_ratio_to_retrain


def rows(records: list[RunRecord]) -> list[tuple[str, dict[str, list[float | None]]]]:
    """(row label, column → per-seed values) for the Original, the Retrain and each method."""
    by_seed: dict[int, RunRecord] = {}
    for r in records:
        by_seed.setdefault(r.seed, r)
    base = list(by_seed.values())
    out: list[tuple[str, dict[str, list[float | None]]]] = []
    for role, label in (("original", "Original (no forgetting)"), ("retrain", "Retrain (oracle)")):
        cols: dict[str, list[float | None]] = {m: [getattr(r, role).get(m) for r in base] for m in VALUES}
        cols.update({f"Δ{m}": [_gap(r, role, m) for r in base] for m in GAPS})
        cols["time ratio"] = [1.0 if role == "retrain" else None for _ in base]
        out.append((label, cols))
    for label in dict.fromkeys(r.label or r.method for r in records):
        recs = [r for r in records if (r.label or r.method) == label]
        cols = {m: [r.metrics.get(m) for r in recs] for m in VALUES}
        cols.update({f"Δ{m}": [_gap(r, "metrics", m) for r in recs] for m in GAPS})
        cols["time ratio"] = [_ratio(r) for r in recs]
        out.append((label, cols))
    return out


def table(records: list[RunRecord]) -> list[str]:
    header = [*VALUES, *(f"Δ{m}" for m in GAPS), "time ratio"]
    lines = ["| model | " + " | ".join(header) + " |", "|---" * (len(header) + 1) + "|"]
    for label, cols in rows(records):
        lines.append(f"| {label} | " + " | ".join(format_mean_ci(cols[h]) if any(v is not None for v in cols[h])
                                                  else "" for h in header) + " |")
    return lines


def per_seed_means(records: list[RunRecord]) -> list[RunRecord]:
    """One pseudo-record per (seed, method): each value the mean over the stream's steps."""
    out = []
    groups: dict[tuple[int, str], list[RunRecord]] = {}
    for r in records:
        groups.setdefault((r.seed, r.label or r.method), []).append(r)
    for recs in groups.values():
        def mean(role: str, metric: str, recs: list[RunRecord] = recs) -> float | None:
            vals = [getattr(r, role).get(metric) for r in recs]
            vals = [v for v in vals if v is not None]
            return statistics.fmean(vals) if vals else None

        first = recs[0]
        fields = {role: {m: mean(role, m) for m in VALUES} for role in ("metrics", "original", "retrain")}
        ratios = [r.time_ratio_to_retrain for r in recs if r.time_ratio_to_retrain is not None]
        out.append(first.replace(**fields, time_ratio_to_retrain=statistics.fmean(ratios) if ratios else None))
    return out


def page(records: list[RunRecord]) -> str:
    seeds = sorted({r.seed for r in records})
    first = records[0]
    info = first.extra.get("scenario_info", {})
    params = first.extra.get("scenario_params", {})
    lines = [
        "# continual — stream measures",
        "",
        f"Generated by `python benchmarks/continual.py` from the committed result store (`{first.dataset}` / "
        f"`{first.model}`, seeds {seeds}; stream `{params.get('stream')}`, buffer {params.get('buffer')}). "
        "Values are mean ± 95% Student-t half-width over seeds. `cl_avg_acc`: test accuracy on the classes learned "
        "and kept; `cl_bwt`: backward transfer over the kept classes of the learned tasks (the Retrain has no "
        "trajectory: blank); `cl_removed_acc`: test accuracy on the classes removed so far; `forget_acc`: accuracy "
        "on every training example forgotten so far. Δ = |model − Retrain|, per seed. Time ratio = the forget "
        "step's unlearning time / the Retrain's training time (learning steps are not counted). The harness page "
        "`continual.md` has the tier-0 table of the same runs.",
        "",
    ]
    stream = list(info.get("stream", []))
    forgets = [i for i, text in enumerate(stream) if text.startswith("forget:")]
    for k in sorted({int(r.extra.get("step", 0)) for r in records}):
        recs = [r for r in records if r.extra.get("step") == k]
        before = [t for t in stream[:forgets[k - 1]] if t.startswith("learn:")] if k - 1 < len(forgets) else []
        lines += [f"## step {k}: `{recs[0].extra.get('step_request')}`", "",
                  f"{len(seeds)} seed(s); {recs[0].request.get('n_forget')} training examples forgotten so far; "
                  f"learned before it: {', '.join(f'`{t}`' for t in before)}.", "", *table(recs), ""]
    lines += ["## all forget steps (each seed's steps averaged first)", "", *table(per_seed_means(records)), ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("directory", type=Path, nargs="?", default=RESULTS / "continual")
    ap.add_argument("--out", type=Path, default=RESULTS / "continual-stream.md")
    args = ap.parse_args()
    atomic_write_text(args.out, page(load(args.directory)))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
