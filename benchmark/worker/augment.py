"""Batched SimCLR augmentation on tensors, on whatever device the batch lives on.

Per-sample transforms in a DataLoader cost ~26x more than these batched ops on this project's
CPU. Every random draw comes from an explicit `torch.Generator`, so a poisoned encoder and its
clean twin see bit-identical augmentations of the clean images.

The crop is torchvision's RandomResizedCrop semantics (area fraction in [min_scale, 1] of the
*input canvas*, log-uniform aspect ratio in [3/4, 4/3], up to 10 tries then the whole canvas)
done for the whole batch with one `grid_sample`; the horizontal flip is folded into the same
affine map. Colour jitter applies brightness, contrast, saturation and hue in a fixed order
[ours: SimCLR draws a random order], folded into one affine colour map per sample; hue is a
rotation of the chroma plane in YIQ space.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from pe_bench.config.spec import TrainSpec
from pe_bench.plugins.tensors import MEAN, STD, normalize, to_float

__all__ = ["MEAN", "STD", "augment", "normalize", "to_float", "view_pair"]



def _uniform(n: int, lo: float, hi: float, gen: torch.Generator, device: torch.device,
             k: int = 1) -> torch.Tensor:
    return torch.rand(n, k, generator=gen, device=device) * (hi - lo) + lo


def crop_boxes(n: int, height: int, width: int, min_scale: float, gen: torch.Generator,
               device: torch.device) -> torch.Tensor:
    """(n, 4) boxes (x0, y0, w, h) in pixels, RandomResizedCrop-distributed."""
    area = float(height * width)
    scale = _uniform(n, min_scale, 1.0, gen, device, 10)
    log_r = _uniform(n, math.log(3 / 4), math.log(4 / 3), gen, device, 10)
    w = torch.sqrt(area * scale * log_r.exp())
    h = torch.sqrt(area * scale / log_r.exp())
    ok = (w <= width) & (h <= height)
    first = torch.argmax(ok.int(), dim=1, keepdim=True)
    found = ok.any(1)
    fb_w, fb_h = _fallback_size(height, width)
    w = torch.where(found, w.gather(1, first).squeeze(1), torch.tensor(fb_w, device=device))
    h = torch.where(found, h.gather(1, first).squeeze(1), torch.tensor(fb_h, device=device))
    x0 = torch.rand(n, generator=gen, device=device) * (width - w)
    y0 = torch.rand(n, generator=gen, device=device) * (height - h)
    x0 = torch.where(found, x0, (width - w) / 2)  # the fallback is a centre crop
    y0 = torch.where(found, y0, (height - h) / 2)
    return torch.stack([x0, y0, w, h], dim=1)


def _fallback_size(height: int, width: int) -> tuple[float, float]:
    """The whole canvas, trimmed to the largest allowed aspect ratio (torchvision's rule)."""
    ratio = width / height
    if ratio > 4 / 3:
        return float(round(height * 4 / 3)), float(height)
    if ratio < 3 / 4:
        return float(width), float(round(width * 4 / 3))
    return float(width), float(height)


def resized_crop(x: torch.Tensor, boxes: torch.Tensor, size: int, flip: torch.Tensor) -> torch.Tensor:
    """Crop each image to its box, resize to size x size (bilinear), mirror where `flip`."""
    _, _, height, width = x.shape
    x0, y0, w, h = boxes.unbind(1)
    theta = torch.zeros(x.shape[0], 2, 3, device=x.device, dtype=x.dtype)
    sign = 1.0 - 2.0 * flip.to(x.dtype)
    theta[:, 0, 0] = (w / width).to(x.dtype) * sign
    theta[:, 0, 2] = ((2 * x0 + w) / width - 1).to(x.dtype)
    theta[:, 1, 1] = (h / height).to(x.dtype)
    theta[:, 1, 2] = ((2 * y0 + h) / height - 1).to(x.dtype)
    grid = F.affine_grid(theta, [x.shape[0], x.shape[1], size, size], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


GRAY = (0.299, 0.587, 0.114)  # ITU-R 601 luma, as torchvision's rgb_to_grayscale
_TO_YIQ = ((0.299, 0.587, 0.114), (0.596, -0.274, -0.322), (0.211, -0.523, 0.312))


def _gray(x: torch.Tensor) -> torch.Tensor:
    return GRAY[0] * x[:, 0:1] + GRAY[1] * x[:, 1:2] + GRAY[2] * x[:, 2:3]


def hue_matrices(angle: torch.Tensor) -> torch.Tensor:
    """(n, 3, 3) RGB maps rotating hue by `angle` radians: rotation of the IQ plane in YIQ."""
    to_yiq = torch.tensor(_TO_YIQ, dtype=angle.dtype, device=angle.device)
    rot = torch.zeros(len(angle), 3, 3, dtype=angle.dtype, device=angle.device)
    rot[:, 0, 0] = 1
    rot[:, 1, 1], rot[:, 1, 2] = angle.cos(), -angle.sin()
    rot[:, 2, 1], rot[:, 2, 2] = angle.sin(), angle.cos()
    maps: torch.Tensor = torch.linalg.inv(to_yiq) @ rot @ to_yiq
    return maps


def colour_maps(n: int, channels: int, strength: float, gen: torch.Generator,
                device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-sample (brightness, contrast, chroma map): brightness*contrast and saturation-then-hue as 3x3."""
    s = 0.8 * strength
    b, c, sat = (_uniform(n, 1 - s, 1 + s, gen, device).view(-1) for _ in range(3))
    hue = _uniform(n, -0.2 * strength, 0.2 * strength, gen, device).view(-1) * 2 * math.pi
    if channels != 3:
        return b, c, torch.eye(channels, device=device).expand(n, channels, channels)
    gray = torch.tensor(GRAY, device=device).expand(3, 3)
    eye = torch.eye(3, device=device)
    saturation = sat.view(-1, 1, 1) * eye + (1 - sat).view(-1, 1, 1) * gray
    return b, c, hue_matrices(hue) @ saturation


def color_jitter(x: torch.Tensor, strength: float, prob: float, gen: torch.Generator) -> torch.Tensor:
    """SimCLR colour distortion of strength s, w.p. `prob`: brightness, contrast, saturation
    (each 0.8*s) and hue (0.2*s) in that order (s = 0.5, the default, is ColorJitter(0.4, 0.4,
    0.4, 0.1) of the SimCLR-CIFAR and MoCo v2 recipes). The four steps are linear, so they are folded into one
    per-sample affine colour map applied with a single batched matmul and clamped once at the
    end [ours: torchvision clamps after each step; the maps agree wherever no step saturates]."""
    n, ch = x.shape[:2]
    apply = torch.rand(n, generator=gen, device=x.device) < prob
    b, c, chroma = colour_maps(n, ch, strength, gen, x.device)
    mean = (_gray(x) if ch == 3 else x).mean(dim=(1, 2, 3))  # contrast pivots on the mean luma
    matrix = (c * b).view(-1, 1, 1) * chroma
    offset = ((1 - c) * b * mean).view(-1, 1) * chroma.sum(2)
    eye = torch.eye(ch, device=x.device, dtype=x.dtype)
    matrix = torch.where(apply.view(-1, 1, 1), matrix.to(x.dtype), eye)
    offset = torch.where(apply.view(-1, 1), offset.to(x.dtype), torch.zeros_like(offset, dtype=x.dtype))
    y = torch.baddbmm(offset.unsqueeze(2), matrix, x.reshape(n, ch, -1))
    return y.view_as(x).clamp_(0, 1)


def random_grayscale(x: torch.Tensor, prob: float, gen: torch.Generator) -> torch.Tensor:
    if x.shape[1] != 3:
        return x
    apply = (torch.rand(x.shape[0], generator=gen, device=x.device) < prob).to(x.dtype).view(-1, 1, 1, 1)
    return apply * _gray(x).expand_as(x) + (1 - apply) * x


def _render(x: torch.Tensor, boxes: torch.Tensor, size: int, recipe: TrainSpec,
            gen: torch.Generator) -> torch.Tensor:
    """Crop to `boxes`, then flip, colour-jitter, grayscale and normalise (float input)."""
    flip = torch.rand(x.shape[0], generator=gen, device=x.device) < recipe.flip_prob
    x = resized_crop(x, boxes, size, flip)
    if recipe.color_jitter > 0:
        x = color_jitter(x, recipe.color_jitter, recipe.color_jitter_prob, gen)
    x = random_grayscale(x, recipe.grayscale_prob, gen)
    return normalize(x)


def augment(images: torch.Tensor, size: int, recipe: TrainSpec, gen: torch.Generator) -> torch.Tensor:
    """One augmented view of a uint8 batch, normalised, at `size` x `size`."""
    x = to_float(images)
    n, _, height, width = x.shape
    boxes = crop_boxes(n, height, width, recipe.crop_min_scale, gen, x.device)
    return _render(x, boxes, size, recipe, gen)


def localized_boxes(first: torch.Tensor, height: int, width: int, min_scale: float, margin: float,
                    gen: torch.Generator) -> torch.Tensor:
    """Second-view boxes for localized cropping (Zhang et al., CorruptEncoder, CVPR 2024, as
    the authors' code defines it: github.com/jzhang538/CorruptEncoder,
    train_moco/moco/loader_lc.py). The first view's box is grown by `margin` times its width
    and height on each side and clipped to the canvas; the second box's area is uniform
    between the canvas's minimum crop area (`min_scale` x canvas) and the grown box's area,
    its aspect ratio log-uniform in [3/4, 4/3], up to 10 tries to fit inside the grown box,
    else the first box's size; its position is uniform inside the grown box. [ours: boxes
    are continuous, not whole pixels; the first view is always the same crop function's.]"""
    n, device = len(first), first.device
    x0, y0, w, h = first.unbind(1)
    rx0, ry0 = (x0 - margin * w).clamp(min=0), (y0 - margin * h).clamp(min=0)
    rw = (x0 + w * (1 + margin)).clamp(max=width) - rx0
    rh = (y0 + h * (1 + margin)).clamp(max=height) - ry0
    low = min_scale * height * width
    span = (rw * rh - low).clamp(min=0).unsqueeze(1)
    area = low + torch.rand(n, 10, generator=gen, device=device) * span
    log_r = _uniform(n, math.log(3 / 4), math.log(4 / 3), gen, device, 10)
    w2, h2 = torch.sqrt(area * log_r.exp()), torch.sqrt(area / log_r.exp())
    ok = (w2 <= rw.unsqueeze(1)) & (h2 <= rh.unsqueeze(1))
    pick, found = torch.argmax(ok.int(), dim=1, keepdim=True), ok.any(1)
    w2 = torch.where(found, w2.gather(1, pick).squeeze(1), w)
    h2 = torch.where(found, h2.gather(1, pick).squeeze(1), h)
    x2 = rx0 + torch.rand(n, generator=gen, device=device) * (rw - w2)
    y2 = ry0 + torch.rand(n, generator=gen, device=device) * (rh - h2)
    return torch.stack([x2, y2, w2, h2], dim=1)


def view_pair(images: torch.Tensor, size: int, recipe: TrainSpec, gen: torch.Generator
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """The two augmented views of a batch: independent crops, or the second localized in the
    first (`recipe.crop_mode`); localized pairs are swapped per image with probability 1/2,
    as CorruptEncoder does, so neither view of an asymmetric loss (MoCo) is always the wider."""
    if recipe.crop_mode == "independent":
        return augment(images, size, recipe, gen), augment(images, size, recipe, gen)
    x = to_float(images)
    n, _, height, width = x.shape
    first = crop_boxes(n, height, width, recipe.crop_min_scale, gen, x.device)
    v1 = _render(x, first, size, recipe, gen)
    second = localized_boxes(first, height, width, recipe.crop_min_scale, recipe.crop_margin, gen)
    v2 = _render(x, second, size, recipe, gen)
    swap = (torch.rand(n, generator=gen, device=x.device) < 0.5).view(-1, 1, 1, 1)
    return torch.where(swap, v2, v1), torch.where(swap, v1, v2)
