"""Oracle matching — NOT DEPLOYABLE: fine-tune the Original to reproduce the retrain oracle's outputs. The upper bound
of datamodel matching, for benchmarks only.

Paper: Georgiev, Rinberg, Park, Garg, Ilyas, Madry, Neel, "Attribute-to-Delete: Machine Unlearning via Datamodel
Matching", ICLR 2025, arXiv 2410.23232 — "oracle matching" (OM), the idealised variant of datamodel matching (DMM):
instead of outputs *predicted* by a data-attribution model, the fine-tuning targets are the outputs of the model
retrained without the forget set. Reference: the paper's description (§3, OM); ``../shared/spec/methods.md`` §8.

It needs the retrain it is meant to avoid, so it is never a candidate for a deletion request: it shows how close
output matching can bring the Original to the oracle in a given fine-tuning budget, the ceiling DMM approaches as
its attributions improve. Its targets come from a retrain with the oracle's own seeds (bit for bit the oracle:
:mod:`expunge.methods.retrain` with ``same_seeds_as_oracle``), computed once per (Original, forget set) through
:meth:`~expunge.data.access.UnlearningData.train_statistic` and recorded as **per-request precompute**
(:data:`expunge.harness.rules.PER_REQUEST_STATISTICS`): its amortised speed-up includes a whole retrain, so it can
never look faster than retraining.

Unlearning: minimise the mean squared error between the model's logits and the oracle's on every forget example and
a seeded sample of ``retain_multiple`` × |F| retained examples (all of them if fewer), shuffled together, for
``epochs`` passes. Choices the paper leaves open at this scale, made here: logits (the paper matches margins of its
models; the logits determine them); all forget examples plus a retain sample twice their size by default (the paper
samples both; the retained outputs keep utility); Adam, lr 1e-3, batch 64 (the training recipe's optimiser).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from expunge._seeds import derive_seed
from expunge.data.access import DataAccess, UnlearningData
from expunge.data.batches import Batches
from expunge.errors import ExpungeError
from expunge.methods._shared.output_matching import OutputMatchingParams, match_outputs, retain_sample
from expunge.methods.base import RunContext, UnlearningMethod, register_method
from expunge.models.inference import predict_logits
from expunge.train.loop import fit


@dataclass(frozen=True, kw_only=True)
class OracleMatchingParams(OutputMatchingParams):
    pass


def oracle_outputs(data: UnlearningData, ctx: RunContext) -> dict[str, torch.Tensor]:
    """The oracle's logits on the forget and the retain set (a retrain with the oracle's seeds), cached per
    (Original, forget set) as a training-set statistic."""
    if ctx.model_spec is None or ctx.recipe is None:
        raise ExpungeError("oracle_matching needs the original's model spec and recipe (RunContext.model_spec and "
                           ".recipe) to retrain the oracle it matches")
    spec, recipe = ctx.model_spec, ctx.recipe
    init_seed, order_seed = derive_seed(ctx.seed, "oracle-init"), derive_seed(ctx.seed, "oracle-order")
    digest = hashlib.sha256(np.ascontiguousarray(data.forget_positions(), dtype=np.int64).tobytes()).hexdigest()[:16]

    def compute(_: Batches) -> dict[str, torch.Tensor]:
        oracle = spec.build(seed=init_seed)
        fit(oracle, data.retain_loader(recipe.batch_size, seed=order_seed), recipe, seed=order_seed,
            loss_fn=data.task.batch_loss)
        return {"forget": predict_logits(oracle, data.forget_tensors()[0]),
                "retain": predict_logits(oracle, data.retain_tensors()[0])}

    return data.train_statistic(f"oracle_matching/{digest}/{init_seed}/{order_seed}", compute,
                                batch_size=recipe.batch_size)


@register_method
class OracleMatching(UnlearningMethod[OracleMatchingParams]):
    """Not deployable (needs the retrain): fine-tune the Original to match the oracle's logits on the forget set and
    a retain sample — the upper bound of datamodel matching."""

    name = "oracle_matching"
    paper = "Georgiev et al., Attribute-to-Delete (oracle matching), ICLR 2025, arXiv 2410.23232"
    reference = "the paper's oracle-matching description (no public code at this scale)"
    access = DataAccess.FORGET | DataAccess.RETAIN | DataAccess.TRAIN_STATS
    Params = OracleMatchingParams
    deployable = False

    def unlearn(self, model: nn.Module, data: UnlearningData, ctx: RunContext) -> nn.Module:
        p = self.params
        targets = oracle_outputs(data, ctx)
        x_f, x_r = data.forget_tensors()[0], data.retain_tensors()[0]
        pick = torch.as_tensor(retain_sample(len(x_r), len(x_f), p.retain_multiple,
                                             derive_seed(ctx.seed, "oracle_matching-sample")), dtype=torch.long)
        k = len(pick)
        x = torch.cat([x_f, x_r[pick]])
        y = torch.cat([targets["forget"], targets["retain"][pick]]).to(x_f.dtype if x_f.is_floating_point() else None)
        log = match_outputs(model, x, y, p, seed=derive_seed(ctx.seed, "oracle_matching-order"),
                            progress="oracle_matching" if ctx.progress else None)
        ctx.notes.update(matched_forget=len(x_f), matched_retain=k, steps=log.steps, epoch_losses=log.epoch_losses,
                         deployable=False)
        return model
