"""Compact per-example summaries of a model on a prepared request, stored beside each bench cell for the report.

Two kinds, each a small JSON payload (a few KB, whatever the split sizes):

* ``mia_loss`` — the feature the loss attack ``mia_loss_auc`` thresholds (:mod:`expunge.metrics.mia`): the task's
  per-example loss (:meth:`expunge.tasks.Task.example_losses`: cross-entropy clipped to [0, 100] for classification,
  squared error for regression) on the **forget** set and on the **whole test set** — the two sides ``mia_loss_auc``
  compares — plus, when ``mia_loss_auc_matched`` restricts the test side (class and sub-class requests), that
  **matched test** subset (:func:`~expunge.metrics.mia.forget_distribution_test_mask`). Each side is stored as its
  size, mean and the **percentiles 0, 1, …, 100** (NumPy's default linear interpolation), rounded to 6 significant
  digits: 101 numbers whatever the split's size, scale-free (losses span 1e-8 to 100, so shared histogram bins would
  waste most of their resolution), and exact for every quantile plot (box plots, ECDFs). Over seeds the report
  averages them level by level — the Vincentized average of the distributions (Ratcliff, "Group reaction time
  distributions and an analysis of distribution statistics", Psychological Bulletin 1979). The attack itself balances
  the sides by subsampling; the summaries describe the full sets it draws from.
* ``class_acc`` — per-class accuracy on the **test** set and on the **forget** set (the functional
  :func:`~expunge.metrics.functional.accuracy.classwise_accuracy` that ``classwise_acc_test`` averages), with each
  class's example count, the class names and the forgotten classes. A class absent from a split has ``None``. The
  retain set is left out: its per-class accuracy needs a pass of every unlearned model over the whole training set
  (the cell's own evaluation keeps no outputs), while the test set already shows collateral damage per class.
  Regression tasks have no classes: the payload holds only the reason.

:func:`summaries` computes both for one role of an evaluation context (a collapsed model's kind holds the reason,
an unexpected failure the error); :func:`cell_distributions` does it for a bench cell — the unlearned model of each
record and the Original and Retrain of its request — and never raises: what went wrong is returned as text, so a
failure here never fails the cell.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from torch import nn

from expunge.errors import NonFiniteOutputs
from expunge.metrics.base import EvalContext
from expunge.metrics.functional.accuracy import classwise_accuracy
from expunge.metrics.mia import forget_distribution_test_mask
from expunge.record import RunRecord

KINDS = ("mia_loss", "class_acc")
BASELINE_ROLES = ("original", "retrain")
PERCENTILES = np.arange(101)  # the levels of every stored quantile vector: 0, 1, ..., 100 percent
DIGITS = 6                    # significant digits kept


def _round(v: float) -> float | None:
    """``v`` to :data:`DIGITS` significant digits; None when not finite (an overflowing squared error)."""
    return float(f"{float(v):.{DIGITS}g}") if np.isfinite(v) else None


def quantile_summary(values: np.ndarray) -> dict[str, Any]:
    """``{"n", "mean", "q"}``: the size, mean and percentiles 0..100 of ``values`` (``q`` None when empty)."""
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    if not len(v):
        return {"n": 0, "mean": None, "q": None}
    with np.errstate(invalid="ignore", over="ignore"):  # an inf among the values: those levels become None
        return {"n": len(v), "mean": _round(np.mean(v)), "q": [_round(x) for x in np.percentile(v, PERCENTILES)]}


def mia_loss_summary(ctx: EvalContext, role: str) -> dict[str, Any]:
    """The per-example losses ``mia_loss_auc`` attacks, forget vs test (and the matched test subset), summarised."""
    losses = {split: ctx.task.example_losses(ctx.logits(role, split), ctx.labels(split))
              for split in ("forget", "test")}
    sets = {"forget": quantile_summary(losses["forget"]), "test": quantile_summary(losses["test"])}
    mask = forget_distribution_test_mask(ctx) if ctx.task.name == "classification" else None
    if mask is not None:
        sets["test_matched"] = quantile_summary(losses["test"][mask])
    return {"feature": f"{ctx.task.name} per-example loss", "percent_step": 1, "sets": sets}


def class_acc_summary(ctx: EvalContext, role: str) -> dict[str, Any]:
    """Per-class test and forget accuracy as vectors over the dataset's classes (None where a class is absent)."""
    if ctx.task.name != "classification":
        return {"reason": f"a {ctx.task.name} task has no classes"}
    k = ctx.dataset.num_classes
    out: dict[str, Any] = {"classes": list(ctx.dataset.class_names),
                           "forget_classes": [int(c) for c in ctx.splits.forget_classes]}
    for split in ("test", "forget"):
        y = ctx.labels(split)
        accs = classwise_accuracy(ctx.logits(role, split), y, k) if len(y) else {}
        counts = np.bincount(y.astype(np.int64), minlength=k) if len(y) else np.zeros(k, dtype=np.int64)
        out[split] = [None if c not in accs else _round(accs[c]) for c in range(k)]
        out[f"n_{split}"] = [int(n) for n in counts[:k]]
    return out


