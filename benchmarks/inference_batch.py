"""Inference chunk size: time of a no-grad forward pass over N examples at several chunk sizes, per registered model.

Evaluation (tier-0 logits on the retain, forget and test sets), feature passes and teacher outputs run the model in
chunks of ``expunge.data.batches.INFERENCE_BATCH_SIZE`` rows. This benchmark is the evidence for that constant:
for each (dataset, model) it times one pass over the same N examples at every chunk size, the chunk sizes
interleaved within each repeat (so machine noise hits all of them alike), and reports the best of the repeats and
each size's time relative to the fastest.

    python benchmarks/inference_batch.py                # 2 threads, 3 repeats
    python benchmarks/inference_batch.py --threads 1 --repeats 5
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

import torch

from expunge._io import atomic_write_json, atomic_write_text
from expunge.data.datasets import load_dataset
from expunge.models.inference import INFERENCE_BATCH_SIZE
from expunge.store.artifacts import environment_info
from expunge.train.oracle import model_spec_for

RESULTS = Path(__file__).parent / "results"
CASES = [("digits", "mlp", 1797), ("digits", "cnn", 1797), ("fashion-mnist", "mlp", 10000),
         ("fashion-mnist", "cnn", 10000), ("fashion-mnist", "resnet", 4000)]
SIZES = [64, 128, 256, 512, 1024]


@torch.no_grad()
def one_pass(model: torch.nn.Module, x: torch.Tensor, chunk: int) -> float:
    t = time.perf_counter()
    for i in range(0, len(x), chunk):
        model(x[i:i + chunk])
    return time.perf_counter() - t


def measure(data: str, arch: str, n: int, repeats: int) -> dict[str, Any]:
    ds = load_dataset(data)
    model = model_spec_for(ds, arch).build(seed=0).eval()
    x = torch.cat([ds.test.x, ds.train.x])[:n]
    one_pass(model, x[:256], 64)  # warm-up: first-call allocations and kernel selection
    times: dict[int, list[float]] = {s: [] for s in SIZES}
    for _ in range(repeats):
        for s in SIZES:
            times[s].append(one_pass(model, x, s))
    best = {s: min(v) for s, v in times.items()}
    fastest = min(best.values())
    return {"dataset": data, "model": arch, "n": n, "n_params": sum(p.numel() for p in model.parameters()),
            "times_s": times, "best_s": best, "relative_to_fastest": {s: t / fastest for s, t in best.items()}}


def summarise(out: dict[str, Any]) -> str:
    env = out["env"]
    lines = ["# Inference chunk size", "",
             f"torch {env['torch']}, {env['cpu_count']} CPU cores, {out['threads']} torch thread(s), best of "
             f"{out['repeats']} interleaved repeats; load average at start {out['loadavg_start']}, at end "
             f"{out['loadavg_end']}. Each cell: best time of one no-grad pass over N examples (relative to the "
             f"row's fastest chunk). The library's chunk size is {out['inference_batch_size']}.", "",
             "| dataset | model | params | N | " + " | ".join(f"chunk {s}" for s in SIZES) + " |",
             "|" + "---|" * (4 + len(SIZES))]
    for r in out["rows"]:
        cells = [f"{r['best_s'][s]:.2f} s ({r['relative_to_fastest'][s]:.2f}×)" for s in SIZES]
        lines.append(f"| {r['dataset']} | {r['model']} | {r['n_params']:,} | {r['n']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    out: dict[str, Any] = {"env": environment_info(), "threads": args.threads, "repeats": args.repeats,
                           "inference_batch_size": INFERENCE_BATCH_SIZE, "loadavg_start": os.getloadavg()}
    t0 = time.perf_counter()
    out["rows"] = [measure(d, m, n, args.repeats) for d, m, n in CASES]
    out["wall_s"], out["loadavg_end"] = time.perf_counter() - t0, os.getloadavg()
    atomic_write_json(RESULTS / "inference_batch.json", out)
    atomic_write_text(RESULTS / "inference_batch.md", summarise(out))
    print(summarise(out))


if __name__ == "__main__":
    main()
