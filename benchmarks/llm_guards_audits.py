"""Guards, anti-samples and the concealment audits on facts-tiny (issue 26): do the forgotten answers come back?

    python benchmarks/llm_guards_audits.py [--seeds 0 1 2] [--store DIR]
    python benchmarks/llm_guards_audits.py --data facts --forget owners:10 --seeds 0   # results suffix _facts

facts-tiny (12 people; forget 2 people, ``owners:2``), gpt_tiny with 2 blocks of width 64 trained 40 epochs (AdamW
5e-3, batch 16: the Original's forget answers reach probability ≈ 0.99), per seed: the Original, the retain oracle
and ``unstar`` (default, and without its retain term), ``eco_prompts`` and ``guard_decoding`` at their defaults. Per
model: the mean forget / retain answer probability exp(−ℓ̄) (teacher forcing), the share of forget / retain questions
answered exactly by greedy decoding (``generate_greedy``, so the guards act), and the ``llm_audit_*`` metrics.
One thread; seeds and times recorded. Writes ``benchmarks/results/llm_guards_audits.csv`` (one row per seed and
model) and ``.md`` (mean ± 95% Student-t half-width over seeds, ``expunge.metrics.aggregate.format_mean_ci``).
With ``--data facts`` (200 people): the dataset's own recipe and gpt_tiny size (``expunge.train.oracle
.DEFAULT_RECIPES``, ``Dataset.model_kwargs``: the Originals of ``configs/llm.yaml``), files suffixed ``_facts``.
"""

from __future__ import annotations

import argparse
import csv
import io
import time
from pathlib import Path
from typing import Any

import torch

from expunge._io import atomic_write_text
from expunge.api import prepare
from expunge.data.datasets import load_dataset
from expunge.data.facts import facts_corpus
from expunge.methods.base import RunContext, get_method
from expunge.metrics._llm_audit import answer_probs
from expunge.metrics.aggregate import format_mean_ci
from expunge.metrics.base import evaluate
from expunge.models import ModelSpec
from expunge.protocols.runner import run_method
from expunge.store import ArtifactStore
from expunge.tasks.token_logprobs import EOS_ID
from expunge.train.loop import TrainRecipe
from expunge.train.oracle import default_recipe, model_spec_for

RESULTS = Path(__file__).parent / "results"
RECIPE = TrainRecipe(epochs=40, batch_size=16, optimizer="adamw", lr=5e-3)
MODEL = {"n_layer": 2, "n_embd": 64, "n_head": 2}
METHODS = (("unstar", {}), ("unstar", {"retain_weight": "0"}), ("eco_prompts", {}), ("guard_decoding", {}))
AUDITS = ("llm_audit_uds", "llm_audit_quant_recovery_int8", "llm_audit_quant_recovery_nf4",
          "llm_audit_relearn_steps", "llm_audit_relearn_recovery_k10")
COLUMNS = ("prob_forget", "prob_retain", "exact_forget", "exact_retain", *AUDITS, "time_s")


def exact_share(model: torch.nn.Module, corpus: Any, rows: list[int]) -> float:
    """Share of question rows whose greedy answer (via the model's generate_greedy) is exactly the true answer."""
    items = [corpus.train_items[i] for i in rows]
    prompts = corpus.prompts([it.question for it in items])
    hits = [corpus.tokenizer.decode(model.generate_greedy(p, max_new_tokens=corpus.max_len, eos_id=EOS_ID)).strip()
            == it.answer.strip() for p, it in zip(prompts, items, strict=True)]
    return sum(hits) / len(hits)


