"""Meta-evaluation of the language-model forget metrics (issue 26): is each metric faithful, is it robust?

    python benchmarks/llm_meta_eval.py [--dataset facts] [--forget owners:10] [--seeds 0 1 2] [--method neggrad]
                                       [--method-params '{"optimizer": "adamw", "lr": 1e-4}'] [--threads 1]

Per seed: the Original (learned the forget people) and the retain oracle (never did) of the request, from the cache
or trained with the dataset's recipe; an unlearned model (``--method``); the relearned unlearned model and
the relearned oracle (``--relearn-epochs`` of plain fine-tuning on the forget rows, AdamW, ``--relearn-lr``); the
unlearned model's weights quantised to int8 and to 4 bits (simulated: symmetric round-to-nearest per row of every
weight matrix, embeddings included). Every forget metric of ``KNOWLEDGE_ORIENTATION`` is computed for each, then
:func:`expunge.metrics.functional.llm_meta_eval.meta_evaluation_table` gives per metric its faithfulness (AUC of the
Originals vs the oracles over the seeds), relearning and quantisation robustness and their harmonic means.

Writes benchmarks/results/llm_meta_eval.csv (the table) and .md (generated from it, with the settings, seeds and
times), and llm_meta_eval_values.csv (every raw metric value). Nothing here is hand-written.
"""

from __future__ import annotations

import argparse
import copy
import csv
import io
import json
import platform
import time
from pathlib import Path
from typing import Any

import torch

from expunge._io import atomic_write_text
from expunge.api import prepare, unlearn
from expunge.metrics.base import EvalContext, evaluate
from expunge.metrics.functional.llm_meta_eval import KNOWLEDGE_ORIENTATION, meta_evaluation_table
from expunge.tasks import get_task

RESULTS = Path(__file__).parent / "results"
METRICS = tuple(KNOWLEDGE_ORIENTATION)


def quantised(model: torch.nn.Module, bits: int) -> torch.nn.Module:
    """A copy whose weight matrices are rounded to ``bits``-bit symmetric integers per row (absmax scale), then
    de-quantised: what a quantised deployment computes, in float (Zhang et al., arXiv 2410.16454, simulated)."""
    m = copy.deepcopy(model)
    levels = 2 ** (bits - 1) - 1
    with torch.no_grad():
        for p in m.parameters():
            if p.dim() < 2:
                continue
            scale = p.abs().amax(dim=-1, keepdim=True).clamp_min(1e-12) / levels
            p.copy_(torch.round(p / scale).clamp(-levels, levels) * scale)
    return m


def relearned(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, *, lr: float, epochs: int, seed: int,
              batch_size: int = 8) -> torch.nn.Module:
    """A copy fine-tuned for ``epochs`` on ``(x, y)`` (the forget rows) with the llm task's loss (AdamW, no decay)."""
    m = copy.deepcopy(model)
    m.train()
    task = get_task("llm")
    opt = torch.optim.AdamW(m.parameters(), lr=lr, weight_decay=0.0)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), batch_size):
            idx = order[i:i + batch_size]
            opt.zero_grad()
            task.batch_loss(m, (x[idx], y[idx])).backward()
            opt.step()
    return m.eval()


