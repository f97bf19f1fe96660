"""The graph grid's graph-specific measures, which the harness page (``graph.md``) has no column for: the JS
divergence to the Retrain on the forget set, and on edge requests the deleted-edge AUC and the link-stealing
membership AUC — per dataset/model, request and method, with the Original and the Retrain beside them.

    expunge bench configs/graph.yaml --out runs/bench/graph --workers 1
    expunge results runs/bench/graph --format jsonl --to benchmarks/results/graph
    python benchmarks/graph_edges.py benchmarks/results/graph

Reads the committed result store (``runs.jsonl``) and writes ``benchmarks/results/graph-edges.md``: mean ± 95%
Student-t half-width over seeds (``expunge.metrics.aggregate.format_mean_ci``, as the harness page), the gap to the
Retrain as |method − Retrain| per seed, averaged, and the share of seeds where the Original and the Retrain are
separable on the metric (the record's ``power``: "no power" means doing nothing already matches retraining on it).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from expunge._io import atomic_write_text
from expunge.harness.compact import open_results
from expunge.metrics.aggregate import format_mean_ci
from expunge.record import RunRecord

RESULTS = Path(__file__).parent / "results"
METRICS = ("js_to_retrain_forget", "edge_auc_forget", "edge_mia_auc")


def load(directory: Path) -> list[tuple[str, RunRecord]]:
    import json

    with open_results(directory) as rs:
        rows = rs.conn.execute("SELECT request, record FROM runs WHERE record IS NOT NULL ORDER BY id").fetchall()
    return [(str(req), RunRecord.from_json(json.loads(doc))) for req, doc in rows]


def table(records: list[RunRecord], metric: str) -> list[str]:
    labels = list(dict.fromkeys(r.label or r.method for r in records))
    first = {}
    for r in records:  # one Original / Retrain value per seed (every method's record carries the same baseline)
        first.setdefault(r.seed, r)
    lines = [f"| {metric} | value | gap to Retrain | seeds with power |", "|---|---|---|---|"]
    power = sum(1 for r in first.values() if r.power.get(metric) == "ok")
    lines.append(f"| Original | {format_mean_ci([r.original.get(metric) for r in first.values()])} | "
                 f"{format_mean_ci(_gaps(list(first.values()), 'original', metric))} | {power}/{len(first)} |")
    lines.append(f"| Retrain | {format_mean_ci([r.retrain.get(metric) for r in first.values()])} | | |")
    for label in labels:
        recs = [r for r in records if (r.label or r.method) == label]
        lines.append(f"| {label} | {format_mean_ci([r.metrics.get(metric) for r in recs])} | "
                     f"{format_mean_ci(_gaps(recs, 'metrics', metric))} | |")
    return lines


def _gaps(recs: list[RunRecord], role: str, metric: str) -> list[float | None]:
    out: list[float | None] = []
    for r in recs:
        v, ref = getattr(r, role).get(metric), r.retrain.get(metric)
        out.append(None if v is None or ref is None else abs(v - ref))
    return out


def page(rows: list[tuple[str, RunRecord]]) -> str:
    seeds = sorted({r.seed for _, r in rows})
    lines = ["# graph: graph-specific measures", "",
             f"Seeds {seeds}; the grid of `configs/graph.yaml` (page: `graph.md`). Mean ± 95% Student-t half-width "
             "over seeds. Node outputs are computed on the graph after the deletion for every model (the graph "
             "task's request view); the forget split keeps the deleted elements as they were. `js_to_retrain_forget`: "
             "mean Jensen-Shannon divergence (base 2) between the model's and the Retrain's posteriors on the forget "
             "set (0 = the Retrain). `edge_auc_forget`: link-prediction AUC σ(z_u·z_v), deleted edges vs non-edges "
             "at the same endpoints. `edge_mia_auc`: link-stealing Attack-0 (He et al. 2021). Seeds with power: "
             "Original and Retrain more than two standard errors apart.", ""]
    groups: dict[tuple[str, str], list[RunRecord]] = {}
    for req, r in rows:
        groups.setdefault((f"{r.dataset}/{r.model}", req), []).append(r)
    for (where, req), recs in groups.items():
        measured = [m for m in METRICS if any(r.metrics.get(m) is not None for r in recs)]
        lines += [f"## {where} {req}", ""]
        for metric in measured:
            lines += [*table(recs, metric), ""]
    return "\n".join(lines).rstrip() + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("directory", type=Path, help="a bench folder or its exported JSON Lines (runs.jsonl)")
    ap.add_argument("--name", default="graph-edges", help="results page name (benchmarks/results/NAME.md)")
    args = ap.parse_args()
    atomic_write_text(RESULTS / f"{args.name}.md", page(load(args.directory)))


if __name__ == "__main__":
    main()
