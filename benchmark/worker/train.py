"""THE contrastive training loop: every encoder method trains here, so comparisons are fair.

Paired twins: the clean images' order, their augmentations and the model's initialisation come
from generators seeded only by the trial seed. Injected images have their own generators and
are appended to each step's batch (spread evenly over an epoch's steps), so a poisoned encoder
and its clean twin see bit-identical clean batches; the only difference is the poisons. The
generators are CPU ones on every device, and an epoch's draws are made at its start and copied
to the device at once (pe_bench.worker.plan): the same batches and views on CPU and GPU, and
no host-device copy or sync inside a step.

Every image is seen once per epoch: an epoch's permutation of the clean images is split into
`steps_per_epoch(n, batch_size)` near-equal batches (no drop-last), and the poisons into as
many chunks. So the share of poisons an encoder sees per epoch is exactly poisons / (clean +
poisons), for a partition-ensemble member as for the whole set; with drop-last the dropped
clean remainder raised it (x1.05 on digits, x1.31 for small partitions). A batch then holds
batch_size x (1 +- 1/(2 steps)) clean images (1,347 images at 256: five batches of 269 or 270).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from pe_bench.worker.augment import crop_boxes, draw_view, normalize, render, render_pair, to_float
from pe_bench.worker.checkpoint import NO_CHECKPOINT, Checkpoint
from pe_bench.encoders.base import EncoderMethod, with_optimizer_defaults
from pe_bench.errors import PluginError
from pe_bench.config.spec import TrainSpec
from pe_bench.plugins.tensors import cuda_channels_last
from pe_bench.worker.plan import Step, epoch_batches, epoch_plan, generators, ship
from pe_bench.worker.plan import to_device as plan_to_device

ProgressFn = Callable[[int, float], None]  # (epoch done, mean loss)


@dataclass(frozen=True)
class TrainResult:
    seconds: float
    images_per_second: float
    final_loss: float
    device: str
    steps: int  # optimiser steps taken
    fitted: dict[str, Any] = field(default_factory=dict)  # EncoderMethod.before_training's
    precision: str = "fp32"  # of the training step: "bf16" (autocast) or "fp32"


def pick_device(requested: str) -> torch.device:
    if requested == "cuda" or (requested == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")


def bf16_native(device: torch.device) -> bool:
    """Whether `device` runs bfloat16 matmuls and convolutions natively: a CUDA GPU that supports
    it, or a CPU with AVX512-BF16 or AMX tiles (elsewhere oneDNN emulates bf16, slower than fp32)."""
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    probes = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    return any(probe is not None and probe() for probe in probes)


def training_precision(recipe: TrainSpec) -> str:
    """The precision a training step with `recipe` runs in on this machine: "bf16" (autocast,
    losses in float32) where the recipe allows it (`amp`) and the device runs bf16 natively,
    "fp32" otherwise. Part of every trained encoder's cache key and recorded in each row."""
    return "bf16" if recipe.amp and bf16_native(pick_device(recipe.device)) else "fp32"


def to_device(images: np.ndarray, device: torch.device) -> torch.Tensor:
    """The whole uint8 image set, resident on the training device for the run (CIFAR-10 is
    150 MB): one pinned-memory copy instead of a host-to-device transfer every step."""
    host = torch.tensor(images)  # a copy: the loaders hand out read-only arrays
    if device.type == "cuda":
        return host.pin_memory().to(device, non_blocking=True)
    return host.to(device)


def cuda_fast_paths(device: torch.device) -> None:
    """When training on CUDA: cuDNN picks the fastest convolution algorithms for the shapes it
    meets (`cudnn.benchmark`) and float32 matmuls may run on TF32 tensor cores. Never set for
    a CPU run, whose numbers must not move."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.set_float32_matmul_precision("high")


def make_optimizer(model: EncoderMethod, recipe: TrainSpec) -> torch.optim.Optimizer:
    """The recipe's optimiser; fields it leaves unset come from the method's defaults."""
    r = with_optimizer_defaults(recipe, type(model))
    if r.lr is None or r.weight_decay is None:
        raise PluginError(f"{type(model).__name__}: no lr / weight_decay; set them in the suite's "
                          "train or in the encoder's optimizer_defaults")
    if r.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=r.lr, weight_decay=r.weight_decay, momentum=0.9)
    if r.optimizer == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=r.lr, weight_decay=r.weight_decay)
    return torch.optim.Adam(model.parameters(), lr=r.lr, weight_decay=r.weight_decay)


def _lr_at(step: int, total: int, warmup: int, base: float) -> float:
    """Linear warm-up, then cosine decay to 0."""
    if step < warmup:
        return base * (step + 1) / warmup
    t = (step - warmup) / max(1, total - warmup)
    return base * 0.5 * (1 + math.cos(math.pi * t))


def _scheduled(opt: torch.optim.Optimizer) -> Callable[[int, int, int], None]:
    """A setter of every parameter group's lr to `_lr_at(step, total, warmup, its initial lr)`."""
    base = [group["lr"] for group in opt.param_groups]

    def set_lr(step: int, total: int, warmup: int) -> None:
        for group, lr in zip(opt.param_groups, base, strict=True):
            group["lr"] = _lr_at(step, total, warmup, lr)

    return set_lr


