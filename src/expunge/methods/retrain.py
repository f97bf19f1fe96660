"""Retrain from scratch on the retain set: the exact baseline, run as a method.

The oracle (:mod:`expunge.train.oracle`) is what every metric compares against; this method is a *second,
independently seeded* retrain, so its gaps to the oracle show the seed-to-seed noise floor of each metric. With
``same_seeds_as_oracle=True`` it reproduces the oracle bit for bit (a test checks this). The model is rebuilt from
the :class:`~expunge.models.ModelSpec` factory with a fresh seed — never by resetting a live module (the SSD
reference's ``retrain`` re-initialises only top-level children, so with its Sequential-block ResNet only ``fc`` is
re-initialised: if-loops/selective-synaptic-dampening issue #1).

Paper: the exact-unlearning definition, e.g. Bourtoule et al., "Machine Unlearning", IEEE S&P 2021.
Reference: if-loops/selective-synaptic-dampening ``src/forget_full_class_strategies.py:retrain`` (bug not copied).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from torch import nn

from expunge._hparams import Hyperparams, hp
from expunge._seeds import derive_seed
from expunge.data.access import DataAccess, UnlearningData
from expunge.errors import ExpungeError
from expunge.methods.base import RunContext, UnlearningMethod, register_method
from expunge.train.loop import fit


@dataclass(frozen=True, kw_only=True)
class RetrainParams(Hyperparams):
    same_seeds_as_oracle: bool = hp(False, "use the oracle's init/order seeds (reproduces it bitwise)")


@register_method
class Retrain(UnlearningMethod[RetrainParams]):
    """Retrain from a fresh initialisation on the retain set with the original's recipe (exact)."""

    name = "retrain"
    paper = "Bourtoule et al., Machine Unlearning, IEEE S&P 2021 (exact retraining baseline)"
    reference = "if-loops/selective-synaptic-dampening src/forget_full_class_strategies.py:retrain (buggy; not copied)"
    access = DataAccess.RETAIN
    Params = RetrainParams
    exact = True
    # trains as the oracle does: the task's loss, its retain view (graph) and its training hook (federated: FedAvg)
    tasks = frozenset({"classification", "regression", "recsys", "graph", "federated", "llm"})

    def unlearn(self, model: nn.Module, data: UnlearningData, ctx: RunContext) -> nn.Module:
        if ctx.model_spec is None or ctx.recipe is None:
            raise ExpungeError("retrain needs the original's model spec and recipe (RunContext.model_spec and .recipe)")
        salt = "oracle" if self.params.same_seeds_as_oracle else "retrain-method"
        init_seed, order_seed = derive_seed(ctx.seed, f"{salt}-init"), derive_seed(ctx.seed, f"{salt}-order")
        fresh = ctx.model_spec.build(seed=init_seed)
        recipe = ctx.recipe

        def fit_on(model: nn.Module, positions: np.ndarray, *, seed: int, epochs: int) -> dict[str, Any]:
            batches = data.retain_loader(recipe.batch_size, seed=seed, positions=positions)
            return fit(model, batches, replace(recipe, epochs=epochs), seed=seed, loss_fn=data.task.batch_loss,
                       progress="retrain" if ctx.progress else None).to_dict()

        # as the oracle trains (the task's hook: plain fit of the pooled retain set; FedAvg for a federation)
        tlog, _ = data.task.train_from_scratch(fresh, data.retain_positions(), fit_on, owners=data.train_owners,
                                               seed=order_seed, epochs=recipe.epochs)
        ctx.notes.update(epochs=tlog.get("epochs"), steps=tlog.get("steps"))
        return fresh
