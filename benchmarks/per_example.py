"""Per-example parity on random and owners requests: the verdict of every seed of a grid that measures U-LiRA and
KLoM (``configs/digits-per-example.yaml``), read from its result store.

    expunge bench configs/digits-per-example.yaml --out runs/digits-per-example --workers 1
    python benchmarks/per_example.py runs/digits-per-example [--name per_example_digits]

Writes benchmarks/results/NAME.csv (one row per record: the per-example metrics of the unlearned model, the
Original and the Retrain, each criterion's status and the verdict) and NAME.md (generated from the same rows). The
verdicts are :func:`expunge.verdict.judge`'s with the task's criteria; nothing here re-judges.
"""

from __future__ import annotations

import argparse
import csv
import io
from collections import Counter
from pathlib import Path
from typing import Any

from expunge._io import atomic_write_text
from expunge.harness.results import ResultStore
from expunge.record import RunRecord
from expunge.tasks import get_task
from expunge.verdict import judge

RESULTS = Path(__file__).parent / "results"
PER_EXAMPLE = ("ulira_auc", "klom_p95_forget")
POPULATION = ("forget_acc", "test_acc", "mia_loss_auc")


def rows_of(records: list[RunRecord]) -> list[dict[str, Any]]:
    rows = []
    for r in records:
        v = judge(r)
        status = {c.metric: c.status for c in v.criteria}
        row: dict[str, Any] = {"request": r.forget, "method": r.label or r.method, "seed": r.seed,
                               "verdict": v.label, "at_parity": v.at_parity}
        for m in PER_EXAMPLE:
            for role, values in (("unlearned", r.metrics), ("original", r.original), ("retrain", r.retrain)):
                x = values.get(m)
                row[f"{m}_{role}"] = None if x is None else round(float(x), 4)
        for m in (*PER_EXAMPLE, *POPULATION):
            row[f"{m}_status"] = status.get(m, "")
        rows.append(row)
    return rows


def fmt(x: Any) -> str:
    return "–" if x is None or x == "" else f"{x:.3f}" if isinstance(x, float) else str(x)


def write(rows: list[dict[str, Any]], name: str, source: Path, meta: dict[str, str]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    RESULTS.mkdir(parents=True, exist_ok=True)
    atomic_write_text(RESULTS / f"{name}.csv", buf.getvalue())
    task = get_task("classification")
    tol = ", ".join(f"`{m}` {'one-sided ' if m in task.one_sided_criteria else ''}≤ {t}"
                    for m, t in task.per_example_criteria.items())
    md = [f"# Per-example parity: {meta.get('name', name)}", "",
          f"Grid `{meta.get('config_path', source)}`, judged by `expunge.verdict.judge` with the classification "
          f"task's criteria: population |Δ forget acc| ≤ 0.02, |Δ test acc| ≤ 0.02, |Δ loss-MIA AUC| ≤ 0.05, and on "
          f"random and owners requests the per-example criteria {tol}. KLoM's Retrain row is the Retrain-vs-Retrain "
          "noise floor (independent retrains vs the oracles), its Original row doing nothing; a one-sided criterion "
          "is met at or below the floor plus its tolerance. `pop.` lists the population criteria's statuses "
          "(forget acc / test acc / MIA AUC).", "",
          "## Seeds at parity", "", "| request | method | at parity | verdicts |", "|---|---|---|---|"]
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["request"], row["method"]), []).append(row)
    for (req, method), rs in groups.items():
        labels = Counter(r["verdict"] for r in rs)
        md.append(f"| {req} | {method} | {sum(r['at_parity'] for r in rs)}/{len(rs)} seeds | "
                  + ", ".join(f"{k} ×{n}" for k, n in labels.items()) + " |")
    n = len(rows)
    power = ", ".join(f"`{m}` had power on {sum(r[f'{m}_status'] in ('met', 'missed') for r in rows)}/{n} records"
                      for m in PER_EXAMPLE)
    saturated = sum(r["klom_p95_forget_original"] is not None
                    and r["klom_p95_forget_original"] == r["klom_p95_forget_retrain"] for r in rows)
    md += ["", f"Per-example criteria: {power}. KLoM's Original row equal to its Retrain row (the p95 saturated: "
           f"the two sets of N margins share no bin on over 5% of the examples) on {saturated}/{n} records."]
    md += ["", "## Per seed", "",
           "| request | method | seed | U-LiRA AUC (unl. / orig. / retr.) | U-LiRA | KLoM p95 forget (unl. / orig. / "
           "retr.) | KLoM | pop. | verdict |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ul = " / ".join(fmt(r[f"ulira_auc_{k}"]) for k in ("unlearned", "original", "retrain"))
        kl = " / ".join(fmt(r[f"klom_p95_forget_{k}"]) for k in ("unlearned", "original", "retrain"))
        pop = " / ".join(r[f"{m}_status"] for m in POPULATION)
        md.append(f"| {r['request']} | {r['method']} | {r['seed']} | {ul} | {r['ulira_auc_status']} | {kl} | "
                  f"{r['klom_p95_forget_status']} | {pop} | {r['verdict']} |")
    md += ["", f"Numbers: `benchmarks/results/{name}.csv`. Rerun: `expunge bench {meta.get('config_path', 'CONFIG')} "
           f"--out DIR` then `python benchmarks/per_example.py DIR --name {name}`.", ""]
    atomic_write_text(RESULTS / f"{name}.md", "\n".join(md))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bench", type=Path, help="the --out folder of the expunge bench run")
    ap.add_argument("--name", default="per_example_digits")
    ap.add_argument("--config", default=None, help="the config named on the page (default: the path the bench run "
                                                   "read, from the store)")
    args = ap.parse_args()
    with ResultStore(args.bench, create=False) as store:
        records = [RunRecord.from_json(d) for d in store.records()]
        meta = store.meta()
    if args.config:  # as the page names it (the run may have read a copy)
        meta["config_path"] = args.config
    rows = rows_of(records)
    if not rows:
        raise SystemExit(f"per_example: {args.bench} holds no records")
    write(rows, args.name, args.bench, meta)
    print(f"{len(rows)} records -> {RESULTS / args.name}.csv/.md")


if __name__ == "__main__":
    main()
