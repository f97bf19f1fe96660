"""Recommenders for the ``recsys`` task (inputs: int64 (user, item) pairs; outputs: every item's score).

* ``mf`` — matrix factorisation, the model of BPR-MF (Rendle et al., "BPR: Bayesian Personalized Ranking from
  Implicit Feedback", UAI 2009): ŝ_ui = p_u · q_i with user and item embeddings of ``dim`` (default 32) initialised
  N(0, 0.1²) as in LightGCN's MF baseline (gusye1234/LightGCN-PyTorch ``model.py:PureMF`` uses N(0, 1) with a
  sigmoid; 0.1 keeps the initial BPR margins near 0, so the loss starts at ln 2). No biases: BPR's pairwise loss
  cancels a user bias, and an item bias is an embedding dimension fixed to 1.

``forward(x)`` scores all items for each row's user (``x[:, 0]``; the row's item is ignored), shape (n, n_items);
``score_pairs(users, items)`` the given pairs only (what BPR training needs); ``num_items`` the catalogue size.

A LightGCN-style model is not provided: its forward propagates over the training interaction graph, so the graph (the
forget interactions included) would have to live in the model and be swapped for the retain graph at unlearning and
evaluation; the shared pipeline has no such seam yet, and MF is what BPR unlearning baselines start from.
"""

from __future__ import annotations

import torch
from torch import nn

from expunge.models.registry import register_model


class MatrixFactorization(nn.Module):
    def __init__(self, input_shape: tuple[int, ...], num_classes: int, n_users: int, dim: int = 32,
                 init_std: float = 0.1) -> None:
        super().__init__()
        if tuple(input_shape) != (2,):
            raise ValueError(f"mf takes (user, item) pairs of shape (2,), not {tuple(input_shape)}: it is a "
                             "recommender for the recsys task")
        self.num_items = int(num_classes)
        self.users = nn.Embedding(int(n_users), dim)
        self.items = nn.Embedding(self.num_items, dim)
        nn.init.normal_(self.users.weight, std=init_std)
        nn.init.normal_(self.items.weight, std=init_std)

    def score_pairs(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return (self.users(users.long()) * self.items(items.long())).sum(-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.users(x[:, 0].long()) @ self.items.weight.T


@register_model("mf")
def mf(*, input_shape: tuple[int, ...], num_classes: int, n_users: int | None = None, dim: int = 32) -> nn.Module:
    if n_users is None:
        raise ValueError("mf needs n_users: build it for a recsys dataset (its model_kwargs carry the user count)")
    return MatrixFactorization(input_shape, num_classes, n_users, dim=dim)
