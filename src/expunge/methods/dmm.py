"""Datamodel matching (DMM): predict the retrained model's outputs with a data-attribution model, then fine-tune the
Original to match them.

Paper: Georgiev, Rinberg, Park, Garg, Ilyas, Madry, Neel, "Attribute-to-Delete: Machine Unlearning via Datamodel
Matching", ICLR 2025, arXiv 2410.23232. Reference: the paper's authors' ``dm_direct.py`` (the "unlearning with TRAK"
code: ``DatamodelWrappedModel`` predicts original − multiplier · Σ_{i∈F} scores[i, x]) and the matching loop of their
oracle-matching code — read, not copied; attribution from :mod:`expunge.methods._shared.trak` (TRAK, Park et al.,
ICML 2023). ``oracle_matching`` (:mod:`expunge.methods.oracle_matching`) is the same fine-tuning against the oracle
itself: DMM's upper bound.

1. **Attribution (one-off precompute per Original)**: TRAK features of every training example's margin on the
   Original (k-dimensional projected gradients), cached in the store as a training-set statistic.
2. **Predicted outputs (per request)**: for every example x of the matching set, the margin change of removing F,
   Δm(x) = −multiplier · Σ_{i∈F} τ(x)_i; the target logits are the Original's with Δm(x) added to the logit of x's
   label (margin = logit_y − logsumexp of the others, so this changes the margin by exactly Δm(x) and nothing else:
   the attribution says nothing about the other logits, so they keep the Original's values).
3. **Matching**: minimise the mean squared error between the model's logits and the targets over every forget
   example and a seeded sample of ``retain_multiple`` × |F| retained examples, for ``epochs`` passes.

Choices the paper leaves open at CPU scale, made here: margin attributions from one model with k = ``trak_dim``
projections instead of per-logit datamodels from many models (``multiplier`` — the reference's name — rescales the
single-model scores, which are not calibrated; tune it); the target change put on the label's logit (step 2); the
matching set, optimiser (Adam, lr 1e-3, batch 64) and ``retain_multiple`` = 2 as in ``oracle_matching``, so the two
differ only in their targets. The precompute is one-off per Original (cached), its time reported apart; it is
computed on the model the method is given at the first request on that Original (the Original itself, also at the
first step of a sequential stream).

Measured on digits/MLP (random 10%, k = 512): the single-model scores predict a mean forget-margin change of −0.024
where the forget-specific shift of the oracle (its forget minus its retain mean change) is about −0.1, and per
example they do not correlate with the oracle's changes (which a single retrain's seed noise dominates; KLoM needs
ensembles for the same reason); on a convex model (logistic regression, tests) they correlate at 0.64–0.83 but are
2–5× too small. Hence ``multiplier`` (default 1, the reference's) must be tuned; its search range reaches 1000.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from expunge._hparams import hp
from expunge._seeds import derive_seed
from expunge.data.access import DataAccess, UnlearningData
from expunge.methods._shared.output_matching import OutputMatchingParams, match_outputs, retain_sample
from expunge.methods._shared.trak import predicted_margin_change, trak_features
from expunge.methods.base import RunContext, UnlearningMethod, register_method
from expunge.models.inference import predict_logits


@dataclass(frozen=True, kw_only=True)
class DmmParams(OutputMatchingParams):
    multiplier: float = hp(1.0, "scale of the predicted margin change (single-model TRAK scores are uncalibrated)",
                           low=0.0, search=(0.1, 1000.0), log=True)
    trak_dim: int = hp(512, "TRAK projection dimension k (precompute: n × k features, cached per Original)", low=8)
    trak_batch_size: int = hp(64, "examples per per-example-gradient batch of the precompute (memory: batch × d)",
                              low=1)


def matching_positions(data: UnlearningData, multiple: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(forget positions, a seeded sample of ``multiple`` × |F| retain positions), both sorted."""
    forget, retain = data.forget_positions(), data.retain_positions()
    return forget, retain[retain_sample(len(retain), len(forget), multiple, derive_seed(seed, "dmm-sample"))]


@register_method
class DatamodelMatching(UnlearningMethod[DmmParams]):
    """Predict the retrained model's margins with TRAK attributions (precomputed once per Original), then fine-tune
    the Original to match them on the forget set and a retain sample."""

    name = "dmm"
    paper = "Georgiev et al., Attribute-to-Delete: Machine Unlearning via Datamodel Matching, ICLR 2025, arXiv " \
            "2410.23232; attribution: TRAK, Park et al., ICML 2023"
    reference = "the authors' dm_direct.py (DatamodelWrappedModel); MadryLab/trak (read, not copied)"
    access = DataAccess.FORGET | DataAccess.RETAIN | DataAccess.TRAIN_STATS

    Params = DmmParams

    def unlearn(self, model: nn.Module, data: UnlearningData, ctx: RunContext) -> nn.Module:
        p = self.params
        proj_seed = derive_seed(ctx.seed, "dmm-projection")
        feats = data.train_statistic(f"dmm_trak/margin/{p.trak_dim}/{proj_seed}",
                                     lambda batches: trak_features(model, batches, dim=p.trak_dim, seed=proj_seed),
                                     batch_size=p.trak_batch_size)
        forget_pos, retain_pos = matching_positions(data, p.retain_multiple, ctx.seed)
        x_f, y_f = data.forget_tensors()
        x_r_all, y_r_all = data.retain_tensors()
        keep = np.searchsorted(data.retain_positions(), retain_pos)
        x = torch.cat([x_f, x_r_all[keep]])
        y = torch.cat([y_f, y_r_all[keep]]).long()
        positions = torch.as_tensor(np.concatenate([forget_pos, retain_pos]), dtype=torch.long)
        delta = p.multiplier * predicted_margin_change(feats, positions, torch.as_tensor(forget_pos,
                                                                                         dtype=torch.long))
        with torch.no_grad():
            targets = predict_logits(model, x)
            targets[torch.arange(len(y)), y] += delta.to(targets.dtype)
        log = match_outputs(model, x, targets, p, seed=derive_seed(ctx.seed, "dmm-order"),
                            progress="dmm" if ctx.progress else None)
        ctx.notes.update(matched_forget=len(forget_pos), matched_retain=len(retain_pos), steps=log.steps,
                         epoch_losses=log.epoch_losses,
                         predicted_forget_margin_change=float(delta[:len(forget_pos)].mean()) if len(forget_pos)
                         else None)
        return model
