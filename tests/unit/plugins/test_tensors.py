"""The shared pixel and layout helpers (pe_bench.plugins.tensors)."""

from __future__ import annotations

import torch

from pe_bench.plugins.tensors import cuda_channels_last


def test_channels_last_is_left_to_cuda_models() -> None:
    """On the CPU a model keeps its layout: channels_last would move CPU numbers."""
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3))
    assert cuda_channels_last(model) is model and model[0].weight.is_contiguous()
    model.to(memory_format=torch.channels_last)
    cuda_channels_last(model)
    assert model[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert cuda_channels_last(torch.nn.ReLU()) is not None  # no weights: nothing to place
