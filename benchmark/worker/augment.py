"""Batched SimCLR augmentation on tensors, in two halves: drawing a view's parameters, then
rendering it on whatever device the batch lives on.

Per-sample transforms in a DataLoader cost ~26x more than these batched ops on this project's
CPU. Every random draw comes from an explicit `torch.Generator`, so a poisoned encoder and its
clean twin see bit-identical augmentations of the clean images. The draws are made on the
generator's device into one packed row of parameters per image (`draw_pair`, `VIEW_COLUMNS`);
the training loop's generators are CPU ones, so the parameters (crop boxes, flips, colour maps,
grayscale choices) are the same numbers whichever device trains, and they reach the device in
the one copy an epoch makes (`pe_bench.worker.plan`). Rendering (`render_pair`) then reads
nothing back and builds no tensor from host data: no host-device copy or sync per step.

The crop is torchvision's RandomResizedCrop semantics (area fraction in [min_scale, 1] of the
*input canvas*, log-uniform aspect ratio in [3/4, 4/3], up to 10 tries then the whole canvas)
done for the whole batch with one `grid_sample`; the horizontal flip is folded into the same
affine map. Colour jitter applies brightness, contrast, saturation and hue in a fixed order
[ours: SimCLR draws a random order], folded into one affine colour map per sample; hue is a
rotation of the chroma plane in YIQ space.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

from pe_bench.config.spec import TrainSpec
from pe_bench.plugins.tensors import MEAN, STD, normalize, to_float

__all__ = ["MEAN", "STD", "augment", "draw_pair", "normalize", "render_pair", "to_float", "view_pair"]


def _uniform(n: int, lo: float, hi: float, gen: torch.Generator, k: int = 1) -> torch.Tensor:
    return torch.rand(n, k, generator=gen, device=gen.device) * (hi - lo) + lo


def _coin(n: int, prob: float, gen: torch.Generator) -> torch.Tensor:
    return torch.rand(n, generator=gen, device=gen.device) < prob


def crop_boxes(n: int, height: int, width: int, min_scale: float, gen: torch.Generator) -> torch.Tensor:
    """(n, 4) boxes (x0, y0, w, h) in pixels, RandomResizedCrop-distributed, on `gen`'s device."""
    area = float(height * width)
    scale = _uniform(n, min_scale, 1.0, gen, 10)
    log_r = _uniform(n, math.log(3 / 4), math.log(4 / 3), gen, 10)
    w = torch.sqrt(area * scale * log_r.exp())
    h = torch.sqrt(area * scale / log_r.exp())
    ok = (w <= width) & (h <= height)
    first = torch.argmax(ok.int(), dim=1, keepdim=True)
    found = ok.any(1)
    fb_w, fb_h = _fallback_size(height, width)
    w = torch.where(found, w.gather(1, first).squeeze(1), fb_w)
    h = torch.where(found, h.gather(1, first).squeeze(1), fb_h)
    x0 = torch.rand(n, generator=gen, device=gen.device) * (width - w)
    y0 = torch.rand(n, generator=gen, device=gen.device) * (height - h)
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


@functools.cache
def _constants(dtype: torch.dtype, device: torch.device) -> dict[str, torch.Tensor]:
    """The colour maps' constant matrices, built once per dtype and device (they were built,
    and the YIQ matrix inverted, on every call): RGB->YIQ, its inverse, the luma rows."""
    to_yiq = torch.tensor(_TO_YIQ, dtype=dtype, device=device)
    return {"to_yiq": to_yiq, "from_yiq": torch.linalg.inv(to_yiq),
            "gray": torch.tensor(GRAY, dtype=dtype, device=device).expand(3, 3)}


def _gray(x: torch.Tensor) -> torch.Tensor:
    return GRAY[0] * x[:, 0:1] + GRAY[1] * x[:, 1:2] + GRAY[2] * x[:, 2:3]


def hue_matrices(angle: torch.Tensor) -> torch.Tensor:
    """(n, 3, 3) RGB maps rotating hue by `angle` radians: rotation of the IQ plane in YIQ."""
    const = _constants(angle.dtype, angle.device)
    rot = torch.zeros(len(angle), 3, 3, dtype=angle.dtype, device=angle.device)
    rot[:, 0, 0] = 1
    rot[:, 1, 1], rot[:, 1, 2] = angle.cos(), -angle.sin()
    rot[:, 2, 1], rot[:, 2, 2] = angle.sin(), angle.cos()
    maps: torch.Tensor = const["from_yiq"] @ rot @ const["to_yiq"]
    return maps


