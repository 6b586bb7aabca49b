"""Batched augmentation: crop geometry, flips, colour ops and determinism."""

from __future__ import annotations

import math

import torch

from pe_bench.worker.augment import augment, color_jitter, crop_boxes, random_grayscale, resized_crop
from pe_bench.config.spec import TrainSpec


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_crop_boxes_follow_random_resized_crop() -> None:
    boxes = crop_boxes(4000, 32, 64, 0.08, _gen())
    x0, y0, w, h = boxes.unbind(1)
    assert (x0 >= 0).all() and (y0 >= 0).all()
    assert (x0 + w <= 64 + 1e-4).all() and (y0 + h <= 32 + 1e-4).all()
    frac = w * h / (32 * 64)
    assert frac.min() >= 0.08 - 1e-4 and frac.max() <= 1 + 1e-4
    ratio = w / h
    assert ratio.min() >= 3 / 4 - 1e-4 and ratio.max() <= 4 / 3 + 0.02  # fallback: whole pixels



def test_crop_area_distribution_matches_torchvision_on_a_two_to_one_canvas() -> None:
    """The reference is torchvision's own RandomResizedCrop.get_params (rejection sampling)."""
    from torchvision.transforms import RandomResizedCrop

    torch.manual_seed(0)
    canvas = torch.zeros(3, 32, 64)
    ref = [RandomResizedCrop.get_params(canvas, [0.08, 1.0], [3 / 4, 4 / 3]) for _ in range(4000)]
    ref_frac = torch.tensor([h * w / (32 * 64) for _, _, h, w in ref])
    boxes = crop_boxes(4000, 32, 64, 0.08, _gen(1))
    frac = boxes[:, 2] * boxes[:, 3] / (32 * 64)
    assert abs(float(frac.mean() - ref_frac.mean())) < 0.02
    assert abs(float(frac.median() - ref_frac.median())) < 0.03


def test_full_box_is_identity_and_flip_mirrors() -> None:
    x = torch.rand(2, 3, 8, 8)
    full = torch.tensor([[0.0, 0.0, 8.0, 8.0]] * 2)
    same = resized_crop(x, full, 8, torch.tensor([False, False]))
    assert torch.allclose(same, x, atol=1e-5)
    mirrored = resized_crop(x, full, 8, torch.tensor([True, False]))
    assert torch.allclose(mirrored[0], x[0].flip(-1), atol=1e-5)
    assert torch.allclose(mirrored[1], x[1], atol=1e-5)


def test_crop_of_one_half_of_a_canvas_sees_only_that_half() -> None:
    canvas = torch.cat([torch.ones(1, 3, 8, 8), torch.zeros(1, 3, 8, 8)], dim=3)  # left white
    left = resized_crop(canvas, torch.tensor([[0.0, 0.0, 8.0, 8.0]]), 8, torch.tensor([False]))
    right = resized_crop(canvas, torch.tensor([[8.0, 0.0, 8.0, 8.0]]), 8, torch.tensor([False]))
    assert torch.allclose(left, torch.ones_like(left)) and torch.allclose(right, torch.zeros_like(right))


def test_colour_ops() -> None:
    x = torch.rand(16, 3, 8, 8)
    assert torch.equal(color_jitter(x, 0.4, 0.0, _gen()), x)
    jittered = color_jitter(x, 0.4, 1.0, _gen())
    assert jittered.shape == x.shape and 0 <= float(jittered.min()) and float(jittered.max()) <= 1
    assert not torch.allclose(jittered, x)
    gray = random_grayscale(x, 1.0, _gen())
    assert torch.allclose(gray[:, 0], gray[:, 1]) and torch.allclose(gray[:, 1], gray[:, 2])
    one_channel = torch.rand(4, 1, 8, 8)
    assert random_grayscale(one_channel, 1.0, _gen()) is one_channel
    assert color_jitter(one_channel, 0.4, 1.0, _gen()).shape == one_channel.shape


def test_hue_rotation_by_full_turn_is_identity_and_keeps_gray_gray() -> None:
    from pe_bench.worker.augment import hue_matrices

    full = hue_matrices(torch.full((2,), 2 * math.pi))
    assert torch.allclose(full, torch.eye(3).expand(2, 3, 3), atol=1e-5)
    gray = torch.full((3,), 0.5)
    assert torch.allclose(hue_matrices(torch.tensor([1.0]))[0] @ gray, gray, atol=1e-5)


def _sequential_jitter(x: torch.Tensor, b: float, c: float, s: float, hue: float) -> torch.Tensor:
    """Slow reference: the four steps one after another, as torchvision defines them."""
    from pe_bench.worker.augment import _gray, hue_matrices

    y = x * b
    mean = _gray(y).mean()
    y = (y - mean) * c + mean
    g = _gray(y)
    y = (y - g) * s + g
    return torch.einsum("ij,jhw->ihw", hue_matrices(torch.tensor([hue]))[0], y[0])[None]


