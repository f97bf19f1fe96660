"""GNNDelete-style baseline: freeze the GNN, learn a deletion operator on its node embeddings with GNNDelete's two
losses.

Paper: Cheng, Dasoulas, He, Agarwal, Zitnik, "GNNDelete: A General Strategy for Unlearning in Graph Neural
Networks", ICLR 2023, arXiv 2302.13406. Reference: mims-harvard/GNNDelete ``framework/models/deletion.py``
(``DeletionLayer``) and ``framework/trainer/gnndelete.py`` (read for the structure; nothing copied). GNNDelete keeps
the trained weights frozen and trains small deletion operators W_D, applied to the representations of the nodes in
the deleted elements' neighbourhood, with λ·L_DEC + (1 − λ)·L_NI: *deleted edge consistency* (a deleted edge should
look like a random pair of nodes to the link predictor) and *neighbourhood influence* (the other nodes'
representations should stay as they were).

"Style": two simplifications, forced by how expunge feeds a graph to a model (one row per node, no node identity at
inference, :mod:`expunge.tasks._graph`), each documented and tested:

* One operator, on the final node embedding (``model.features``), applied to **every** node — a row does not say
  whether its node lies near a deleted element, and a model that needed the request at inference could not be
  evaluated like the others. NI therefore keeps every retained node's embedding (on the graph after deletion) at the
  Original's, which is what restricts the operator's effect. It starts at the identity, so the untrained model is
  the Original; it is stored as the buffer ``deletion_operator`` (restored with the model).
* Node requests: GNNDelete deletes a node through its edges; here DEC asks each deleted node's embedding (its row as
  it was) to match the embedding of a random retained node, the node-level form of "look like a random pair".
  Edge requests: DEC matches σ(z_u·z_v) of each deleted edge whose two endpoints are training nodes to that of a
  random pair of retained nodes (GNNDelete's link-score form); an edge with a test endpoint has no readable row and
  is skipped (counted in the notes). Random targets are computed with the current model and detached.

Defaults: λ = 0.5 (GNNDelete's ``alpha``), Adam lr 1e-2 on the operator only, 10 epochs over the retained nodes in
batches of 64 each paired with a cycled batch of deleted elements.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from expunge._hparams import hp
from expunge.data.access import DataAccess, UnlearningData
from expunge.data.batches import Batch, Batches
from expunge.errors import ExpungeError
from expunge.methods._shared.optim import GradientParams, optimizer_for
from expunge.methods.base import RunContext, UnlearningMethod, register_method
from expunge.methods.distill_to_delete import _Paired, link_score
from expunge.train.loop import train_loop

OPERATOR = "deletion_operator"


@dataclass(frozen=True, kw_only=True)
class GNNDeleteParams(GradientParams):
    epochs: int = hp(10, "passes over the retained training nodes", low=1, search=(1, 50))
    lr: float = hp(1e-2, "learning rate of the deletion operator", low=0.0, low_open=True, search=(1e-4, 1e-1),
                   log=True)
    optimizer: Literal["sgd", "adam", "adamw"] = hp("adam", "optimiser", choices=("sgd", "adam", "adamw"))
    weight_decay: float = hp(0.0, "weight decay", low=0.0)
    batch_size: int = hp(64, "retained nodes per step (each paired with as many deleted elements)", low=1)
    lam: float = hp(0.5, "λ: weight of deleted-edge consistency (1 − λ on neighbourhood influence)", low=0.0,
                    high=1.0, search=(0.1, 0.9))


@register_method
class GNNDelete(UnlearningMethod[GNNDeleteParams]):
    """GNNDelete-style: frozen GNN + a learned linear deletion operator on node embeddings (DEC + NI losses)."""

    name = "gnndelete"
    paper = "Cheng, Dasoulas, He, Agarwal, Zitnik, GNNDelete, ICLR 2023, arXiv 2302.13406 (simplified: see docstring)"
    reference = "mims-harvard/GNNDelete framework/trainer/gnndelete.py, framework/models/deletion.py"
    access = DataAccess.FORGET | DataAccess.RETAIN
    Params = GNNDeleteParams
    tasks = frozenset({"graph"})
    state_buffers = (OPERATOR,)

    def unlearn(self, model: nn.Module, data: UnlearningData, ctx: RunContext) -> nn.Module:
        p = self.params
        if not hasattr(model, "features"):
            raise ExpungeError("gnndelete needs a model with features(x), the node embedding (gcn, sage)")
        xr, _ = data.retain_tensors()
        with torch.no_grad():
            z_orig = model.features(xr)
        for param in model.parameters():
            param.requires_grad_(False)
        if hasattr(model, OPERATOR):  # a previous request's operator: keep composing on it
            start = getattr(model, OPERATOR).detach().clone()
            delattr(model, OPERATOR)
        else:
            start = torch.eye(z_orig.shape[1])
        model.register_parameter(OPERATOR, nn.Parameter(start))
        retain = Batches(xr, z_orig, batch_size=p.batch_size, shuffle=True, seed=ctx.seed)
        deleted, notes = self._deleted(data, p.batch_size, ctx.seed)
        gen = ctx.generator(0x6D)
        edge_request = "skipped_edges" in notes

        def loss(m: nn.Module, batch: Batch) -> torch.Tensor:
            (x, z_keep), forget = batch  # type: ignore[misc]
            z = m.features(x)
            l_ni = F.mse_loss(z, z_keep)
            if forget is None:
                return l_ni
            pick = torch.randint(len(x), (len(forget[0]), 2), generator=gen)
            if edge_request:
                xu, xv = forget
                with torch.no_grad():
                    target = torch.sigmoid((z[pick[:, 0]] * z[pick[:, 1]]).sum(dim=1))
                l_dec = F.mse_loss(link_score(m, xu, xv), target)
            else:
                l_dec = F.mse_loss(m.features(forget[0]), z[pick[:, 0]].detach())
            return p.lam * l_dec + (1.0 - p.lam) * l_ni

        log = train_loop(model, _Paired(retain, deleted), loss, optimizer_for(model, p), epochs=p.epochs,
                         clip_grad_norm=p.clip_grad_norm, progress="gnndelete" if ctx.progress else None)
        op = getattr(model, OPERATOR).detach().clone()
        delattr(model, OPERATOR)
        model.register_buffer(OPERATOR, op)  # stored and restored with the model (state_buffers)
        for param in model.parameters():
            param.requires_grad_(True)
        ctx.notes.update(steps=log.steps, skipped_nonfinite=log.skipped_nonfinite,
                         operator_change=float((op - torch.eye(len(op))).norm()), **notes)
        return model

    @staticmethod
    def _deleted(data: UnlearningData, batch_size: int, seed: int) -> tuple[Batches | None, dict[str, Any]]:
        xf, _ = data.forget_tensors()
        edges = np.asarray(data.forget_detail.get("deleted_edges", []), dtype=np.int64).reshape(-1, 2)
        if not len(edges):
            return Batches(xf, batch_size=batch_size, shuffle=True, seed=seed + 1), {"n_deleted_nodes": len(xf)}
        row = {int(i): r for r, i in enumerate(data.forget_ids().tolist())}
        usable = [(row[u], row[v]) for u, v in edges.tolist() if u in row and v in row]
        notes = {"n_deleted_edges": len(edges), "skipped_edges": len(edges) - len(usable)}
        if not usable:
            return None, notes
        pu, pv = (torch.as_tensor(c) for c in zip(*usable, strict=True))
        return Batches(xf[pu], xf[pv], batch_size=batch_size, shuffle=True, seed=seed + 1), notes
