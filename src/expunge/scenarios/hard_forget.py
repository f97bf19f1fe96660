"""Hard forget sets: the k most memorised examples of a request (``hard-forget``).

Random forget sets are mostly "easy": examples the model would predict correctly without having seen them, so even
doing nothing looks like retraining on them. Following Zhao et al., "What makes unlearning hard and what to do about
it", NeurIPS 2024 (arXiv 2406.01257) — memorisation is what makes a forget set hard — this scenario ranks the
examples of a *pool* request by a cheap memorisation proxy and forgets only the top k.

Memorisation proxy (:func:`memorisation_scores`): the loss gap mem(x) = ℓ_R(x) − ℓ_O(x), the task's per-example loss
(cross-entropy clipped at 100 for classification, squared error for regression) under the pool's retrain oracle R
(trained without any pool example) minus under the Original O (trained with all of them).
It is the one-pair (IN = O, OUT = R) estimate of Feldman's memorisation, Feldman & Zhang, "What Neural Networks
Memorize and Why", NeurIPS 2020 (arXiv 2008.03703), in loss instead of accuracy so ties are rare; both models are
cached, so the ranking costs two forward passes over the pool. (The LiRA score of
:mod:`expunge.metrics.lira_offline` is a finer but costlier proxy.)

:func:`hard_forget_splits` turns the scores into :class:`~expunge.data.request.Splits` forgetting the top k
(descending score, ties broken by the lower example id); the rest of the pool returns to the retain set. The
scenario's request then gets its own retrain oracle and is evaluated with the same metrics as any other request.
The validation request ranks a different pool draw (seed + 1000).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from expunge._hparams import Hyperparams, hp
from expunge.data.datasets import Dataset
from expunge.data.request import ForgetRequest, Splits, dataset_for
from expunge.errors import InvalidForgetRequest
from expunge.metrics.base import EvalContext
from expunge.protocols.pipeline import prepare_splits
from expunge.scenarios.base import Scenario, Setting, register_scenario, request_seed
from expunge.store import ArtifactStore
from expunge.train.loop import TrainRecipe

PROXIES = ("loss_gap",)


def memorisation_scores(ctx: EvalContext) -> np.ndarray:
    """Loss-gap memorisation proxy ℓ_R(x) − ℓ_O(x) for every forget example of ``ctx`` (order of ``splits.forget``).

    Raises:
        ValueError: The context lacks the Original or the Retrain.
    """
    missing = [r for r in ("original", "retrain") if not ctx.has(r)]
    if missing:
        raise ValueError(f"memorisation_scores needs the {' and '.join(missing)} model(s)")
    y, loss = ctx.labels("forget"), ctx.task.example_losses
    return loss(ctx.logits("retrain", "forget"), y) - loss(ctx.logits("original", "forget"), y)


def hard_forget_splits(dataset: Dataset, splits: Splits, scores: np.ndarray, k: int) -> Splits:
    """Splits forgetting the ``k`` highest-scoring examples of ``splits.forget`` (ties: lower id first).

    Args:
        dataset: The dataset ``splits`` was resolved on.
        splits: The pool request.
        scores: One score per forget example, in the order of ``splits.forget`` (higher = harder).
        k: How many to keep, 1 ≤ k ≤ |F|.

    Returns:
        An ``ids`` request of the k examples; every other training example (including the rest of the pool) is
        retained; the test split is unchanged. ``extra`` records the pool spec, k and the score range.
    """
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if scores.shape[0] != splits.forget.size:
        raise ValueError(f"{scores.shape[0]} scores for {splits.forget.size} forget examples")
    if not np.all(np.isfinite(scores)):
        raise ValueError("scores must be finite")
    if not 1 <= k <= splits.forget.size:
        raise InvalidForgetRequest(f"k = {k} hardest examples requested from a pool of {splits.forget.size}; "
                                   f"Fix: choose 1 <= k <= {splits.forget.size}")
    ids = dataset.train.ids[splits.forget]
    order = np.lexsort((ids, -scores))[:k]  # primary key: score descending; secondary: id ascending
    chosen = np.sort(ids[order])
    out = Splits.from_ids(dataset, chosen, request=ForgetRequest("ids", ids=tuple(int(i) for i in chosen)),
                          seed=splits.seed)
    out.extra.update(pool=splits.request.spec, k=int(k), score_min=float(scores[order].min()),
                     score_max=float(scores[order].max()), pool_score_median=float(np.median(scores)))
    return out


@dataclass(frozen=True, kw_only=True)
class HardForgetParams(Hyperparams):
    pool: str = hp("random:0.1", "the request whose forget set is ranked (e.g. random:0.1, class:3)")
    k: int = hp(20, "number of most-memorised pool examples to forget", low=1)
    proxy: str = hp("loss_gap", "memorisation proxy: loss_gap = loss under the pool's retrain - under the original",
                    choices=PROXIES)

    def validate(self) -> None:
        try:
            ForgetRequest.parse(self.pool)
        except InvalidForgetRequest as exc:
            self._fail("pool", self.pool, f"a forget spec ({exc})")


@register_scenario
class HardForget(Scenario[HardForgetParams]):
    """Forget the k most memorised examples (loss gap retrain - original) of a pool request."""

    name = "hard-forget"
    Params = HardForgetParams
    preset_fallback = "random"  # a handful of scattered (memorised) examples
    tasks = frozenset({"classification", "regression"})  # the proxy is the task's loss gap

    def prepare(self, dataset: str | Dataset, model: str, *, seed: int = 0, store: ArtifactStore | None = None,
                data_dir: str | None = None, recipe: TrainRecipe | None = None, metrics: Iterable[str] | None = None,
                tier: int = 0, progress: bool = True, validation: bool = False) -> Setting:
        pool_req = ForgetRequest.parse(self.params.pool)
        ds = dataset_for(dataset, pool_req.kind, data_dir=data_dir)
        self.check_task(ds.task)
        pool_splits = pool_req.resolve(ds, seed=request_seed(seed, validation))
        if not 1 <= self.params.k <= pool_splits.forget.size:
            raise InvalidForgetRequest(f"hard-forget k = {self.params.k} but the pool {self.params.pool} has "
                                       f"{pool_splits.forget.size} examples. Fix: choose a smaller k")
        pool = prepare_splits(ds, model, pool_splits, seed=seed, store=store, recipe=recipe, metrics=(),
                              progress=progress)  # only its Original and oracle are needed
        hard = hard_forget_splits(ds, pool_splits, memorisation_scores(pool.eval_ctx), self.params.k)
        prep = prepare_splits(ds, model, hard, seed=seed, store=store, recipe=recipe, metrics=metrics, tier=tier,
                              progress=progress)
        info = {k: hard.extra[k] for k in ("pool", "k", "score_min", "score_max", "pool_score_median")}
        return Setting(self, [prep], seed, validation, info={**info, "proxy": self.params.proxy})
