"""Device and step helpers the throughput pipelines share: syncs, peak memory, the memory
format and one optimiser step on a pair of view batches."""

from __future__ import annotations

import torch

from pe_bench.config.spec import TrainSpec
from pe_bench.encoders.base import EncoderMethod


GPU_BOUND_SHARE = 0.15  # input share below this on CUDA: the GPU is the limit


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)


def _peak_mib(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device) / 2**20


def _memory_format(recipe: TrainSpec) -> torch.memory_format:
    return torch.channels_last if recipe.channels_last else torch.contiguous_format


def train_step(model: EncoderMethod, opt: torch.optim.Optimizer, v1: torch.Tensor, v2: torch.Tensor,
               device: torch.device, amp: bool) -> torch.Tensor:
    """One optimiser step exactly as `pe_bench.worker.train.pretrain` takes it."""
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
        loss = model.training_loss(v1, v2)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    model.after_step()
    return loss.detach()


# -- pe-bench ----------------------------------------------------------------------------------


def _share(pipeline: float, model_only: float | None) -> float | None:
    return None if not model_only else max(0.0, 1.0 - pipeline / model_only)


def _limit(share: float | None, device: torch.device) -> str | None:
    if share is None:
        return None
    if device.type != "cuda":
        return "cpu"  # augmentation and model share the same cores: the share says who costs what
    return "gpu" if share < GPU_BOUND_SHARE else "input"