def steps_per_epoch(n: int, batch_size: int) -> int:
    """Optimiser steps per epoch over `n` images: the nearest whole number of batches of
    `batch_size` (at least one); every image is in one of them."""
    return max(1, round(n / batch_size))


def _views(clean: torch.Tensor, poison: list[torch.Tensor], size: int, recipe: TrainSpec,
           draws: Step) -> tuple[torch.Tensor, torch.Tensor]:
    """A step's two view batches: the clean images' views, then each injected group's."""
    params = [draws.views, *(views for _, _, views in draws.poisons)]
    pairs = [render_pair(to_float(x), p, size, recipe) for x, p in zip([clean, *poison], params, strict=True)]
    return torch.cat([a for a, _ in pairs]), torch.cat([b for _, b in pairs])


@dataclass(frozen=True)
class _Resident:
    """A run's images on the training device: the clean set and each injected group (which
    keeps its own canvas shape), with their caption token ids for image–text methods."""

    clean: torch.Tensor
    groups: tuple[torch.Tensor, ...]
    tokens: torch.Tensor | None = None
    group_tokens: tuple[torch.Tensor, ...] = ()

    def step(self, draws: Step, recipe: TrainSpec, fmt: torch.memory_format
             ) -> tuple[tuple[torch.Tensor, torch.Tensor], dict[str, torch.Tensor]]:
        """One step's two view batches (in `fmt`) and its extra inputs (captions), from the
        step's draws already on the device: no host-device copy, nothing read back."""
        poison = [self.groups[group][rows] for group, rows, _ in draws.poisons]
        v1, v2 = _views(self.clean[draws.clean], poison, self.clean.shape[-1], recipe, draws)
        views = (v1.contiguous(memory_format=fmt), v2.contiguous(memory_format=fmt))
        if self.tokens is None:
            return views, {}
        captions = [self.group_tokens[group][rows] for group, rows, _ in draws.poisons]
        return views, {"text": torch.cat([self.tokens[draws.clean], *captions])}


def _caption_tokens(model: EncoderMethod, texts: np.ndarray | None, poisons: tuple[np.ndarray, ...],
                    poison_texts: tuple[np.ndarray, ...], device: torch.device
                    ) -> tuple[torch.Tensor | None, tuple[torch.Tensor, ...]]:
    """Caption token ids for an image–text method: the clean images' and the injected groups'
    (None and () for image-only methods, which drop any captions the poisons carry)."""
    if "text" not in model.modalities:
        return None, ()
    if texts is None:
        raise ValueError("this encoder trains on image–caption pairs: pass `texts`")
    if any(len(p) for p in poisons) and len(poison_texts) != len(poisons):
        raise ValueError("injected images carry no captions: image-only attacks cannot poison this encoder")
    return torch.tensor(texts, device=device), tuple(torch.tensor(t, device=device) for t in poison_texts)


def _optimise(model: EncoderMethod, step_fn: Callable[..., torch.Tensor], opt: torch.optim.Optimizer,
              views: tuple[torch.Tensor, torch.Tensor], extra: dict[str, torch.Tensor],
              amp: bool) -> torch.Tensor:
    """One optimiser step on a pair of view batches; returns the (detached) loss."""
    with torch.autocast(views[0].device.type, dtype=torch.bfloat16, enabled=amp):
        loss = step_fn(*views, **extra)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    model.after_step()
    return loss.detach()


