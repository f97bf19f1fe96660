"""``expunge demo``: representative methods on one forget request, beside the Original and the Retrain, with a parity
verdict and a speed-up per row and one closing line naming the fastest method at parity.

Each method runs with the shipped preset tuned for the request's scenario on this (dataset, model) when one exists
(labelled ``METHOD [tuned]``; the shipped ``digits/cnn/full-class`` preset was tuned on class 9, so on the demo's
class 3 it is held out), else with its paper defaults; ``paper_defaults=True`` always uses the paper's values. The
default methods span the families — exact (``sisa``), head-exact (``analytic_head``), fine-tuning (``finetune``,
``neggrad_plus``, ``random_label``), distillation (``bad_teacher``, ``scrub``) and retrain-free weight edits (``ssd``,
``svd_class``); ``methods=None`` with ``all_methods=True`` runs every registered method. Only methods that support
the dataset's task run: on a regression dataset (``diabetes``, ``random:0.1``) the defaults are every method that
supports regression, and a named method that does not is refused before anything is trained.

Torch's thread count is capped to the cores not already busy (the 1-minute load average): two jobs that each use
every core run several times slower than one after the other (measured: 90 s alone, 389 s beside another 2-thread
job).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from pathlib import Path

import torch

import expunge
from expunge._io import atomic_write_json, atomic_write_text
from expunge.methods.base import METHODS
from expunge.record import RunRecord
from expunge.report import markdown_table, print_table, summary_line
from expunge.store import ArtifactStore
from expunge.tasks import get_task

DEFAULT_METHODS = ("sisa", "analytic_head", "finetune", "neggrad_plus", "random_label", "bad_teacher", "scrub", "ssd",
                   "svd_class")


def free_cores() -> int:
    """Cores not busy with other work: usable cores minus the 1-minute load average (at least 1)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        load = os.getloadavg()[0]
    except OSError:  # pragma: no cover - platforms without a load average
        load = 0.0
    return max(1, cores - math.floor(load + 0.5))


def methods_for(task: str, *, all_methods: bool = False) -> list[str]:
    """The demo's methods on ``task``: every method that supports it (``all_methods``), else the representative
    :data:`DEFAULT_METHODS` that do — or, when fewer than two of those do (regression), every method that does."""
    supported = [n for n in METHODS.names() if task in METHODS.get(n).tasks]
    if all_methods:
        return supported
    defaults = [n for n in DEFAULT_METHODS if n in supported]
    return defaults if len(defaults) >= 2 else supported


def criteria_text(task: str) -> str:
    """The task's parity criteria as text: ``|Δ forget_acc| ≤ 0.02, ...``."""
    return ", ".join(f"|Δ {m}| ≤ {tol:g}" for m, tol in get_task(task).parity_criteria.items())


def run_demo(*, out: Path, data: str = "digits", model: str = "cnn", forget: str = "class:3", seed: int = 0,
             store: ArtifactStore | None = None, methods: Sequence[str] | None = None, all_methods: bool = False,
             paper_defaults: bool = False, threads: int | None = None) -> list[RunRecord]:
    t0 = time.perf_counter()
    task = expunge.load(data, forget=forget).task
    if methods:
        names = list(methods)
        for name in names:  # an unknown name, or one that does not support the task, fails before any training
            METHODS.get(name).check_task(task)
    else:
        names = methods_for(task, all_methods=all_methods)
    torch.set_num_threads(threads or min(torch.get_num_threads(), free_cores()))
    prep = expunge.prepare(data, model, forget, seed=seed, store=store)
    records = []
    for name in names:
        params, source = expunge.resolve_params(name, dataset=data, model=model, forget=prep.splits.request,
                                                paper_defaults=paper_defaults, task=prep.dataset.task)
        label = f"{name} [tuned]" if source.startswith("preset") else name
        records.append(expunge.unlearn(prep, name, params, label=label, params_source=source)[0])
    title = f"expunge demo: {data}/{model}, forget {forget}, seed {seed}"
    print_table(records, title)
    closing = summary_line(records)
    print(closing)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "results.json", [r.to_json() for r in records])
    sources = sorted({r.params_source for r in records})
    md = (f"# {title}\n\nOriginal trained {prep.original.train_time_s:.2f} s; Retrain (oracle) "
          f"{prep.oracle.train_time_s:.2f} s on {len(prep.splits.retain)} retain examples; "
          f"{len(prep.splits.forget)} forgotten; {torch.get_num_threads()} torch thread(s). Total demo wall time "
          f"{time.perf_counter() - t0:.1f} s.\n\n" + markdown_table(records) + f"\n{closing}\n\n"
          "Δ = absolute gap to Retrain. Verdict: parity when every criterion that can tell the Original from the "
          f"Retrain ({criteria_text(prep.dataset.task)}) is met (`expunge.verdict`). "
          "Speed-up = retrain time / unlearning time on this request. Hyperparameters: "
          + "; ".join(f"`{s}`" for s in sources) + ". Metric definitions: `expunge metrics`.\n")
    atomic_write_text(out / "report.md", md)
    return records
