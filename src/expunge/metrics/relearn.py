"""Relearning (tier 1): how quickly forgotten knowledge comes back.

``relearn_steps`` and ``ain`` — Anamnesis Index, Chundawat, Tarun, Mandal, Kankanhalli, "Zero-Shot Machine
Unlearning", IEEE TIFS 2023 (arXiv 2201.05629). rt(M) = number of mini-batch steps of
fine-tuning a private copy of M on the forget set F until acc_F ≥ (1 − α)·acc_F(O); AIN = rt(M)/rt(R) (≈ 1 ideal,
≪ 1 knowledge hidden not removed, ≫ 1 over-damage). Defaults: α = 0.05, Adam lr 1e-3, batch min(256, |F|),
accuracy checked after every step for the first 200 steps and every 10th step after that (so rt > 200 is rounded up to
a multiple of 10), shuffled batches seeded from the evaluation seed (the same batches for every role).
Cap = max(10 epochs, ``MIN_CAP_STEPS`` = 100 steps). Deviation, documented: a cap of "10 epochs" alone is only 10 steps
when |F| ≤ 256 (one full batch per epoch), too few for any model on small requests (digits: |F| ≈ 135); the 100-step
floor keeps AIN defined there and changes nothing once |F| > 2 560. A capped run reports the cap as a lower bound
(``details.capped``, reason "> cap"), never ∞; AIN is then a bound or None (both capped) — see
:func:`expunge.metrics.functional.relearn.anamnesis_index`.

Regression (Tarun et al., "Deep Regression Unlearning", ICML 2023, arXiv 2210.08196; reference
ayu987/deep-regression-unlearning ``metrics.py``: ``relearn_time``, ``ain``): a regression model has no accuracy, so
rt(M) counts the steps until the forget *loss* is back down to (1 + α)·loss_F(O); the fine-tuning loss and the
measured loss are the task's (the squared error expunge's regression models train with; the reference's L1 is its
training loss). Everything else — α, optimiser, batch, check schedule, cap, AIN — is the classification variant's.
Deviation, documented: the reference fine-tunes on the *whole* training set at lr 0.01 and measures on a held-out
forget-distribution validation set (its forget set is an age range, so held-out data of the same range exist); ours
fine-tunes and measures on F, like the classification variant, so both tasks read rt the same way and random or
owners requests (which have no held-out counterpart) are measurable.

``relearn_attack_recovery_k10`` / ``relearn_attack_recovery_k10pct`` — relearning attack, Łucki et al. (arXiv
2409.18025) and Hu et al. (arXiv 2406.13356): fine-tune a private copy of M on k examples of F (a seeded
choice shared by every role; k = 10, or 10 % of |F|) for 50 full-batch Adam steps at lr 1e-4 (the papers fine-tune LLMs;
the optimiser is our choice: Adam, as for ``relearn_steps``), then measure accuracy on the held-out remainder F′:
recovery = (acc_F′(M_after) − acc_F′(M)) / (acc_F′(O) − acc_F′(M)). The Retrain's value is the floor (generalisation
from k examples alone); the Original's is undefined (nothing forgotten ⇒ None). ``details`` add the loss-threshold MIA
AUC on F′ vs test before and after the attack.

All fine-tuning goes through :func:`expunge.train.loop.train_loop`. Results are cached per model content within the
evaluation, and ``relearn_steps`` results are also persisted in ``ctx.run.store`` (kind ``metric_relearn``, keyed by
model content, forget set, target and settings), so the Original's and the Retrain's relearn runs are done once per
request across methods, processes and ``expunge evaluate`` calls. Run info needed: model_spec, recipe (recorded for
provenance) and store.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import numpy as np
import torch

from expunge._seeds import derive_seed
from expunge.data.batches import Batch, Batches
from expunge.metrics._common import single_threaded
from expunge.metrics._tier1 import Tier1Metric, private_copy
from expunge.metrics.base import EvalContext, MetricValue, register_metric
from expunge.metrics.functional.accuracy import accuracy
from expunge.metrics.functional.mia import ce_loss, mia_auc
from expunge.metrics.functional.relearn import anamnesis_index, relearn_recovery
from expunge.models import inference
from expunge.tasks import Task
from expunge.train.loop import LossFn, cross_entropy_loss, train_loop

ALPHA = 0.05
RELEARN_LR = 1e-3
MAX_BATCH = 256
CAP_EPOCHS = 10
MIN_CAP_STEPS = 100
DENSE_CHECK_STEPS = 200
SPARSE_CHECK_EVERY = 10

ATTACK_STEPS = 50
ATTACK_LR = 1e-4


class _UntilDone:
    """Iterates ``batches`` (one pass per ``iter``) and stops as soon as ``state["done"]`` is set."""

    def __init__(self, batches: Batches, state: dict[str, Any]) -> None:
        self.batches, self.state = batches, state

    def __iter__(self) -> Iterator[Batch]:
        for batch in self.batches:
            if self.state["done"]:
                return
            self.state["steps"] += 1
            yield batch


def relearn_time(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, target: float, *, seed: int,
                 lr: float = RELEARN_LR, max_batch: int = MAX_BATCH, cap_epochs: int = CAP_EPOCHS,
                 min_cap_steps: int = MIN_CAP_STEPS, task: Task | None = None,
                 measure: Callable[[torch.nn.Module], float] | None = None,
                 loss_fn: LossFn | None = None) -> dict[str, Any]:
    """Steps of Adam fine-tuning (on a copy of ``model``) on (x, y) until accuracy on (x, y) ≥ ``target``
    (classification, the default) — or, for a ``task`` without accuracy (regression), until its mean per-example
    loss on (x, y) ≤ ``target``, fine-tuning with that task's loss — or, given ``measure`` (a "higher = more
    remembered" score of the fine-tuned copy, e.g. the LLM audit's forget-answer probability) and ``loss_fn``, until
    ``measure`` ≥ ``target`` (reported as ``acc_start`` / ``acc_end``).

    Returns:
        dict(steps, capped, cap, acc_start, acc_end, target, batch_size); ``loss_start`` / ``loss_end`` instead of the
        accuracies for a loss criterion.
    """
    m = private_copy(model)
    batch_size = min(max_batch, len(x))
    batches = Batches(x, y, batch_size=batch_size, shuffle=True, seed=seed)
    cap = max(cap_epochs * len(batches), min_cap_steps)
    out: dict[str, Any] = {"target": target, "batch_size": batch_size, "cap": cap}
    by_loss = measure is None and task is not None and task.name != "classification"
    if loss_fn is None:
        loss_fn = task.batch_loss if by_loss and task is not None else cross_entropy_loss

    def current() -> float | None:
        if measure is not None:
            return measure(m)
        if by_loss and task is not None:
            outputs = inference.predict_logits(m, x).double().numpy()
            return float(task.example_losses(outputs, y.numpy()).mean())
        return inference.accuracy(m, x, y)

    def reached(v: float | None) -> bool:
        return v is not None and (v <= target if by_loss else v >= target)

    v = start = current()
    state: dict[str, Any] = {"done": reached(v), "steps": 0, "v": v}

    def after_step() -> None:
        s = state["steps"]
        if s <= DENSE_CHECK_STEPS or s % SPARSE_CHECK_EVERY == 0:
            state["v"] = current()
            state["done"] = reached(state["v"])

    if not state["done"]:
        opt = torch.optim.Adam(m.parameters(), lr=lr)
        epochs = -(-cap // len(batches))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            train_loop(m, _UntilDone(batches, state), loss_fn, opt, epochs=epochs, max_steps=cap,
                       after_step=after_step, on_epoch_end=lambda _e: bool(state["done"]))
    if not state["done"]:
        state["v"] = current()
    names = ("loss_start", "loss_end") if by_loss else ("acc_start", "acc_end")
    out.update({"steps": int(state["steps"]), "capped": not state["done"], names[0]: start, names[1]: state["v"]})
    return out


def _forget_target(ctx: EvalContext) -> float:
    """Classification: (1 − α)·acc_F(O); a task without accuracy: (1 + α)·loss_F(O), its mean per-example loss."""
    if ctx.task.name != "classification":
        loss_o = ctx.task.example_losses(ctx.logits("original", "forget"), ctx.labels("forget"))
        return (1.0 + ALPHA) * float(loss_o.mean())
    acc_o = accuracy(ctx.logits("original", "forget"), ctx.labels("forget"))
    return (1.0 - ALPHA) * float(acc_o or 0.0)


def relearn_result(ctx: EvalContext, role: str) -> dict[str, Any]:
    """rt of the model in ``role`` (cached in the context and persisted in the store).

    Raises:
        NonFiniteOutputs: the model's forget-set outputs are not finite (a collapsed model relearns nothing: the
            fine-tuning loop would stop on its non-finite steps and report their count as a step count)."""
    ctx.logits(role, "forget")
    target = _forget_target(ctx)
    mkey = ctx.model_key(role)
    seed = derive_seed(ctx.seed, "relearn-order")
    settings = {"alpha": ALPHA, "lr": RELEARN_LR, "max_batch": MAX_BATCH, "cap_epochs": CAP_EPOCHS,
                "min_cap_steps": MIN_CAP_STEPS, "dense": DENSE_CHECK_STEPS, "every": SPARSE_CHECK_EVERY}

    def compute() -> dict[str, Any]:
        x, y = ctx.split_tensors("forget")
        store = ctx.run.store
        fset = hashlib.sha256(np.asarray(ctx.splits.forget, dtype=np.int64).tobytes()).hexdigest()[:32]
        task = {} if ctx.task.name == "classification" else {"task": ctx.task.name}  # classification keys unchanged
        key = store.key({"metric": "relearn_steps", "model": mkey, "dataset": ctx.dataset.fingerprint,
                         "forget": fset, "target": round(target, 12), "seed": seed, **settings, **task})

        def run() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
            with single_threaded():
                res = relearn_time(ctx.models[role], x, y, target, seed=seed, task=ctx.task)
            return {"steps": torch.tensor([res["steps"]])}, {"result": res, "settings": settings,
                                                            "model_spec": _provenance(ctx.run.model_spec),
                                                            "recipe": _provenance(ctx.run.recipe)}

        _, manifest, _ = store.get_or_create_tensors("metric_relearn", key, run)
        return dict(manifest["result"])

    return ctx.cached(("relearn_steps", round(target, 12)), compute, role=role)


def _provenance(obj: Any) -> Any:
    """A run-info object (model spec, recipe) as JSON for the stored manifest; its repr if it has no ``to_dict``."""
    return obj.to_dict() if hasattr(obj, "to_dict") else repr(obj)


class _RelearnBase(Tier1Metric):
    family = "relearn"

    def _empty(self, ctx: EvalContext) -> MetricValue | None:
        if len(ctx.splits.forget) == 0:
            return MetricValue(None, reason="empty forget split")
        return None


@register_metric
class RelearnSteps(_RelearnBase):
    name = "relearn_steps"
    needs = frozenset({"original"})
    tasks = frozenset({"classification", "regression"})
    definition = ("fine-tuning steps (Adam 1e-3, batch min(256,|F|)) on the forget set until forget acc >= 0.95 x "
                  "the original's (regression: forget loss <= 1.05 x the original's); cap max(10 epochs, 100 steps)")

    def compute(self, ctx: EvalContext, role: str) -> MetricValue:
        if (empty := self._empty(ctx)) is not None:
            return empty
        res = relearn_result(ctx, role)
        reason = f"> cap: not relearned within {res['cap']} steps (value is the cap)" if res["capped"] else None
        return MetricValue(float(res["steps"]), reason=reason, details=res)


@register_metric
class AnamnesisIndex(_RelearnBase):
    name = "ain"
    needs = frozenset({"original", "retrain"})
    tasks = frozenset({"classification", "regression"})
    definition = "Anamnesis Index rt(M)/rt(R): relearn steps relative to the retrained model's; 1 ideal, << 1 hidden"

    def compute(self, ctx: EvalContext, role: str) -> MetricValue:
        if (empty := self._empty(ctx)) is not None:
            return empty
        mine, ref = relearn_result(ctx, role), relearn_result(ctx, "retrain")
        res = anamnesis_index(mine["steps"], ref["steps"], capped_u=mine["capped"], capped_r=ref["capped"])
        reason = res.get("reason")
        if res["ain"] is not None and res["bound"] is not None:
            reason = f"{'lower' if res['bound'] == 'lower' else 'upper'} bound: a relearn run reached its cap"
        return MetricValue(res["ain"], reason=reason, details=res)


# -------------------------------------------------------------------------- relearning attack (Łucki et al.; Hu et al.)
def attack_result(ctx: EvalContext, role: str, k: int) -> dict[str, Any]:
    """Accuracy on the held-out forget remainder before/after fine-tuning ``role`` on k forget examples."""
    n = len(ctx.splits.forget)
    rng = np.random.default_rng(derive_seed(ctx.seed, f"relearn-attack-k{k}"))
    chosen = np.zeros(n, dtype=bool)
    chosen[rng.choice(n, size=k, replace=False)] = True

    def compute() -> dict[str, Any]:
        with single_threaded():
            return _attack(ctx, role, k, chosen)

    return ctx.cached(("relearn_attack", k), compute, role=role)


def _attack(ctx: EvalContext, role: str, k: int, chosen: np.ndarray) -> dict[str, Any]:
    x, y = ctx.split_tensors("forget")
    m = private_copy(ctx.models[role])
    seed = derive_seed(ctx.seed, f"relearn-attack-k{k}-order")
    batches = Batches(x[chosen], y[chosen], batch_size=k, shuffle=True, seed=seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        log = train_loop(m, batches, cross_entropy_loss, torch.optim.Adam(m.parameters(), lr=ATTACK_LR),
                         epochs=ATTACK_STEPS, max_steps=ATTACK_STEPS)
    xr, yr = x[~chosen], y[~chosen]
    x_t, y_t = ctx.split_tensors("test")
    after_f = inference.predict_logits(m, xr, ctx.batch_size).double().numpy()
    after_t = inference.predict_logits(m, x_t, ctx.batch_size).double().numpy()
    before_f, before_t = ctx.logits(role, "forget")[~chosen], ctx.logits(role, "test")
    yr_np, yt_np = yr.numpy(), y_t.numpy()
    return {"acc_before": accuracy(before_f, yr_np), "acc_after": accuracy(after_f, yr_np),
            "mia_auc_before": _loss_auc(before_f, yr_np, before_t, yt_np),
            "mia_auc_after": _loss_auc(after_f, yr_np, after_t, yt_np),
            "steps": log.steps, "n_heldout": int((~chosen).sum())}


def _loss_auc(zf: np.ndarray, yf: np.ndarray, zt: np.ndarray, yt: np.ndarray) -> float | None:
    """AUC of −loss, held-out forget (member) vs test: the loss-threshold MIA before/after the attack."""
    return mia_auc(-ce_loss(zf, yf), -ce_loss(zt, yt))


class _RelearnAttack(_RelearnBase):
    needs = frozenset({"original"})
    fixed_k: ClassVar[int | None] = None
    fraction: ClassVar[float | None] = None

    def k_for(self, n: int) -> int:
        return self.fixed_k if self.fixed_k is not None else max(1, round(float(self.fraction or 0) * n))

    def compute(self, ctx: EvalContext, role: str) -> MetricValue:
        n = len(ctx.splits.forget)
        k = self.k_for(n)
        if n - k < 1:
            return MetricValue(None, reason=f"forget set too small: {n} examples, attack uses k = {k}")
        mine, orig = attack_result(ctx, role, k), attack_result(ctx, "original", k)
        if mine["acc_before"] is None or orig["acc_before"] is None or mine["acc_after"] is None:
            return MetricValue(None, reason="empty held-out forget remainder")
        res = relearn_recovery(orig["acc_before"], mine["acc_before"], mine["acc_after"])
        return MetricValue(res["recovery"], reason=res.get("reason"),
                           details={**mine, "k": k, "acc_original": orig["acc_before"], "forgotten": res["forgotten"]})


@register_metric
class RelearnAttackK10(_RelearnAttack):
    name, fixed_k = "relearn_attack_recovery_k10", 10
    definition = ("share of forgotten accuracy recovered on the held-out forget set after 50 Adam steps (lr 1e-4) "
                  "on 10 forget examples; retrain = floor")


@register_metric
class RelearnAttackK10pct(_RelearnAttack):
    name, fraction = "relearn_attack_recovery_k10pct", 0.1
    definition = ("as relearn_attack_recovery_k10 with k = 10% of the forget set")
