"""Backbones chosen by name in a suite: a small conv net for CPU suites, CIFAR-stem ResNet18
for GPU suites. Each maps (B, C, H, W) images to (B, feature_dim) features; any resolution
works (global average pooling)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


def _conv_bn(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class SmallCNN(nn.Module):
    """Five 3x3 conv-BN-ReLU layers, three of them strided, then global average pooling.
    ~0.4M parameters at width 32: trains at a few hundred images/s on one CPU core."""

    def __init__(self, in_channels: int = 3, width: int = 32) -> None:
        super().__init__()
        w = width
        self.body = nn.Sequential(
            _conv_bn(in_channels, w, 1),
            _conv_bn(w, 2 * w, 2),
            _conv_bn(2 * w, 2 * w, 1),
            _conv_bn(2 * w, 4 * w, 2),
            _conv_bn(4 * w, 8 * w, 2),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.feature_dim = 8 * w

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class ResNet18Cifar(nn.Module):
    """ResNet18 with the CIFAR stem (3x3 stride-1 first conv, no max-pool), as in SimCLR's
    CIFAR experiments; torchvision's implementation, randomly initialised (no weights)."""

    def __init__(self, in_channels: int = 3, width: int = 64) -> None:
        super().__init__()
        from torchvision.models import resnet18

        net = resnet18(weights=None)
        if width != 64:
            raise ValueError("resnet18 has a fixed width of 64")
        net.conv1 = nn.Conv2d(in_channels, 64, 3, stride=1, padding=1, bias=False)
        net.maxpool = nn.Identity()
        net.fc = nn.Identity()
        self.net = net
        self.feature_dim = 512

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


BACKBONES: dict[str, Callable[..., nn.Module]] = {
    "small-cnn": SmallCNN,
    "resnet18": ResNet18Cifar,
}


def build_backbone(name: str, in_channels: int, width: int | None = None) -> nn.Module:
    kwargs = {} if width is None else {"width": width}
    return BACKBONES[name](in_channels=in_channels, **kwargs)


def projection_head(in_dim: int, hidden_dim: int, out_dim: int) -> nn.Module:
    """SimCLR's 2-layer MLP projection head; downstream tasks use the features before it."""
    return nn.Sequential(
        nn.Linear(in_dim, hidden_dim),
        nn.BatchNorm1d(hidden_dim),
        nn.ReLU(inplace=True),
        nn.Linear(hidden_dim, out_dim),
    )
