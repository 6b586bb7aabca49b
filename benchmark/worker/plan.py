"""One epoch's random draws: made on CPU generators, moved to the training device in one copy.

Every draw that decides what a trial trains on (the clean images' order, the injected images'
spread over the steps, every augmentation parameter) comes from CPU `torch.Generator`s seeded
by the trial seed alone, whatever the device that trains: a trial's batches and views are the
same numbers on a CPU and on a GPU (CUDA's generators give other streams), so the encoder
cache's keys, which do not name the device, and the clean-twin pairing hold across device
types. On the CPU these are the generators and streams the loop always used, so CPU-trained
encoders are bit-identical to those trained before the draws moved here.

An epoch's draws are made at its start, in the order the loop used to make them step by step
(so the numbers are the same), and reach the device as one packed buffer: the training step
then makes no host-to-device copy and reads nothing back (`pe_bench.worker.train`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from pe_bench.config.spec import TrainSpec
from pe_bench.worker.augment import draw_pair

STREAMS = ("order", "poison_order", "aug", "poison_aug")


def generators(seed: int) -> dict[str, torch.Generator]:
    """The loop's random streams, CPU generators seeded by `seed` alone (not by the device)."""
    return {name: torch.Generator(device="cpu").manual_seed(seed * 7919 + i)
            for i, name in enumerate(STREAMS)}


def epoch_batches(n: int, steps: int, gen: torch.Generator) -> tuple[torch.Tensor, ...]:
    """One epoch's image indices: a seeded permutation split into `steps` near-equal batches."""
    return torch.tensor_split(torch.randperm(n, generator=gen, device=gen.device), steps)


def poison_picks(sizes: Sequence[int], steps: int, gen: torch.Generator
                 ) -> list[list[tuple[int, torch.Tensor]]]:
    """Per step, (group, its rows) for each injected group present: a permutation of all the
    injected images split into `steps` near-equal chunks, so each is fed once per epoch."""
    total = sum(sizes)
    if not total:
        return [[] for _ in range(steps)]
    out = []
    for chosen in torch.tensor_split(torch.randperm(total, generator=gen, device=gen.device), steps):
        picks, start = [], 0
        for group, size in enumerate(sizes):
            mine = chosen[(chosen >= start) & (chosen < start + size)] - start
            if len(mine):
                picks.append((group, mine))
            start += size
        out.append(picks)
    return out


@dataclass(frozen=True)
class Step:
    """One step's draws: the clean images' indices and their views' packed parameters
    (`pe_bench.worker.augment.draw_pair`), then (group, rows, views' parameters) for each
    injected group present."""

    clean: torch.Tensor
    views: torch.Tensor
    poisons: tuple[tuple[int, torch.Tensor, torch.Tensor], ...] = ()

    def tensors(self) -> list[torch.Tensor]:
        return [self.clean, self.views, *(t for _, rows, views in self.poisons for t in (rows, views))]

    def rebuilt(self, tensors: Sequence[torch.Tensor]) -> Step:
        """This step with its tensors replaced, in `tensors()` order."""
        poisons = tuple((group, tensors[2 + 2 * i], tensors[3 + 2 * i])
                        for i, (group, _, _) in enumerate(self.poisons))
        return Step(tensors[0], tensors[1], poisons)


def epoch_plan(clean_shape: Sequence[int], poison_shapes: Sequence[Sequence[int]], steps: int,
               recipe: TrainSpec, gens: dict[str, torch.Generator]) -> list[Step]:
    """An epoch's draws, on the generators' device, for `clean_shape` (N, C, H, W) clean images
    and injected groups of `poison_shapes`. Each stream is drawn in the order the steps use it."""
    n, channels, height, width = clean_shape
    picks = poison_picks([shape[0] for shape in poison_shapes], steps, gens["poison_order"])
    canvases = [(shape[1], shape[2], shape[3]) for shape in poison_shapes]
    plan = []
    for idx, chosen in zip(epoch_batches(n, steps, gens["order"]), picks, strict=True):
        views = draw_pair(len(idx), channels, height, width, recipe, gens["aug"])
        poisons = tuple((group, rows, draw_pair(len(rows), *canvases[group], recipe, gens["poison_aug"]))
                        for group, rows in chosen)
        plan.append(Step(idx, views, poisons))
    return plan


def pack(tensors: Sequence[torch.Tensor]) -> tuple[torch.Tensor, list[int]]:
    """`tensors`' bytes in one uint8 buffer, each at an offset aligned to 8 bytes (so any dtype
    can be viewed back in place), and those offsets."""
    chunks, offsets, at = [], [], 0
    for t in tensors:
        raw = t.contiguous().view(-1).view(torch.uint8)
        pad = -len(raw) % 8
        chunks += [raw, raw.new_zeros(pad)]
        offsets.append(at)
        at += len(raw) + pad
    return (torch.cat(chunks) if chunks else torch.zeros(0, dtype=torch.uint8)), offsets


def unpack(buffer: torch.Tensor, offsets: Sequence[int], like: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Views of `buffer` (wherever it lives) as the tensors `pack` packed, shaped as `like`."""
    return [buffer[o:o + t.numel() * t.element_size()].view(t.dtype).view(t.shape)
            for o, t in zip(offsets, like, strict=True)]


def ship(tensors: Sequence[torch.Tensor], device: torch.device) -> list[torch.Tensor]:
    """Host `tensors` on `device`, moved in one copy of one packed buffer (pinned on CUDA, so
    the copy does not block the host). On the CPU they are returned as they are."""
    if device.type == "cpu":
        return list(tensors)
    host, offsets = pack(tensors)
    buffer = host.pin_memory().to(device, non_blocking=True) if device.type == "cuda" else host.to(device)
    return unpack(buffer, offsets, tensors)


def to_device(plan: Sequence[Step], device: torch.device) -> list[Step]:
    """`plan` on `device`, moved in one copy (`ship`)."""
    counts = [len(step.tensors()) for step in plan]
    moved = ship([t for step in plan for t in step.tensors()], device)
    out, at = [], 0
    for step, count in zip(plan, counts, strict=True):
        out.append(step.rebuilt(moved[at:at + count]))
        at += count
    return out
