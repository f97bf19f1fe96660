"""``mlp_small``: a one-hidden-layer MLP (64 units), the federated benchmark's model.

Small on purpose: a federation trains K local copies per round and its server keeps K per-parameter contribution
sums (and FedEraser's history, M × (K + 1) copies), so the parameter count sets the server's memory — 51k parameters
on 28×28 inputs (≈ 0.2 MB a copy), 4.8k on 8×8 digits.
"""

from __future__ import annotations

from torch import nn

from expunge.models.registry import register_model
from expunge.models.small import MLP


@register_model("mlp_small")
def mlp_small(*, input_shape: tuple[int, ...], num_classes: int, hidden: int = 64) -> nn.Module:
    return MLP(input_shape, num_classes, (hidden,))
