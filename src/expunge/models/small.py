"""Small CPU-friendly models that fit 8×8 (digits) and 28×28 (Fashion-MNIST) images and tabular rows.

Every factory's ``num_classes`` is the number of outputs the dataset's task needs (``Dataset.num_outputs``): the
class count for classification, the target dimension for regression (1 for ``diabetes``).

* ``mlp`` — flatten → 256 → 128 → C, ReLU; any input shape (images, or rows of shape (D,) such as diabetes' (10,)).
* ``cnn`` — two 3×3 conv layers (32, 64 channels, padding 1) each followed by ReLU and 2×2 max-pool, then
  FC 128 → C. On 28×28 inputs this is the 421,642-parameter CNN the project's timings refer to.
* ``resnet`` — a small pre-activation-free ResNet (He et al. 2016): 3×3 stem with 16 channels, three stages of
  one BasicBlock each (16, 32, 64 channels, stride 1, 2, 2), BatchNorm, global average pooling, linear head
  (≈ 78k parameters).
"""

from __future__ import annotations

import itertools
import math

import torch
import torch.nn.functional as F
from torch import nn

from expunge.models.registry import register_model


class MLP(nn.Module):
    def __init__(self, input_shape: tuple[int, ...], num_classes: int, hidden: tuple[int, ...] = (256, 128)) -> None:
        super().__init__()
        dims = [math.prod(input_shape), *hidden]
        layers: list[nn.Module] = [nn.Flatten()]
        for a, b in itertools.pairwise(dims):
            layers += [nn.Linear(a, b), nn.ReLU()]
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(dims[-1], num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class SmallCNN(nn.Module):
    def __init__(self, input_shape: tuple[int, ...], num_classes: int, channels: tuple[int, int] = (32, 64),
                 hidden: int = 128) -> None:
        super().__init__()
        c, h, w = input_shape
        self.conv1 = nn.Conv2d(c, channels[0], 3, padding=1)
        self.conv2 = nn.Conv2d(channels[0], channels[1], 3, padding=1)
        self.fc = nn.Linear(channels[1] * (h // 4) * (w // 4), hidden)
        self.head = nn.Linear(hidden, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return F.relu(self.fc(torch.flatten(x, 1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class SmallResNet(nn.Module):
    def __init__(self, input_shape: tuple[int, ...], num_classes: int, widths: tuple[int, int, int] = (16, 32, 64)) \
            -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(input_shape[0], widths[0], 3, padding=1, bias=False),
                                  nn.BatchNorm2d(widths[0]), nn.ReLU())
        self.layer1 = BasicBlock(widths[0], widths[0], 1)
        self.layer2 = BasicBlock(widths[0], widths[1], 2)
        self.layer3 = BasicBlock(widths[1], widths[2], 2)
        self.head = nn.Linear(widths[2], num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer3(self.layer2(self.layer1(self.stem(x))))
        return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


@register_model("mlp")
def mlp(*, input_shape: tuple[int, ...], num_classes: int, hidden: tuple[int, ...] = (256, 128)) -> nn.Module:
    return MLP(input_shape, num_classes, tuple(hidden))


@register_model("cnn")
def cnn(*, input_shape: tuple[int, ...], num_classes: int, hidden: int = 128) -> nn.Module:
    return SmallCNN(input_shape, num_classes, hidden=hidden)


@register_model("resnet")
def resnet(*, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    return SmallResNet(input_shape, num_classes)
