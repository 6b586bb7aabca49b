"""The conventional reference pipeline perf/throughput.py compares pe-bench with: a DataLoader
over a map-style dataset whose items are two views made by per-sample torchvision transforms."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

try:
    from perf import _common as common
except ModuleNotFoundError:  # run as a script: perf/ itself is on sys.path
    import _common as common  # type: ignore[no-redef]

from pe_bench.config.spec import TrainSpec
from pe_bench.encoders.base import EncoderMethod
from pe_bench.worker.augment import MEAN, STD
from pe_bench.worker.train import make_optimizer

try:
    from perf._timing import _memory_format, _peak_mib, _reset_peak, _sync, train_step
except ModuleNotFoundError:  # run as a script: perf/ itself is on sys.path
    from _timing import _memory_format, _peak_mib, _reset_peak, _sync, train_step  # type: ignore[no-redef]

PREFETCH = 2  # DataLoader prefetch_factor (torch's default) of the reference's workers


def reference_transform(api: str, size: int, channels: int, min_scale: float) -> Any:
    """The conventional SimCLR CIFAR augmentation, applied to one image at a time."""
    mean, std = [MEAN] * channels, [STD] * channels
    if api == "v1":
        from torchvision import transforms as T

        return T.Compose([
            T.RandomResizedCrop(size, scale=(min_scale, 1.0)),
            T.RandomHorizontalFlip(),
            T.RandomApply([T.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
            T.RandomGrayscale(p=0.2),
            T.ToTensor(),
            T.Normalize(mean, std),
        ])
    from torchvision.transforms import v2

    return v2.Compose([
        v2.RandomResizedCrop(size, scale=(min_scale, 1.0), antialias=True),
        v2.RandomHorizontalFlip(),
        v2.RandomApply([v2.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
        v2.RandomGrayscale(p=0.2),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(mean, std),
    ])


class TwoViewDataset(Dataset):
    """Map-style dataset returning two independently transformed views of image i.

    v1: images kept as uint8 HWC numpy and turned into a PIL image per access, as torchvision's
    CIFAR10 does; v2: uint8 CHW tensors fed to transforms.v2 directly."""

    def __init__(self, images: np.ndarray, api: str, min_scale: float) -> None:
        self.api = api
        channels, size = images.shape[1], images.shape[-1]
        self.transform = reference_transform(api, size, channels, min_scale)
        if api == "v1":
            hwc = np.ascontiguousarray(images.transpose(0, 2, 3, 1))
            self.data: Any = np.ascontiguousarray(hwc[..., 0]) if channels == 1 else hwc
        else:
            self.data = torch.tensor(images)  # a writable copy (the dataset memo is read-only)

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        img = Image.fromarray(self.data[i]) if self.api == "v1" else self.data[i]
        return self.transform(img), self.transform(img)


def measure_reference(model: EncoderMethod, images: np.ndarray, recipe: TrainSpec, steps: int,
                      warmup: int, device: torch.device, api: str, num_workers: int,
                      seed: int) -> dict[str, Any]:
    """The same optimiser steps fed by a per-sample DataLoader; warm-up steps not counted."""
    fmt = _memory_format(recipe)
    model.to(device=device, memory_format=fmt).train()
    opt = make_optimizer(model, recipe)
    amp = recipe.amp and device.type == "cuda"
    batch = recipe.batch_size
    # Workers fill a queue of PREFETCH batches each while the first steps run; that many extra
    # untimed steps keep batches made before the clock starts from flattering the timed ones.
    warmup += PREFETCH * num_workers
    dataset = TwoViewDataset(common.take(images, batch * (warmup + steps)), api, recipe.crop_min_scale)
    loader = DataLoader(dataset, batch_size=batch, shuffle=True, drop_last=True, num_workers=num_workers,
                        pin_memory=device.type == "cuda", generator=torch.Generator().manual_seed(seed),
                        prefetch_factor=PREFETCH if num_workers else None)
    torch.manual_seed(seed)  # the transforms draw from the global RNG (workers: from the loader's)
    batches = iter(loader)  # starts the workers, if any
    losses, start = [], time.perf_counter()
    for i in range(warmup + steps):
        if i == warmup:  # the clock covers fetching the batch too
            _reset_peak(device)  # synchronises: the warm-up's GPU work is done
            start = time.perf_counter()
        v1, v2 = next(batches)
        v1 = v1.to(device, non_blocking=True).contiguous(memory_format=fmt)
        v2 = v2.to(device, non_blocking=True).contiguous(memory_format=fmt)
        losses.append(train_step(model, opt, v1, v2, device, amp))
    _sync(device)
    seconds = time.perf_counter() - start
    return {"img_s": steps * batch / seconds, "seconds": seconds,
            "loss": float(torch.stack(losses[warmup:]).mean()), "peak_mib": _peak_mib(device)}


# -- driver ----------------------------------------------------------------------------------------
