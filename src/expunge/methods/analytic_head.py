"""Analytic head: a closed-form ridge head on frozen features, unlearned exactly by a Woodbury downdate.

Paper: Tang, Zhuang, Fang, Li, Han, Huang, Fan, Wang, Zhu, Zhang, Song, Liu, "ACU: Analytic Continual Unlearning for
Efficient and Exact Forgetting with Privacy Preservation", arXiv 2505.12239 (2025); analytic learning: Zhuang et al.,
"ACIL: Analytic Class-Incremental Learning with Absolute Memorization and Privacy Protection", NeurIPS 2022.
Reference: none public; implemented from the ACU/ACIL equations (helpers in ``methods/_shared/ridge_head.py``).

**Head-exact only.** φ (the model's penultimate features) was trained on D, so D_f's influence on φ remains; what is
exact is the head: after a request it equals, to float64 round-off, the ridge regression refitted on φ(D_r).

Algorithm. X = [φ(D), 1] (n × (d+1), float64; the constant column carries the head's bias, which is regularised
like the weights; a head without bias gets no column), Y = one-hot labels. Fit state R = (XᵀX + γI)⁻¹, Q = XᵀY is
request-independent: computed once per original over the full training set and cached
(:meth:`~expunge.data.access.UnlearningData.train_statistic`; only R and Q, no raw data). A request removes its rows
by the recursive Woodbury update, ``chunk_size`` rows at a time: K = I − X_f R X_fᵀ (solved by Cholesky; an error if
K is not positive definite), R' = R + R X_fᵀ K⁻¹ X_f R (symmetrised), Q' = Q − X_fᵀ Y_f; then W' = R'Q' is written
into the head (``weight = output_scale·W'[:d]ᵀ``, ``bias = output_scale·W'[d]``). Data: the forget set only.

**The original's head is replaced**: the network's trained head becomes the ridge head (its "original" is the ridge
fit on D; outputs are regression scores ≈ one-hot, not calibrated logits — ``output_scale`` sharpens their softmax
without changing the argmax or exactness; 1 = the paper's one-hot targets).

**Sequential requests.** The updated state stays on the returned model as persistent buffers of the head module:
``analytic_R``, ``analytic_Q`` (float64), ``analytic_removed`` (bool per training position) and ``analytic_gamma``.
Given such a model, the next request continues from R', Q' instead of the cached full-data state; positions removed
before are skipped (removing a row twice would silently break exactness if K stayed positive definite). Two
sequential requests equal one joint request (tested).

φ: ``model.features`` + ``model.head`` on the built-in models; any other ``nn.Module`` falls back to the input of the
last ``nn.Linear`` executed in a forward pass (a forward hook), and that layer is rewritten. Not implemented: ACIL's
optional fixed random "buffer" layer between φ and the head.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from expunge._hparams import Hyperparams, hp
from expunge.data.access import DataAccess, UnlearningData
from expunge.data.batches import Batches
from expunge.errors import ExpungeError
from expunge.methods._shared.ridge_head import design_rows, locate_head, ridge_downdate, ridge_statistics
from expunge.methods.base import RunContext, UnlearningMethod, register_method

STATE = ("analytic_R", "analytic_Q", "analytic_removed", "analytic_gamma")


@dataclass(frozen=True, kw_only=True)
class AnalyticHeadParams(Hyperparams):
    gamma: float = hp(1.0, "ridge regulariser gamma in R = (X^T X + gamma I)^-1 (our default; the papers' value "
                           "unverified)", low=0.0, low_open=True, search=(1e-3, 1e3), log=True)
    batch_size: int = hp(256, "batch size of the feature passes", low=1)
    chunk_size: int = hp(1024, "forget rows per Woodbury step (K is at most chunk x chunk)", low=1)
    output_scale: float = hp(1.0, "multiplies the head's outputs (1 = one-hot regression scores, as the paper)",
                             low=0.0, low_open=True, search=(1.0, 50.0), log=True)


def head_state(head: nn.Module) -> dict[str, torch.Tensor] | None:
    """The analytic state a previous request left on ``head`` (``None`` if there is none)."""
    bufs = dict(head.named_buffers(recurse=False))
    return {k: bufs[k] for k in STATE} if all(k in bufs for k in STATE) else None


def ridge_solution(r: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """W = R Q, shape (d[+1], C)."""
    return r @ q


@torch.no_grad()
def write_head(head: nn.Linear, w: torch.Tensor, scale: float) -> None:
    d = head.in_features
    head.weight.copy_((scale * w[:d]).T.to(head.weight.dtype))
    if head.bias is not None:
        head.bias.copy_((scale * w[d]).to(head.bias.dtype))


@register_method
class AnalyticHead(UnlearningMethod[AnalyticHeadParams]):
    """Closed-form ridge head on frozen features, downdated by Woodbury (head-exact only: φ was trained on D_f)."""

    name = "analytic_head"
    paper = "Tang, Zhuang et al., ACU, arXiv 2505.12239 (2025); Zhuang et al., ACIL, NeurIPS 2022"
    reference = "none public (built from the ACU/ACIL equations); helpers in expunge/methods/_shared/ridge_head.py"
    access = DataAccess.FORGET | DataAccess.TRAIN_STATS
    Params = AnalyticHeadParams
    exact = True
    state_buffers = STATE

    def unlearn(self, model: nn.Module, data: UnlearningData, ctx: RunContext) -> nn.Module:
        p = self.params
        x_f, y_f = data.forget_tensors()
        features, head, how = locate_head(model, x_f[:1])
        bias = head.bias is not None
        c = data.num_classes

        def rows(x: torch.Tensor) -> torch.Tensor:
            return design_rows(features, model, x, bias=bias, batch_size=p.batch_size)

        previous = head_state(head)
        if previous is not None:  # a previous analytic_head request: continue from its R', Q'
            fitted = float(previous["analytic_gamma"])
            if fitted != p.gamma:
                raise ExpungeError(f"the model's analytic head was fitted with gamma={fitted}, the parameters say "
                                   f"gamma={p.gamma}; continue with the same gamma")
            r, q = previous["analytic_R"], previous["analytic_Q"]
            removed = previous["analytic_removed"].numpy().copy()
        else:
            def compute(batches: Batches) -> dict[str, torch.Tensor]:
                blocks = ((rows(x), F.one_hot(y, c).double()) for x, y in batches)
                r0, q0 = ridge_statistics(blocks, p.gamma)
                return {"R": r0, "Q": q0}

            stat = data.train_statistic(f"analytic_head_ridge_g{p.gamma!r}_{how}_bias{int(bias)}", compute,
                                        batch_size=p.batch_size)
            r, q = stat["R"], stat["Q"]
            removed = np.zeros(data.n_train, dtype=bool)
        positions = data.forget_positions()  # sorted, the order of forget_tensors
        new = ~removed[positions]
        removed[positions] = True
        r, q, min_pivot = ridge_downdate(r, q, rows(x_f[torch.from_numpy(new)]),
                                         F.one_hot(y_f[torch.from_numpy(new)], c).double(), chunk=p.chunk_size)
        write_head(head, ridge_solution(r, q), p.output_scale)
        for name, value in zip(STATE, (r, q, torch.from_numpy(removed), torch.tensor(p.gamma, dtype=torch.float64)),
                               strict=True):
            head.register_buffer(name, value.clone())
        ctx.notes.update(head=how, feature_dim=int(r.shape[0]) - int(bias), rows_removed=int(new.sum()),
                         rows_already_removed=int((~new).sum()), rows_removed_total=int(removed.sum()),
                         continued=previous is not None,
                         min_k_pivot=min_pivot if np.isfinite(min_pivot) else None, claim="head-exact")
        return model