def test_fused_colour_map_matches_sequential_steps(monkeypatch) -> None:
    """Away from saturation (mid-grey inputs, small factors) fused == sequential."""
    import pe_bench.worker.augment as aug

    x = 0.45 + 0.1 * torch.rand(1, 3, 6, 6)
    draws = iter([torch.tensor([[1.1]]), torch.tensor([[0.9]]), torch.tensor([[1.2]]),
                  torch.tensor([[0.05 / (2 * math.pi)]])])
    monkeypatch.setattr(aug, "_uniform", lambda *a, **k: next(draws))
    got = aug.color_jitter(x, 0.4, 1.0, _gen())
    want = _sequential_jitter(x, 1.1, 0.9, 1.2, 0.05)
    assert torch.allclose(got, want, atol=1e-5)


def test_augment_is_deterministic_under_a_generator() -> None:
    images = torch.randint(0, 256, (8, 3, 8, 16), dtype=torch.uint8)
    a = augment(images, 8, TrainSpec(), _gen(5))
    b = augment(images, 8, TrainSpec(), _gen(5))
    c = augment(images, 8, TrainSpec(), _gen(6))
    assert a.shape == (8, 3, 8, 8) and torch.equal(a, b) and not torch.equal(a, c)


def test_default_colour_jitter_is_the_simclr_cifar_and_moco_v2_recipe() -> None:
    """The default strength gives ColorJitter(0.4, 0.4, 0.4, 0.1) (Chen et al. 2020 appendix A
    with s = 0.5; MoCo v2): brightness and contrast factors span [0.6, 1.4]."""
    from pe_bench.worker.augment import colour_maps
    from pe_bench.config.spec import TrainSpec

    b, c, _ = colour_maps(20_000, 1, TrainSpec().color_jitter, _gen())
    for factor in (b, c):
        assert 0.6 <= float(factor.min()) < 0.61 and 1.39 < float(factor.max()) <= 1.4


def test_localized_second_view_follows_corrupt_encoder() -> None:
    """CorruptEncoder's localized crop: the second box lies in the first grown by the margin
    (0.2 by default), and its area is drawn between the canvas's minimum crop area and the
    grown box's area (not a fraction of the grown box, which would allow far smaller crops)."""
    from pe_bench.worker.augment import localized_boxes

    margin, n = TrainSpec().crop_margin, 4000
    assert margin == 0.2
    first = torch.tensor([[10.0, 10.0, 10.0, 10.0]]).repeat(n, 1)  # grown: (8, 8) to (22, 22)
    x, y, w, h = localized_boxes(first, 32, 32, 0.08, margin, _gen()).unbind(1)
    assert (x >= 8 - 1e-4).all() and (y >= 8 - 1e-4).all()
    assert (x + w <= 22 + 1e-4).all() and (y + h <= 22 + 1e-4).all()
    area, low = w * h, 0.08 * 32 * 32
    assert area.min() >= low - 1e-3 and area.max() <= 14 * 14 + 1e-3
    assert area.min() < low * 1.1 and ((x + w > 20.5) | (x < 9.5)).float().mean() > 0.3
    ratio = w / h
    assert ratio.min() >= 3 / 4 - 1e-4 and ratio.max() <= 4 / 3 + 1e-4


def test_localized_box_that_cannot_fit_falls_back_to_the_first_views_size() -> None:
    from pe_bench.worker.augment import localized_boxes

    first = torch.tensor([[0.0, 0.0, 32.0, 8.0]])  # 4:1, at the canvas edge: no 3/4..4/3 box fits
    x, y, w, h = localized_boxes(first, 32, 32, 0.25, 0.0, _gen()).unbind(1)
    assert (float(w), float(h)) == (32.0, 8.0) and (float(x), float(y)) == (0.0, 0.0)


def test_localized_views_come_in_either_order(monkeypatch) -> None:
    """As in CorruptEncoder, the localized view is the first view for about half the images,
    so an asymmetric loss (MoCo's query / key) does not always get the wider crop first."""
    import pe_bench.worker.augment as aug

    canvas = torch.zeros(200, 1, 8, 8, dtype=torch.uint8)
    canvas[..., 4:] = 255  # left half black, right half white
    whole, left = (torch.tensor([[0.0, 0.0, w, 8.0]]).repeat(200, 1) for w in (8.0, 4.0))
    monkeypatch.setattr(aug, "crop_boxes", lambda *args: whole)
    monkeypatch.setattr(aug, "localized_boxes", lambda *args: left)
    recipe = TrainSpec(crop_mode="localized", flip_prob=0, color_jitter=0, grayscale_prob=0)
    v1, v2 = aug.view_pair(canvas, 8, recipe, _gen())
    left_first = v1.mean(dim=(1, 2, 3)) < v2.mean(dim=(1, 2, 3))  # the black-only view came first
    assert 0.35 < left_first.float().mean() < 0.65
