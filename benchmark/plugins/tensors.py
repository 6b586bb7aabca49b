"""The pixel convention every plugin that feeds images to an encoder shares (torch): uint8
(B, C, H, W) in, float in [0, 1], then a fixed normalisation. The training loop, BadEncoder,
DECREE and Mudjacking all use these, so an encoder sees the same inputs whoever calls it."""

from __future__ import annotations

import torch

MEAN, STD = 0.5, 0.25  # fixed input normalisation; the networks' BatchNorm does the rest


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 (B, C, H, W) -> float32 in [0, 1], same shape and device."""
    return images.float().div_(255.0)


def normalize(x: torch.Tensor) -> torch.Tensor:
    """Float (B, C, H, W) in [0, 1] -> the encoder's input scale, (x - 0.5) / 0.25."""
    return (x - MEAN) / STD
