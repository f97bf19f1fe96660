"""Two-layer graph neural networks over node rows (:mod:`expunge.tasks._graph`): ``gcn`` and ``sage``.

Each input row is one node's two-hop computation tree, shape ``(slots, 2 + 3F)``; the models decode it, so a batch
of any nodes gives the outputs a full-graph pass would (the propagation itself, Â·X and the neighbour means, is a
``torch.sparse.mm`` done once per graph view when the rows are built). Both expose ``features(x)`` (the node
embedding the head reads) and a final ``nn.Linear`` ``head``, like every built-in model.

* ``gcn`` — Kipf & Welling, "Semi-Supervised Classification with Graph Convolutional Networks", ICLR 2017:
  Z = Â·ReLU(Â X W1)·W2 with Â = D̃^-1/2 (A + I) D̃^-1/2; the embedding is Â·ReLU(ÂXW1) (hidden 32), the head W2
  (its bias added after aggregation, as in PyG's ``GCNConv``). No dropout: the original must memorise its training
  nodes for deletion to be measurable, as the image models of this toolkit do.
* ``sage`` — Hamilton, Ying, Leskovec, "Inductive Representation Learning on Large Graphs" (GraphSAGE), NeurIPS
  2017, mean aggregator in PyG's ``SAGEConv`` form h_i' = W_r h_i + W_n mean_{j∈N(i)} h_j, full neighbourhoods (no
  sampling), two layers; the embedding is [h1_i, mean_j h1_j] (hidden 32 each), the head the second layer.

Both apply ``deletion_operator`` to the embedding when the model carries one (a (d, d) matrix, as a parameter while
``gnndelete`` trains it, as a buffer afterwards): GNNDelete's deletion operator; absent, the models are unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from expunge.models.registry import register_model


def _deleted(model: nn.Module, z: torch.Tensor) -> torch.Tensor:
    """``z`` through the model's deletion operator, if it has one (``gnndelete``)."""
    op = getattr(model, "deletion_operator", None)
    return z if op is None else z @ op


def _layout(input_shape: tuple[int, ...]) -> int:
    """The feature count F of rows of shape (slots, 2 + 3F)."""
    if len(input_shape) != 2 or (input_shape[1] - 2) % 3 or input_shape[1] < 5:
        raise ValueError(f"a graph model needs node rows of shape (slots, 2 + 3F) (a graph-task dataset), got "
                         f"{tuple(input_shape)}. Fix: use gcn/sage with a graph dataset (sbm, karate)")
    return (input_shape[1] - 2) // 3


class GCN(nn.Module):
    def __init__(self, input_shape: tuple[int, ...], num_classes: int, hidden: int = 32) -> None:
        super().__init__()
        self.f = _layout(input_shape)
        self.conv1 = nn.Linear(self.f, hidden)
        self.head = nn.Linear(hidden, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        weight, real = x[..., 0:1], x[..., 1:2]
        ax = x[..., 2 + self.f:2 + 2 * self.f]      # (ÂX)_j for every slot j
        h1 = F.relu(self.conv1(ax)) * real          # layer 1 at each node of the tree; padding contributes nothing
        return _deleted(self, (weight * h1).sum(dim=1))  # layer 2's aggregation Σ_j â_ij h1_j

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class GraphSAGE(nn.Module):
    def __init__(self, input_shape: tuple[int, ...], num_classes: int, hidden: int = 32) -> None:
        super().__init__()
        self.f = _layout(input_shape)
        self.root1 = nn.Linear(self.f, hidden)
        self.neigh1 = nn.Linear(self.f, hidden, bias=False)
        self.head = nn.Linear(2 * hidden, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        real = x[..., 1:2]
        own, mean_nb = x[..., 2:2 + self.f], x[..., 2 + 2 * self.f:]
        h1 = F.relu(self.root1(own) + self.neigh1(mean_nb)) * real
        nb_real = real[:, 1:]
        nb_mean = (h1[:, 1:] * nb_real).sum(dim=1) / nb_real.sum(dim=1).clamp(min=1.0)  # isolated node: zeros
        return _deleted(self, torch.cat([h1[:, 0], nb_mean], dim=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


@register_model("gcn")
def gcn(*, input_shape: tuple[int, ...], num_classes: int, hidden: int = 32) -> nn.Module:
    return GCN(tuple(input_shape), num_classes, hidden)


@register_model("sage")
def sage(*, input_shape: tuple[int, ...], num_classes: int, hidden: int = 32) -> nn.Module:
    return GraphSAGE(tuple(input_shape), num_classes, hidden)
