"""The pixel convention every plugin that feeds images to an encoder shares (torch): uint8
(B, C, H, W) in, float in [0, 1], then a fixed normalisation. The training loop, BadEncoder,
DECREE and Mudjacking all use these, so an encoder sees the same inputs whoever calls it.
`cuda_channels_last` is the one place that decides a model's memory layout outside pre-training."""

from __future__ import annotations

from typing import TypeVar

import torch

MEAN, STD = 0.5, 0.25  # fixed input normalisation; the networks' BatchNorm does the rest


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 (B, C, H, W) -> float32 in [0, 1], same shape and device."""
    return images.float().div_(255.0)


def normalize(x: torch.Tensor) -> torch.Tensor:
    """Float (B, C, H, W) in [0, 1] -> the encoder's input scale, (x - 0.5) / 0.25."""
    return (x - MEAN) / STD


M = TypeVar("M")


def cuda_channels_last(model: M) -> M:
    """`model` (a torch module), in channels_last memory format if its weights live on CUDA
    (cuDNN's NHWC convolutions are the fast ones there); unchanged elsewhere: on the CPU the
    layout changes the convolutions' summation order, so CPU numbers would move (features and
    gradients of small-cnn and resnet18 differ in the last bits)."""
    weight = next(model.parameters(), None) if isinstance(model, torch.nn.Module) else None
    if isinstance(model, torch.nn.Module) and weight is not None and weight.is_cuda:
        model.to(memory_format=torch.channels_last)
    return model
