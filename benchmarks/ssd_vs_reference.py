"""Our SSD (full-set importances cached once per original) vs the reference SSD algorithm (both importances
recomputed for every request, through a ``torch.utils.data.DataLoader``), on the same model and data.

The reference algorithm (if-loops/selective-synaptic-dampening ``src/ssd.py``: ``ParameterPerturber.calc_importance``
and ``modify_weight``, driven by ``ssd_tuning`` in ``src/forget_full_class_strategies.py``) is re-implemented here from
its description — model in eval mode, an optimiser's ``zero_grad`` before each batch, CrossEntropyLoss, squared
gradients summed and divided by the number of batches, then selection/dampening — not copied. Both must give the
same dampened weights to tolerance; we report the per-request time ratio for a sequence of requests (the first of
ours pays the one-off full-set pass; later ones only read their forget set).

    python benchmarks/ssd_vs_reference.py [--data fashion-mnist] [--model cnn] [--requests class:Sandal class:Bag ...]
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from expunge._io import atomic_write_json, atomic_write_text
from expunge.data.datasets import load_dataset
from expunge.data.request import ForgetRequest
from expunge.methods.base import RunContext, get_method
from expunge.protocols.runner import run_method
from expunge.store import ArtifactStore
from expunge.store.artifacts import environment_info
from expunge.train.oracle import default_recipe, model_spec_for, train_original

RESULTS = Path(__file__).parent / "results"


def reference_importance(model: nn.Module, loader: DataLoader) -> dict[str, torch.Tensor]:
    opt = torch.optim.SGD(model.parameters(), lr=0.1)  # only used for zero_grad, as in the reference
    criterion = nn.CrossEntropyLoss()
    imp = {n: torch.zeros_like(p) for n, p in model.named_parameters()}
    for x, y in loader:
        opt.zero_grad()
        criterion(model(x), y).backward()
        for n, p in model.named_parameters():
            if p.grad is not None:
                imp[n] += p.grad.detach().clone().pow(2)
    return {n: v / float(len(loader)) for n, v in imp.items()}


def reference_ssd(original: nn.Module, x_full, y_full, x_f, y_f, *, alpha: float, lam: float, bs: int) -> nn.Module:
    model = copy.deepcopy(original).eval()
    i_f = reference_importance(model, DataLoader(TensorDataset(x_f, y_f), batch_size=bs))
    i_d = reference_importance(model, DataLoader(TensorDataset(x_full, y_full), batch_size=bs))
    with torch.no_grad():
        for n, p in model.named_parameters():
            loc = torch.where(i_f[n] > i_d[n] * alpha)
            update = (i_d[n] * lam / i_f[n])[loc]
            update[update > 1] = 1
            p[loc] = p[loc] * update
    return model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="fashion-mnist")
    ap.add_argument("--model", default="cnn")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--alpha", type=float, default=30.0)
    ap.add_argument("--requests", nargs="+", default=["class:Sandal", "class:Bag", "class:Trouser", "random:0.01"])
    ap.add_argument("--store", default=str(Path(".bench-store").resolve()))
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    ds = load_dataset(args.data)
    store = ArtifactStore(args.store)
    spec = model_spec_for(ds, args.model)
    original = train_original(ds, spec, default_recipe(ds.name), seed=args.seed, store=store).model
    method = get_method("ssd", {"alpha": args.alpha})
    rows = []
    for spec_text in args.requests:
        splits = ForgetRequest.parse(spec_text).resolve(ds, seed=args.seed)
        t0 = time.perf_counter()
        ref = reference_ssd(original, ds.train.x, ds.train.y, ds.train.x[splits.forget], ds.train.y[splits.forget],
                            alpha=args.alpha, lam=1.0, bs=method.params.batch_size)
        t_ref = time.perf_counter() - t0
        ctx = RunContext(seed=args.seed, store=store)
        res = run_method(method, original, ds, splits, ctx, original_key=f"ssd-vs-ref/{args.data}/{args.model}/"
                         f"{args.seed}")
        t_ours = res.time_s + res.access["precompute_s"]  # wall time of the call, including any one-off pass
        diff = max(float((a - b).abs().max()) for a, b in zip(ref.parameters(), res.model.parameters(), strict=True))
        rows.append({"request": spec_text, "reference_s": t_ref, "ours_s": t_ours,
                     "ours_precompute_s": res.access["precompute_s"], "speedup": t_ref / t_ours,
                     "max_abs_weight_diff": diff, "selected": res.notes.get("selected")})
        print(rows[-1], flush=True)
    later = rows[1:]
    summary = {"data": args.data, "model": args.model, "alpha": args.alpha, "rows": rows, "env": environment_info(),
               "mean_speedup_after_first": sum(r["speedup"] for r in later) / max(1, len(later))}
    RESULTS.mkdir(parents=True, exist_ok=True)
    atomic_write_json(RESULTS / "ssd_vs_reference.json", summary)
    md = ["# SSD: cached full-set importances vs the reference algorithm", "",
          f"{args.data} / {args.model}, α = {args.alpha}, λ = 1, batch 64, {args.threads} thread(s), same original.",
          "",
          "| request | reference (s) | ours (s) | of which one-off precompute (s) | speed-up | max |Δθ| |",
          "|---|---|---|---|---|---|"]
    md += [f"| {r['request']} | {r['reference_s']:.2f} | {r['ours_s']:.2f} | {r['ours_precompute_s']:.2f} | "
           f"{r['speedup']:.1f}× | {r['max_abs_weight_diff']:.2e} |" for r in rows]
    md += ["", f"Mean speed-up per request after the first: {summary['mean_speedup_after_first']:.1f}×.", ""]
    atomic_write_text(RESULTS / "ssd_vs_reference.md", "\n".join(md))


if __name__ == "__main__":
    main()
