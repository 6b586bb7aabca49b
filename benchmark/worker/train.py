"""THE contrastive training loop: every encoder method trains here, so comparisons are fair.

Paired twins: the clean images' order, their augmentations and the model's initialisation come
from generators seeded only by the trial seed. Injected images have their own generators and
are appended to each step's batch (spread evenly over an epoch's steps), so a poisoned encoder
and its clean twin see bit-identical clean batches; the only difference is the poisons.

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

from pe_bench.worker.augment import augment, normalize, to_float, view_pair
from pe_bench.encoders.base import EncoderMethod, with_optimizer_defaults
from pe_bench.errors import PluginError
from pe_bench.config.spec import TrainSpec

ProgressFn = Callable[[int, float], None]  # (epoch done, mean loss)


@dataclass(frozen=True)
class TrainResult:
    seconds: float
    images_per_second: float
    final_loss: float
    device: str
    steps: int  # optimiser steps taken
    fitted: dict[str, Any] = field(default_factory=dict)  # EncoderMethod.before_training's


def pick_device(requested: str) -> torch.device:
    if requested == "cuda" or (requested == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")


def to_device(images: np.ndarray, device: torch.device) -> torch.Tensor:
    """The whole uint8 image set, resident on the training device for the run (CIFAR-10 is
    150 MB): one pinned-memory copy instead of a host-to-device transfer every step."""
    host = torch.tensor(images)  # a copy: the loaders hand out read-only arrays
    if device.type == "cuda":
        return host.pin_memory().to(device, non_blocking=True)
    return host


def _generators(seed: int, device: torch.device) -> dict[str, torch.Generator]:
    streams = ("order", "poison_order", "aug", "poison_aug")
    return {name: torch.Generator(device=device).manual_seed(seed * 7919 + i)
            for i, name in enumerate(streams)}


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


def epoch_batches(n: int, steps: int, gen: torch.Generator) -> tuple[torch.Tensor, ...]:
    """One epoch's image indices: a seeded permutation split into `steps` near-equal batches."""
    return torch.tensor_split(torch.randperm(n, generator=gen, device=gen.device), steps)


class _PoisonFeed:
    """Spreads the injected images over an epoch's steps; groups keep their own canvas shape.
    `texts`: the groups' caption token ids (image–text methods), handed out alongside."""

    def __init__(self, groups: tuple[torch.Tensor, ...], steps: int, gen: torch.Generator,
                 texts: tuple[torch.Tensor, ...] = ()) -> None:
        self.groups, self.steps, self.gen, self.texts = groups, steps, gen, texts
        self.sizes = [len(g) for g in groups]
        self.total = sum(self.sizes)
        self.chunks: list[torch.Tensor] = []

    def new_epoch(self) -> None:
        order = torch.randperm(self.total, generator=self.gen, device=self.gen.device)
        self.chunks = list(torch.tensor_split(order, self.steps)) if self.total else []

    def _pick(self, step: int, arrays: tuple[torch.Tensor, ...]) -> list[torch.Tensor]:
        """This step's rows of each group's `arrays` entry, for the groups present."""
        if not self.total:
            return []
        chosen = self.chunks[step]
        out, start = [], 0
        for array, size in zip(arrays, self.sizes, strict=True):
            mine = chosen[(chosen >= start) & (chosen < start + size)] - start
            if len(mine):
                out.append(array[mine])
            start += size
        return out

    def batch(self, step: int) -> list[torch.Tensor]:
        """This step's injected images, one uint8 tensor per canvas shape present."""
        return self._pick(step, self.groups)

    def captions(self, step: int) -> list[torch.Tensor]:
        """This step's injected images' caption token ids, in the order of `batch`."""
        return self._pick(step, self.texts) if self.texts else []