_COMPUTE = {"mia_loss": mia_loss_summary, "class_acc": class_acc_summary}


def summaries(ctx: EvalContext, role: str) -> dict[str, dict[str, Any]]:
    """Every kind for the ``role`` model of ``ctx``. A model whose outputs are not finite gives ``{"reason"}``; any
    other exception ``{"error"}`` (that kind only)."""
    out: dict[str, dict[str, Any]] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # empty splits and the like: the payload says n = 0 / None
        for kind in KINDS:
            try:
                out[kind] = _COMPUTE[kind](ctx, role)
            except NonFiniteOutputs as exc:
                out[kind] = {"reason": str(exc)}
            except Exception as exc:
                out[kind] = {"error": f"{type(exc).__name__}: {' '.join(str(exc).split())}"}
    return out


def _step_models(prepared: Any, records: Sequence[RunRecord], model: nn.Module | None) -> list[tuple[Any, Any]]:
    """``(Prepared, model)`` per record: the unlearned model in hand (a single request), else each scenario step's
    model loaded from the artifact store by its record's ``unlearned_key`` (the step's Prepared holds its splits,
    Original and oracle)."""
    if model is not None:
        return [(prepared, model)]
    from expunge.methods.base import get_method
    from expunge.protocols.runner import load_result

    steps = list(prepared.steps)
    if len(steps) != len(records):
        raise ValueError(f"{len(records)} record(s) for {len(steps)} scenario step(s): cannot pair them")
    out = []
    for prep, rec in zip(steps, records, strict=True):
        if rec.unlearned_key is None:
            raise ValueError(f"step record of {rec.method} has no unlearned_key (run with save=False)")
        out.append((prep, load_result(prep.store, "unlearned", rec.unlearned_key,
                                      get_method(rec.method, dict(rec.params)), prep.spec)[0]))
    return out


def cell_distributions(prepared: Any, records: Sequence[RunRecord], model: nn.Module | None = None) -> dict[str, Any]:
    """The cell outcome's fields ``distributions`` — ``[{"step", "role", "kind", "payload"}]``: for each record
    (step), the unlearned model's summaries and its request's Original and Retrain — ``distributions_error`` (None,
    or why nothing was computed) and ``distributions_s``. ``prepared`` is a Prepared (a single request, ``model`` its
    unlearned model) or a scenario Setting (``model`` None: each step's model is loaded from the store).
    Never raises."""
    t0 = time.perf_counter()
    entries: list[dict[str, Any]] = []
    try:
        for step, (prep, unlearned) in enumerate(_step_models(prepared, records, model)):
            ctx = prep.eval_ctx.with_model("unlearned", unlearned)  # the baselines' outputs are cached in it
            for role in ("unlearned", *BASELINE_ROLES):
                for kind, payload in summaries(ctx, role).items():
                    entries.append({"step": step, "role": role, "kind": kind, "payload": payload})
        error = None
    except Exception as exc:
        entries, error = [], f"{type(exc).__name__}: {' '.join(str(exc).split())}"
    return {"distributions": entries, "distributions_error": error,
            "distributions_s": round(time.perf_counter() - t0, 3)}
