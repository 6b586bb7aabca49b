"""Batched SimCLR augmentation on tensors, on whatever device the batch lives on.

Per-sample transforms in a DataLoader cost ~26x more than these batched ops on this project's
CPU. Every random draw comes from an explicit `torch.Generator`, so a poisoned encoder and its
clean twin see bit-identical augmentations of the clean images.

The crop is torchvision's RandomResizedCrop semantics (area fraction in [min_scale, 1] of the
*input canvas*, log-uniform aspect ratio in [3/4, 4/3], up to 10 tries then the whole canvas)
done for the whole batch with one `grid_sample`; the horizontal flip is folded into the same
affine map. Colour jitter applies brightness, contrast, saturation and hue in a fixed order
[ours: SimCLR draws a random order]; hue is a rotation of the chroma plane in YIQ space.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from pe_bench.spec import TrainSpec

MEAN, STD = 0.5, 0.25  # fixed input normalisation; the networks' BatchNorm does the rest


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


def _gray(x: torch.Tensor) -> torch.Tensor:
    return (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3])


def _hue_rotate(x: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """Rotate hue by `angle` (radians, per sample) in YIQ space."""
    to_yiq = x.new_tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
    yiq = torch.einsum("ij,bjhw->bihw", to_yiq, x)
    cos, sin = angle.cos().view(-1, 1, 1), angle.sin().view(-1, 1, 1)
    i, q = yiq[:, 1], yiq[:, 2]
    yiq = torch.stack([yiq[:, 0], cos * i - sin * q, sin * i + cos * q], dim=1)
    return torch.einsum("ij,bjhw->bihw", torch.linalg.inv(to_yiq), yiq)


def color_jitter(x: torch.Tensor, strength: float, prob: float, gen: torch.Generator) -> torch.Tensor:
    """SimCLR colour distortion: brightness/contrast/saturation 0.8*s, hue 0.2*s, w.p. `prob`."""
    n, dev = x.shape[0], x.device
    apply = (torch.rand(n, generator=gen, device=dev) < prob).to(x.dtype).view(-1, 1, 1, 1)
    s = 0.8 * strength
    b, c, sat = (_uniform(n, 1 - s, 1 + s, gen, dev).view(-1, 1, 1, 1).to(x.dtype) for _ in range(3))
    hue = _uniform(n, -0.2 * strength, 0.2 * strength, gen, dev).view(-1).to(x.dtype) * 2 * math.pi
    y = (x * b).clamp(0, 1)
    mean = _gray(y).mean(dim=(1, 2, 3), keepdim=True) if x.shape[1] == 3 else y.mean((1, 2, 3), keepdim=True)
    y = ((y - mean) * c + mean).clamp(0, 1)
    if x.shape[1] == 3:
        g = _gray(y)
        y = ((y - g) * sat + g).clamp(0, 1)
        y = _hue_rotate(y, hue).clamp(0, 1)
    return apply * y + (1 - apply) * x


def random_grayscale(x: torch.Tensor, prob: float, gen: torch.Generator) -> torch.Tensor:
    if x.shape[1] != 3:
        return x
    apply = (torch.rand(x.shape[0], generator=gen, device=x.device) < prob).to(x.dtype).view(-1, 1, 1, 1)
    return apply * _gray(x).expand_as(x) + (1 - apply) * x


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 (B, C, H, W) -> float in [0, 1]."""
    return images.float().div_(255.0)


def normalize(x: torch.Tensor) -> torch.Tensor:
    return (x - MEAN) / STD


def augment(images: torch.Tensor, size: int, recipe: TrainSpec, gen: torch.Generator) -> torch.Tensor:
    """One augmented view of a uint8 batch, normalised, at `size` x `size`."""
    x = to_float(images)
    n, _, height, width = x.shape
    boxes = crop_boxes(n, height, width, recipe.crop_min_scale, gen, x.device)
    flip = torch.rand(n, generator=gen, device=x.device) < recipe.flip_prob
    x = resized_crop(x, boxes, size, flip)
    if recipe.color_jitter > 0:
        x = color_jitter(x, recipe.color_jitter, recipe.color_jitter_prob, gen)
    x = random_grayscale(x, recipe.grayscale_prob, gen)
    return normalize(x)