def pretrain(model: EncoderMethod, clean: np.ndarray, poisons: tuple[np.ndarray, ...],
             recipe: TrainSpec, seed: int, progress: ProgressFn | None = None,
             texts: np.ndarray | None = None, poison_texts: tuple[np.ndarray, ...] = (),
             checkpoint: Checkpoint = NO_CHECKPOINT) -> TrainResult:
    """Train `model` in place on clean images plus `poisons`; returns timing and final loss.
    Image–text methods: `texts`, caption ids per clean image; `poison_texts`, per poison group.
    `checkpoint`: saved every few epochs, and a saved one resumed (pe_bench.worker.checkpoint)."""
    device = pick_device(recipe.device)
    cuda_fast_paths(device)
    fmt = torch.channels_last if recipe.channels_last else torch.contiguous_format
    model.to(device=device, memory_format=fmt).train()  # type: ignore[call-overload]  # stubs lack memory_format
    gens = generators(seed)  # CPU generators whatever the device: pe_bench.worker.plan
    data = _Resident(to_device(clean, device), tuple(to_device(g, device) for g in poisons),
                     *_caption_tokens(model, texts, poisons, poison_texts, device))
    steps = steps_per_epoch(len(clean), recipe.batch_size)
    fitted = model.before_training(len(clean), -(-len(clean) // steps))  # the largest clean batch
    opt = make_optimizer(model, recipe)
    set_lr = _scheduled(opt)
    step_fn = torch.compile(model.training_loss) if recipe.compile else model.training_loss
    precision = training_precision(recipe)
    total, seen, loss_val, start = recipe.epochs * steps, 0, float("nan"), time.perf_counter()
    for epoch in range(checkpoint.restore(model, opt, gens), recipe.epochs):
        plan = epoch_plan(clean.shape, [g.shape for g in poisons], steps, recipe, gens)
        model.before_epoch(epoch, recipe)
        losses = []
        for step, draws in enumerate(plan_to_device(plan, device)):
            set_lr(epoch * steps + step, total, recipe.warmup_epochs * steps)
            views, extra = data.step(draws, recipe, fmt)
            losses.append(_optimise(model, step_fn, opt, views, extra, precision == "bf16"))
            seen += len(views[0])
        loss_val = float(torch.stack(losses).mean())
        if not math.isfinite(loss_val):
            raise FloatingPointError(f"training loss became {loss_val} at epoch {epoch + 1}")
        checkpoint.after_epoch(epoch + 1, recipe.epochs, model, opt, gens)
        if progress is not None:
            progress(epoch + 1, loss_val)
    seconds = time.perf_counter() - start
    model.eval()
    return TrainResult(seconds, seen / max(seconds, 1e-9), loss_val, str(device), total, fitted, precision)


def _distill_plan(shape: tuple[int, ...], steps: int, recipe: TrainSpec, gen: torch.Generator,
                  device: torch.device) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """An epoch of distillation's (indices, view parameters) per step, drawn on `gen` in the
    order the steps use them and moved to `device` in one copy."""
    n, channels, height, width = shape
    batches = epoch_batches(n, steps, gen)
    params = [draw_view(crop_boxes(len(idx), height, width, recipe.crop_min_scale, gen), channels, recipe, gen)
              for idx in batches]
    moved = ship([*batches, *params], device)
    return list(zip(moved[:steps], moved[steps:], strict=True))


def distill(student: EncoderMethod, teacher: EncoderMethod, images: np.ndarray, recipe: TrainSpec,
            seed: int) -> TrainResult:
    """Train `student`'s features to match the frozen `teacher`'s on augmented views of
    `images` (loss 1 - cosine similarity), with the recipe's optimiser and cosine schedule:
    the feature-distillation defense of Saha et al. (SSL-Backdoor, CVPR 2022)."""
    device = pick_device(recipe.device)
    cuda_fast_paths(device)
    cuda_channels_last(student.to(device)).train()
    cuda_channels_last(teacher.to(device)).eval()
    gen = torch.Generator(device="cpu").manual_seed(seed * 7919 + 101)  # device-independent draws
    data = to_device(images, device)
    steps = steps_per_epoch(len(data), recipe.batch_size)
    opt = make_optimizer(student, recipe)
    set_lr = _scheduled(opt)
    total, seen, loss_val, start = recipe.epochs * steps, 0, float("nan"), time.perf_counter()
    for epoch in range(recipe.epochs):
        losses = []
        for step, (idx, params) in enumerate(_distill_plan(images.shape, steps, recipe, gen, device)):
            set_lr(epoch * steps + step, total, 0)
            x = render(to_float(data[idx]), params, images.shape[-1], recipe)
            x = x.contiguous(memory_format=torch.channels_last) if x.is_cuda else x
            with torch.no_grad():
                target = teacher.features(x)
            loss = (1 - torch.nn.functional.cosine_similarity(student.features(x), target)).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.detach())
            seen += len(x)
        loss_val = float(torch.stack(losses).mean())
    seconds = time.perf_counter() - start
    student.eval()
    return TrainResult(seconds, seen / max(seconds, 1e-9), loss_val, str(device), total)


@torch.no_grad()
def encode(model: EncoderMethod, images: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """Frozen features of uint8 images (no augmentation), float32 numpy (N, D), computed in
    float32 on every device and under any caller's autocast: probes and detectors read them,
    so they must not depend on the device (bf16 features on GPU and fp32 on CPU did)."""
    model.eval()
    device = next(model.parameters()).device
    out = []
    for start in range(0, len(images), batch_size):
        x = normalize(to_float(torch.tensor(images[start:start + batch_size], device=device)))
        with torch.autocast(device.type, enabled=False):
            out.append(model.features(x).float().cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, model.feature_dim), np.float32)