def colour_maps(n: int, channels: int, strength: float, gen: torch.Generator
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-sample (brightness, contrast, chroma map): brightness*contrast and saturation-then-hue
    as 3x3, drawn on `gen`'s device."""
    s, device = 0.8 * strength, gen.device
    b, c, sat = (_uniform(n, 1 - s, 1 + s, gen).view(-1) for _ in range(3))
    hue = _uniform(n, -0.2 * strength, 0.2 * strength, gen).view(-1) * 2 * math.pi
    if channels != 3:
        return b, c, torch.eye(channels, device=device).expand(n, channels, channels)
    eye = torch.eye(3, device=device)
    saturation = sat.view(-1, 1, 1) * eye + (1 - sat).view(-1, 1, 1) * _constants(torch.float32, device)["gray"]
    return b, c, hue_matrices(hue) @ saturation


def apply_jitter(x: torch.Tensor, apply: torch.Tensor, b: torch.Tensor, c: torch.Tensor,
                 chroma: torch.Tensor) -> torch.Tensor:
    """SimCLR colour distortion with drawn factors where `apply`: brightness, contrast, saturation
    and hue in that order. The four steps are linear, so they are folded into one per-sample
    affine colour map applied with a single batched matmul and clamped once at the end [ours:
    torchvision clamps after each step; the maps agree wherever no step saturates]."""
    n, ch = x.shape[:2]
    mean = (_gray(x) if ch == 3 else x).mean(dim=(1, 2, 3))  # contrast pivots on the mean luma
    matrix = (c * b).view(-1, 1, 1) * chroma
    offset = ((1 - c) * b * mean).view(-1, 1) * chroma.sum(2)
    eye = torch.eye(ch, device=x.device, dtype=x.dtype)
    matrix = torch.where(apply.view(-1, 1, 1), matrix.to(x.dtype), eye)
    offset = torch.where(apply.view(-1, 1), offset.to(x.dtype), torch.zeros_like(offset, dtype=x.dtype))
    y = torch.baddbmm(offset.unsqueeze(2), matrix, x.reshape(n, ch, -1))
    return y.view_as(x).clamp_(0, 1)


def color_jitter(x: torch.Tensor, strength: float, prob: float, gen: torch.Generator) -> torch.Tensor:
    """SimCLR colour distortion of strength s, w.p. `prob`: brightness, contrast, saturation
    (each 0.8*s) and hue (0.2*s) (s = 0.5, the default, is ColorJitter(0.4, 0.4, 0.4, 0.1) of
    the SimCLR-CIFAR and MoCo v2 recipes), drawn on `gen`'s device; see `apply_jitter`."""
    n, ch = x.shape[:2]
    apply = _coin(n, prob, gen)
    b, c, chroma = colour_maps(n, ch, strength, gen)
    return apply_jitter(x, *(t.to(x.device) for t in (apply, b, c, chroma)))


def apply_grayscale(x: torch.Tensor, apply: torch.Tensor) -> torch.Tensor:
    """Luma in every channel where `apply` (a 0/1 float per image); 3-channel images only."""
    apply = apply.to(x.dtype).view(-1, 1, 1, 1)
    return apply * _gray(x).expand_as(x) + (1 - apply) * x


def random_grayscale(x: torch.Tensor, prob: float, gen: torch.Generator) -> torch.Tensor:
    if x.shape[1] != 3:
        return x
    return apply_grayscale(x, _coin(x.shape[0], prob, gen).to(x.device))


def view_columns(channels: int) -> int:
    """Columns of one view's packed parameters: box x0, y0, w, h; flip; jitter applied;
    brightness; contrast; chroma map (C x C, row-major); grayscale applied."""
    return 9 + channels * channels


def draw_view(boxes: torch.Tensor, channels: int, recipe: TrainSpec, gen: torch.Generator) -> torch.Tensor:
    """(n, view_columns) parameters of one view cropped to `boxes`: its flip, colour-jitter and
    grayscale draws, in this order (the order of the draws decides every trained encoder's
    numbers: keep it). Draws that `recipe` switches off are not made (placeholders)."""
    n = len(boxes)
    flip = _coin(n, recipe.flip_prob, gen)
    if recipe.color_jitter > 0:
        apply = _coin(n, recipe.color_jitter_prob, gen)
        b, c, chroma = colour_maps(n, channels, recipe.color_jitter, gen)
    else:
        apply, b, c = flip.new_zeros(n), boxes.new_ones(n), boxes.new_ones(n)
        chroma = torch.eye(channels, device=boxes.device).expand(n, channels, channels)
    gray = _coin(n, recipe.grayscale_prob, gen) if channels == 3 else flip.new_zeros(n)
    rest = (t.to(boxes.dtype).reshape(n, -1) for t in (flip, apply, b, c, chroma, gray))
    return torch.cat([boxes, *rest], dim=1)


def render(x: torch.Tensor, params: torch.Tensor, size: int, recipe: TrainSpec) -> torch.Tensor:
    """One view of float images `x` from its packed parameters (on `x`'s device): crop, flip,
    colour-jitter, grayscale, normalise."""
    n, ch = x.shape[:2]
    k = 8 + ch * ch
    x = resized_crop(x, params[:, :4].contiguous(), size, params[:, 4] > 0.5)
    if recipe.color_jitter > 0:
        x = apply_jitter(x, params[:, 5] > 0.5, params[:, 6].contiguous(), params[:, 7].contiguous(),
                         params[:, 8:k].reshape(n, ch, ch).contiguous())
    if ch == 3:
        x = apply_grayscale(x, params[:, k])
    return normalize(x)


def augment(images: torch.Tensor, size: int, recipe: TrainSpec, gen: torch.Generator) -> torch.Tensor:
    """One augmented view of a uint8 batch, normalised, at `size` x `size` (drawn on `gen`'s
    device, rendered on the batch's)."""
    x = to_float(images)
    n, ch, height, width = x.shape
    boxes = crop_boxes(n, height, width, recipe.crop_min_scale, gen)
    return render(x, draw_view(boxes, ch, recipe, gen).to(x.device), size, recipe)


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
    n, device = len(first), gen.device
    x0, y0, w, h = first.unbind(1)
    rx0, ry0 = (x0 - margin * w).clamp(min=0), (y0 - margin * h).clamp(min=0)
    rw = (x0 + w * (1 + margin)).clamp(max=width) - rx0
    rh = (y0 + h * (1 + margin)).clamp(max=height) - ry0
    low = min_scale * height * width
    span = (rw * rh - low).clamp(min=0).unsqueeze(1)
    area = low + torch.rand(n, 10, generator=gen, device=device) * span
    log_r = _uniform(n, math.log(3 / 4), math.log(4 / 3), gen, 10)
    w2, h2 = torch.sqrt(area * log_r.exp()), torch.sqrt(area / log_r.exp())
    ok = (w2 <= rw.unsqueeze(1)) & (h2 <= rh.unsqueeze(1))
    pick, found = torch.argmax(ok.int(), dim=1, keepdim=True), ok.any(1)
    w2 = torch.where(found, w2.gather(1, pick).squeeze(1), w)
    h2 = torch.where(found, h2.gather(1, pick).squeeze(1), h)
    x2 = rx0 + torch.rand(n, generator=gen, device=device) * (rw - w2)
    y2 = ry0 + torch.rand(n, generator=gen, device=device) * (rh - h2)
    return torch.stack([x2, y2, w2, h2], dim=1)


def draw_pair(n: int, channels: int, height: int, width: int, recipe: TrainSpec,
              gen: torch.Generator) -> torch.Tensor:
    """(n, 2 view_columns + 1) parameters of a batch's two views, on `gen`'s device: the first
    view's crop and draws, then the second's (an independent crop, or one localized in the
    first, `recipe.crop_mode`), then for localized pairs whether to swap the views."""
    first = crop_boxes(n, height, width, recipe.crop_min_scale, gen)
    v1 = draw_view(first, channels, recipe, gen)
    if recipe.crop_mode == "independent":
        v2 = draw_view(crop_boxes(n, height, width, recipe.crop_min_scale, gen), channels, recipe, gen)
        return torch.cat([v1, v2, torch.zeros(n, 1, device=gen.device)], dim=1)
    second = localized_boxes(first, height, width, recipe.crop_min_scale, recipe.crop_margin, gen)
    v2 = draw_view(second, channels, recipe, gen)
    return torch.cat([v1, v2, _coin(n, 0.5, gen).to(v1.dtype).view(n, 1)], dim=1)


def render_pair(x: torch.Tensor, params: torch.Tensor, size: int, recipe: TrainSpec
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """The two views of float images `x` from `draw_pair`'s parameters (on `x`'s device).
    Localized pairs are swapped per image with probability 1/2, as CorruptEncoder does, so
    neither view of an asymmetric loss (MoCo) is always the wider."""
    k = view_columns(x.shape[1])
    v1, v2 = render(x, params[:, :k], size, recipe), render(x, params[:, k:2 * k], size, recipe)
    if recipe.crop_mode == "independent":
        return v1, v2
    swap = (params[:, -1] > 0.5).view(-1, 1, 1, 1)
    return torch.where(swap, v2, v1), torch.where(swap, v1, v2)


def view_pair(images: torch.Tensor, size: int, recipe: TrainSpec, gen: torch.Generator
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """The two augmented views of a uint8 batch (drawn on `gen`'s device, rendered on the
    batch's): `draw_pair`, then `render_pair`."""
    x = to_float(images)
    n, ch, height, width = x.shape
    return render_pair(x, draw_pair(n, ch, height, width, recipe, gen).to(x.device), size, recipe)