def _views(clean: torch.Tensor, poison: list[torch.Tensor], size: int, recipe: TrainSpec,
           gens: dict[str, torch.Generator]) -> tuple[torch.Tensor, torch.Tensor]:
    pairs = [view_pair(clean, size, recipe, gens["aug"])]
    pairs += [view_pair(p, size, recipe, gens["poison_aug"]) for p in poison]
    return torch.cat([a for a, _ in pairs]), torch.cat([b for _, b in pairs])


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
             texts: np.ndarray | None = None, poison_texts: tuple[np.ndarray, ...] = ()) -> TrainResult:
    """Train `model` in place on clean images plus `poisons`; returns timing and final loss.
    Image–text methods: `texts`, caption ids per clean image; `poison_texts`, per poison group."""
    device = pick_device(recipe.device)
    fmt = torch.channels_last if recipe.channels_last else torch.contiguous_format
    model.to(device=device, memory_format=fmt).train()  # type: ignore[call-overload]  # stubs lack memory_format
    gens = _generators(seed, device)
    data = to_device(clean, device)
    tokens, poison_tokens = _caption_tokens(model, texts, poisons, poison_texts, device)
    size, steps = clean.shape[-1], steps_per_epoch(len(data), recipe.batch_size)
    feed = _PoisonFeed(tuple(to_device(g, device) for g in poisons), steps, gens["poison_order"],
                       poison_tokens)
    fitted = model.before_training(len(data), -(-len(data) // steps))  # the largest clean batch
    opt = make_optimizer(model, recipe)
    set_lr = _scheduled(opt)
    step_fn = torch.compile(model.training_loss) if recipe.compile else model.training_loss
    amp = recipe.amp and device.type == "cuda"
    total, seen, loss_val, start = recipe.epochs * steps, 0, float("nan"), time.perf_counter()
    for epoch in range(recipe.epochs):
        batches = epoch_batches(len(data), steps, gens["order"])
        feed.new_epoch()
        model.before_epoch(epoch, recipe)
        losses = []
        for step, idx in enumerate(batches):
            set_lr(epoch * steps + step, total, recipe.warmup_epochs * steps)
            v1, v2 = _views(data[idx], feed.batch(step), size, recipe, gens)
            v1, v2 = v1.contiguous(memory_format=fmt), v2.contiguous(memory_format=fmt)
            extra = {} if tokens is None else {"text": torch.cat([tokens[idx], *feed.captions(step)])}
            losses.append(_optimise(model, step_fn, opt, (v1, v2), extra, amp))
            seen += len(v1)
        loss_val = float(torch.stack(losses).mean())
        if not math.isfinite(loss_val):
            raise FloatingPointError(f"training loss became {loss_val} at epoch {epoch + 1}")
        if progress is not None:
            progress(epoch + 1, loss_val)
    seconds = time.perf_counter() - start
    model.eval()
    return TrainResult(seconds, seen / max(seconds, 1e-9), loss_val, str(device), total, fitted)


def distill(student: EncoderMethod, teacher: EncoderMethod, images: np.ndarray, recipe: TrainSpec,
            seed: int) -> TrainResult:
    """Train `student`'s features to match the frozen `teacher`'s on augmented views of
    `images` (loss 1 - cosine similarity), with the recipe's optimiser and cosine schedule:
    the feature-distillation defense of Saha et al. (SSL-Backdoor, CVPR 2022)."""
    device = pick_device(recipe.device)
    student.to(device).train()
    teacher.to(device).eval()
    gen = torch.Generator(device=device).manual_seed(seed * 7919 + 101)
    data = to_device(images, device)
    steps = steps_per_epoch(len(data), recipe.batch_size)
    opt = make_optimizer(student, recipe)
    set_lr = _scheduled(opt)
    total, seen, loss_val, start = recipe.epochs * steps, 0, float("nan"), time.perf_counter()
    for epoch in range(recipe.epochs):
        losses = []
        for step, idx in enumerate(epoch_batches(len(data), steps, gen)):
            set_lr(epoch * steps + step, total, 0)
            x = augment(data[idx], images.shape[-1], recipe, gen)
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
    """Frozen features of uint8 images (no augmentation), float32 numpy (N, D)."""
    model.eval()
    device = next(model.parameters()).device
    out = []
    for start in range(0, len(images), batch_size):
        x = normalize(to_float(torch.tensor(images[start:start + batch_size], device=device)))
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            out.append(model.features(x).float().cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, model.feature_dim), np.float32)