def run(args: argparse.Namespace) -> tuple[list[dict[str, Any]], dict[tuple[str, str, int, str], float | None],
                                           dict[str, Any]]:
    values: dict[tuple[str, str, int, str], float | None] = {}
    times: dict[str, float] = {}
    params = json.loads(args.method_params) if args.method_params else None
    for seed in args.seeds:
        t0 = time.perf_counter()
        prep = prepare(args.dataset, args.model, args.forget, seed=seed, metrics=[], progress=False)
        times[f"seed{seed}_prepare_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        _, unl = unlearn(prep, args.method, params, metrics=[], save=False)
        times[f"seed{seed}_unlearn_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        x, y = prep.dataset.train.x[prep.splits.forget], prep.dataset.train.y[prep.splits.forget]
        base = EvalContext(prep.dataset, prep.splits, {"original": prep.original.model,
                                                       "retrain": prep.oracle.model, "unlearned": unl}, seed=seed)
        res = evaluate(base, METRICS)
        for role in ("original", "retrain", "unlearned"):
            for m in METRICS:
                values[(role, "before", seed, m)] = res[m][role].value
        relearn = {"lr": args.relearn_lr, "epochs": args.relearn_epochs, "seed": seed}
        variants = {("unlearned", "relearn"): relearned(unl, x, y, **relearn),
                    ("retrain", "relearn"): relearned(prep.oracle.model, x, y, **relearn),
                    ("unlearned", "int8"): quantised(unl, 8), ("unlearned", "int4"): quantised(unl, 4)}
        for (model, cond), variant in variants.items():
            res = evaluate(base.with_model("unlearned", variant), METRICS, roles=("unlearned",))
            for m in METRICS:
                values[(model, cond, seed, m)] = res[m]["unlearned"].value
        times[f"seed{seed}_evaluate_s"] = time.perf_counter() - t0
        print(f"seed {seed}: " + ", ".join(f"{k} {v:.0f}s" for k, v in times.items() if k.startswith(f"seed{seed}")),
              flush=True)
    meta = {"dataset": args.dataset, "model": args.model, "forget": args.forget, "seeds": args.seeds,
            "method": args.method, "method_params": params or "the method's preset / paper defaults",
            "relearn": f"{args.relearn_epochs} epochs of AdamW lr {args.relearn_lr}, batch 8, on the forget rows",
            "threads": args.threads, "python": platform.python_version(), "torch": torch.__version__,
            "times_s": {k: round(v, 1) for k, v in times.items()}}
    return meta_evaluation_table(values, METRICS), values, meta


def fmt(x: Any) -> str:
    return "–" if x is None else f"{x:.3f}" if isinstance(x, float) else str(x)


def write(rows: list[dict[str, Any]], values: dict[tuple[str, str, int, str], float | None], meta: dict[str, Any],
          name: str) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    w.writeheader()
    w.writerows([{k: (round(v, 6) if isinstance(v, float) else v) for k, v in r.items()} for r in rows])
    atomic_write_text(RESULTS / f"{name}.csv", buf.getvalue())
    buf = io.StringIO()
    w2 = csv.writer(buf, lineterminator="\n")
    w2.writerow(["model", "condition", "seed", "metric", "value"])
    for (model, cond, seed, m), v in sorted(values.items(), key=lambda kv: (kv[0][3], kv[0][2], kv[0][0], kv[0][1])):
        w2.writerow([model, cond, seed, m, "" if v is None else round(v, 6)])
    atomic_write_text(RESULTS / f"{name}_values.csv", buf.getvalue())
    cols = ("metric", "faithfulness_auc", "relearn_R", "quant_int4_Q", "quant_int8_Q", "robustness", "overall",
            "robustness_sym", "overall_sym")
    md = [f"# Meta-evaluation of the llm forget metrics ({meta['dataset']}, {meta['forget']})", "",
          "Generated by `python benchmarks/llm_meta_eval.py` "
          f"(seeds {', '.join(map(str, meta['seeds']))}; method `{meta['method']}` with {meta['method_params']}; "
          f"relearning: {meta['relearn']}; quantisation: simulated symmetric per-row int8 / 4-bit; "
          f"{meta['threads']} thread(s), Python {meta['python']}, torch {meta['torch']}).", "",
          "Faithfulness: AUC of each metric (oriented so that higher = more knowledge of the forget set) separating "
          f"the Originals from the retain oracles over the seeds ({len(meta['seeds'])} vs {len(meta['seeds'])} "
          "models). R = min(Δ_oracle / Δ_unlearned, 1) under relearning, Q = min(m_before / m_after, 1) under 4-bit "
          "quantisation (OpenUnlearning's forms), robustness = HM(R, Q), overall = HM(faithfulness, robustness); "
          "`_sym`: the symmetric variants of gnueaj/unlearning-depth-score. Definitions: "
          "`expunge.metrics.functional.llm_meta_eval`; raw values: `llm_meta_eval_values.csv`.", "",
          "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    md += ["| " + " | ".join(fmt(r[c]) for c in cols) + " |" for r in rows]
    md += ["", "Times (s): " + ", ".join(f"{k} {v}" for k, v in meta["times_s"].items()), ""]
    atomic_write_text(RESULTS / f"{name}.md", "\n".join(md))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", default="facts")
    ap.add_argument("--model", default="gpt_tiny")
    ap.add_argument("--forget", default="owners:10")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--method", default="neggrad")
    # configs/llm.yaml's neggrad: the Original's optimiser (the paper defaults' SGD leaves the model unchanged)
    ap.add_argument("--method-params", default='{"optimizer": "adamw", "lr": 0.0001, "epochs": 5, "batch_size": 16, '
                                               '"weight_decay": 0.0}')
    ap.add_argument("--relearn-lr", type=float, default=1e-4)
    ap.add_argument("--relearn-epochs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--name", default="llm_meta_eval")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows, values, meta = run(args)
    write(rows, values, meta, args.name)
    print((RESULTS / f"{args.name}.md").read_text())


if __name__ == "__main__":
    main()
