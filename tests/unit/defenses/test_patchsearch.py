"""`patchsearch` by effect: poisons carrying a planted, salient patch are ranked first, far
above a shuffled control; without the patch the same images are not singled out."""

from __future__ import annotations

import numpy as np

from pe_bench.attacks.base import PoisonSet
from pe_bench.defenses.base import PretrainData
from pe_bench.store.detection import auroc
from pe_bench.plugins.registry import DEFENSES

SIDE, PATCH = 16, 4
TRIGGER = np.indices((PATCH, PATCH)).sum(0) % 2 * 255  # a checkerboard, the same in every channel


def detector(images: np.ndarray) -> np.ndarray:
    """Per image, the best share of trigger pixels matched by any PATCH x PATCH window."""
    x = np.asarray(images, dtype=np.int64)
    h, w = x.shape[-2:]
    best = np.zeros(len(x))
    for i in range(h - PATCH + 1):
        for j in range(w - PATCH + 1):
            diff = np.abs(x[:, :, i:i + PATCH, j:j + PATCH] - TRIGGER).max(1)
            best = np.maximum(best, (diff < 16).mean((1, 2)))
    return best


def embed(images: np.ndarray) -> np.ndarray:
    """A hand-made encoder that learned the backdoor: colour means plus a strong trigger unit."""
    x = np.asarray(images, dtype=np.float64)
    return np.concatenate([x.mean((2, 3)) / 255.0, 3.0 * detector(images)[:, None]], axis=1)


def dataset(stamp: bool, seed: int = 0) -> PretrainData:
    """Three colour classes of 40 images; 12 more of class 0, stamped with the trigger at even
    positions when `stamp` (the poisons), plain otherwise (the control)."""
    rng = np.random.default_rng(seed)
    protos = np.array([[200, 60, 60], [60, 200, 60], [60, 60, 200]])[:, :, None, None]
    noise = rng.integers(-30, 31, (132, 3, SIDE, SIDE))
    images = np.clip(np.repeat(protos, [52, 40, 40], 0) + noise, 0, 255).astype(np.uint8)
    poisons = images[:12].copy()
    if stamp:
        for n, (i, j) in enumerate(rng.integers(0, (SIDE - PATCH) // 2 + 1, (12, 2)) * 2):
            poisons[n, :, i:i + PATCH, j:j + PATCH] = TRIGGER
    return PretrainData(images[12:], PoisonSet((poisons,)))


def scored(data: PretrainData) -> tuple[float, float]:
    """(AUROC over the injected images, mean AUROC of the same scores shuffled)."""
    defense = DEFENSES.get("patchsearch").from_dict(
        {"clusters": 4, "test_images": 40, "window": PATCH, "stride": 2, "rounds": 3})
    _, removed, scores = defense.filter(data, 0, embed)
    assert scores is not None and len(removed) == round(0.1 * data.size)
    positive = np.arange(data.size) >= len(data.clean)
    shuffled = [auroc(np.random.default_rng(s).permutation(scores), positive) for s in range(20)]
    return float(auroc(scores, positive)), float(np.mean(shuffled))


def test_patchsearch_ranks_patch_poisons_first() -> None:
    got, chance = scored(dataset(stamp=True))
    assert got > 0.9 and got > chance + 0.3


def test_patchsearch_does_not_single_out_unstamped_images() -> None:
    """The same 12 images without the trigger: nothing pulls other images into their cluster."""
    got, _ = scored(dataset(stamp=False))
    assert got < scored(dataset(stamp=True))[0] - 0.2