def measure(seed: int, store: ArtifactStore, data: str, forget: str) -> list[dict[str, Any]]:
    ds = load_dataset(data)
    tiny = data == "facts-tiny"
    spec = ModelSpec("gpt_tiny", ds.input_shape, ds.num_outputs, MODEL) if tiny else model_spec_for(ds, "gpt_tiny")
    recipe = RECIPE if tiny else default_recipe(data)
    prep = prepare(ds, spec, forget, seed=seed, store=store, recipe=recipe, progress=False, metrics=[])
    corpus = facts_corpus(ds)
    x, y = ds.train.x, ds.train.y
    qa = [i for i, it in enumerate(corpus.train_items) if it.kind == "qa"]
    forget_qa = [i for i in qa if i in set(prep.splits.forget.tolist())]
    retain_qa = [i for i in qa if i in set(prep.splits.retain.tolist())]
    models: dict[str, tuple[torch.nn.Module, float | None]] = {
        "Original": (prep.original.model, None), "Retrain": (prep.oracle.model, prep.oracle.train_time_s)}
    for name, params in METHODS:
        res = run_method(get_method(name, params), prep.original.model, ds, prep.splits,
                         RunContext(seed=seed, model_spec=spec, recipe=recipe, store=store),
                         original_key=prep.original.key)
        label = name + "".join(f" {k}={v}" for k, v in params.items())
        models[label] = (res.model, res.time_s)
    rows = []
    for label, (model, secs) in models.items():
        ctx = prep.eval_ctx.with_model("unlearned", model)
        audits = evaluate(ctx, AUDITS, roles=("unlearned",))
        rows.append({"seed": seed, "model": label,
                     "prob_forget": float(answer_probs(model, x[prep.splits.forget], y[prep.splits.forget]).mean()),
                     "prob_retain": float(answer_probs(model, x[prep.splits.retain], y[prep.splits.retain]).mean()),
                     "exact_forget": exact_share(model, corpus, forget_qa),
                     "exact_retain": exact_share(model, corpus, retain_qa),
                     **{a: audits[a]["unlearned"].value for a in AUDITS}, "time_s": secs})
    return rows


def markdown(rows: list[dict[str, Any]], seeds: list[int], wall_s: float, data: str, forget: str) -> str:
    setup = (f"gpt_tiny {MODEL}, 40 epochs AdamW 5e-3" if data == "facts-tiny" else
             "gpt_tiny and recipe of the dataset (configs/llm.yaml's Originals)")
    head = (f"# Guards, anti-samples and concealment audits ({data}, forget {forget})\n\n"
            f"Written by `benchmarks/llm_guards_audits.py`; seeds {seeds}; {setup}; "
            f"one thread; {wall_s:.0f} s in all. Mean ± 95% half-width over seeds; `—`: undefined (the audit's reason: "
            "nothing forgotten, or no relearning within the cap). prob = mean answer probability (teacher forcing); "
            "exact = share of questions answered exactly by greedy decoding; audits: `llm_audit_*` "
            "(uds 1 = erased like the oracle; recovery 0 = nothing comes back, 1 = all; relearn steps: capped at 100)."
            "\n\n")
    cols = ["model", *COLUMNS]
    lines = ["| " + " | ".join(c.replace("llm_audit_", "") for c in cols) + " |", "|" + "---|" * len(cols)]
    for label in dict.fromkeys(r["model"] for r in rows):
        mine = [r for r in rows if r["model"] == label]
        cells = [format_mean_ci([r[c] for r in mine]) if any(r[c] is not None for r in mine) else "—"
                 for c in COLUMNS]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return head + "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--store", type=Path, default=None, help="artifact cache (default: EXPUNGE_CACHE)")
    parser.add_argument("--data", default="facts-tiny", choices=("facts-tiny", "facts"))
    parser.add_argument("--forget", default="owners:2")
    args = parser.parse_args()
    torch.set_num_threads(1)
    store = ArtifactStore(args.store)
    start = time.perf_counter()
    rows = [row for seed in args.seeds for row in measure(seed, store, args.data, args.forget)]
    wall = time.perf_counter() - start
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=["seed", "model", *COLUMNS], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    stem = "llm_guards_audits" + ("" if args.data == "facts-tiny" else f"_{args.data}")
    atomic_write_text(RESULTS / f"{stem}.csv", buf.getvalue())
    atomic_write_text(RESULTS / f"{stem}.md", markdown(rows, args.seeds, wall, args.data, args.forget))


if __name__ == "__main__":
    main()
