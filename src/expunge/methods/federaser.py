"""FedEraser: rebuild the federation without a client from the server's retained updates, calibrated by the remaining
clients' short local training.

Paper: Liu, Ma, Yang, Wang, Liu, "FedEraser: Enabling Efficient Client-Level Data Removal from Federated Learning
Models", IWQoS 2021, arXiv 2012.13891. Reference: the baseline of the ConDa repository,
respailab/ConDa-Federated-Unlearning ``FedUnlearner/baselines/fed_eraser/fed_eraser.py`` (``fed_eraser_one_step``,
``run_fed_eraser``) — the baseline ConDa is compared with.

The server kept, every Δt = 2 rounds, the global model and every client's local model
(:mod:`expunge.tasks.federated`, rounds r_0 = 0, r_1, …, r_{M-1}). Unlearning client(s) F:

1. r_0: the new global model is the FedAvg of the remaining clients' retained local models of round r_0 (they started
   from the same initial model, so no calibration is needed — the reference does the same).
2. For each later retained round r_j: every remaining client trains from the new global model for a share
   ``calibration_ratio`` of one local epoch (FedEraser's calibration ratio r = 0.5) with the Original's recipe; per
   parameter tensor ("layer", as the reference), with U_old = FedAvg of the remaining clients' retained models −
   the old global at r_j and U_new = FedAvg of the calibrated models − the new global:
   new global ← new global + ‖U_old‖ · U_new / ‖U_new‖.
3. The unlearned model is the new global model after the last retained round.

Choices: the averages are weighted by the clients' example counts, like the federation's own aggregation (the
reference averages uniformly); the reference replays ``num_unlearn_rounds`` = 1 round by default, FedEraser's paper
replays every retained round — done here. Buffers (BatchNorm statistics) are not calibrated: they stay the Original's
(the federated benchmark's ``mlp_small`` has none). Data: the remaining clients' own examples (each trains on its
own; ``RETAIN``), and the server record. Server memory: M × (K + 1) × |θ| floats (recorded in ``notes``).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
from torch import nn

from expunge._hparams import Hyperparams, hp
from expunge.data.access import DataAccess, UnlearningData
from expunge.methods.base import RunContext, UnlearningMethod, register_method
from expunge.methods.conda import MissingServerRecord, client_groups, server_record
from expunge.tasks.federated import client_seed, record_table
from expunge.train.loop import TrainRecipe, make_optimizer, train_loop


@dataclass(frozen=True, kw_only=True)
class FedEraserParams(Hyperparams):
    calibration_ratio: float = hp(0.5, "share of one local epoch each remaining client trains per retained round",
                                  low=0.0, low_open=True, high=1.0, search=(0.1, 1.0))


def calibrated_step(new_global: dict[str, torch.Tensor], new_mean: dict[str, torch.Tensor],
                    old_global: dict[str, torch.Tensor], old_mean: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """new global + ‖old update‖ · new update / ‖new update‖ per tensor (a zero new update leaves the tensor)."""
    out = {}
    for name, g in new_global.items():
        new_update, old_update = new_mean[name] - g, old_mean[name] - old_global[name]
        norm = torch.linalg.vector_norm(new_update)
        out[name] = g if float(norm) == 0.0 else g + torch.linalg.vector_norm(old_update) * new_update / norm
    return out


@register_method
class FedEraser(UnlearningMethod[FedEraserParams]):
    """Replay the retained rounds without the client, each update's direction from the remaining clients' short
    calibration training and its length from the retained update."""

    name = "federaser"
    paper = ("Liu, Ma, Yang, Wang, Liu, FedEraser: Enabling Efficient Client-Level Data Removal from Federated "
             "Learning Models, IWQoS 2021, arXiv 2012.13891")
    reference = "respailab/ConDa-Federated-Unlearning FedUnlearner/baselines/fed_eraser/fed_eraser.py"
    access = DataAccess.RETAIN | DataAccess.TRAIN_STATS
    Params = FedEraserParams
    tasks = frozenset({"federated"})

    def unlearn(self, model: nn.Module, data: UnlearningData, ctx: RunContext) -> nn.Module:
        p, recipe = self.params, ctx.recipe or TrainRecipe()
        record = server_record(data)
        f_rows, r_rows = client_groups(record, data.forget_owners)
        clients = [int(c) for c in record["clients"]]
        counts = record["n_examples"].double()[r_rows]
        weights = (counts / counts.sum()).tolist()
        old_global, old_client = record_table(record, "history_global"), record_table(record, "history_client")
        names = list(old_global)
        # each remaining client's own examples (the simulation hands every client its data; the server sees none)
        retain, owners = data.retain_positions(), data.train_owners
        if owners is None:
            raise MissingServerRecord("federaser needs the dataset's clients (owners); this dataset has none")
        local = {clients[i]: retain[owners[retain] == clients[i]] for i in r_rows}

        def fedavg(states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
            return {n: sum(w * s[n] for w, s in zip(weights, states, strict=True)) for n in names}

        def retained(j: int) -> dict[str, torch.Tensor]:
            return fedavg([{n: old_client[n][j, i] for n in names} for i in r_rows])

        new_global = retained(0)
        steps = 0
        for j in range(1, len(record["history_rounds"])):
            calibrated = []
            for i in r_rows:
                c = clients[i]
                worker = copy.deepcopy(model)
                worker.load_state_dict(new_global, strict=False)
                batches = data.retain_loader(recipe.batch_size, positions=local[c],
                                             seed=client_seed(ctx.seed, int(record["history_rounds"][j]), c))
                budget = max(1, math.ceil(p.calibration_ratio * len(batches)))
                opt = make_optimizer(worker.parameters(), recipe.optimizer, lr=recipe.lr, momentum=recipe.momentum,
                                     weight_decay=recipe.weight_decay)
                log = train_loop(worker, batches, data.task.batch_loss, opt, epochs=1, max_steps=budget)
                steps += log.steps
                calibrated.append({n: t.detach().clone() for n, t in worker.named_parameters()})
            new_global = calibrated_step(new_global, fedavg(calibrated),
                                         {n: old_global[n][j] for n in names}, retained(j))
        model.load_state_dict(new_global, strict=False)
        history = [t for k, t in record.items() if k.startswith("history_")]
        ctx.notes.update(replayed_rounds=len(record["history_rounds"]), calibration_steps=steps,
                         forgotten_clients=[clients[i] for i in f_rows],
                         server_record_bytes=int(sum(t.numel() * t.element_size() for t in history)))
        return model
