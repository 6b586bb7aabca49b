"""`dedup` (duplicate-region filter) on synthetic data: textured and smooth clean images,
PoisonedEncoder-style canvases (one target beside different references) and plain copies."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from pe_bench.attacks.base import PoisonSet
from pe_bench.attacks.poisoned_encoder import concatenate, shrink
from pe_bench.worker.defend import filter_scores
from pe_bench.defenses.base import PretrainData
from pe_bench.plugins.registry import DEFENSES

SIZE = 32


def texture(n: int, rng: np.random.Generator) -> np.ndarray:
    """Random-texture RGB images, uint8 (n, 3, SIZE, SIZE)."""
    return rng.integers(0, 256, (n, 3, SIZE, SIZE), dtype=np.uint8)


def smooth(n: int, rng: np.random.Generator) -> np.ndarray:
    """Smooth images: a random 4x4 layout blown up 8x, plus a vertical ramp and faint noise."""
    coarse = rng.integers(0, 200, (n, 3, 4, 4)).repeat(8, 2).repeat(8, 3)
    ramp = np.linspace(0, 50, SIZE)[None, None, :, None]
    return np.clip(coarse + ramp + rng.normal(0, 3, coarse.shape), 0, 255).astype(np.uint8)


def dedup(**params: Any) -> Any:
    return DEFENSES.get("dedup").from_dict(params)


def poisons_of(target: np.ndarray, refs: np.ndarray, layouts: list[str]) -> np.ndarray:
    return np.stack([concatenate(target, r, layouts[k % len(layouts)]) for k, r in enumerate(refs)])


@pytest.fixture(scope="module")
def attacked() -> PretrainData:
    """300 clean images; 3 targets x 8 side-by-side poisons, 2 x 6 stacked ones, 7 copies."""
    rng = np.random.default_rng(0)
    clean = np.concatenate([texture(150, rng), smooth(150, rng)])
    targets, refs = texture(6, rng), np.concatenate([texture(18, rng), smooth(18, rng)])
    wide = np.concatenate([poisons_of(targets[t], refs[8 * t:8 * t + 8], ["left", "right"])
                           for t in range(3)])
    tall = np.concatenate([poisons_of(targets[3 + t], refs[24 + 6 * t:30 + 6 * t], ["top", "bottom"])
                           for t in range(2)])
    copies = np.repeat(targets[5:], 7, axis=0)
    return PretrainData(clean, PoisonSet((copies, tall, wide)))


def test_registered_with_validated_params() -> None:
    assert "dedup" in DEFENSES.names()
    assert dedup().implements() == ("score",)
    with pytest.raises(ValidationError):
        dedup(regions=["middle"])
    with pytest.raises(ValidationError):
        dedup(threshold=3)


def test_removes_every_poison_and_no_clean_image(attacked: PretrainData) -> None:
    kept, removed, _ = dedup().filter(attacked, 0)
    scores = filter_scores(attacked, removed)
    assert scores["poison_recall"] == 1.0 and scores["clean_removed"] == 0
    assert removed.dtype == np.int64 and np.array_equal(removed, np.unique(removed))
    assert removed.min() >= 0 and removed.max() < attacked.size
    expected = attacked.without(removed)
    assert kept.identity() == expected.identity() and kept.size == attacked.size - len(removed)
    assert all(np.array_equal(a, b) for a, b in zip(kept.images(), expected.images(), strict=True))


def test_deterministic_and_seed_free(attacked: PretrainData) -> None:
    first = dedup().filter(attacked, 0)[1]
    assert np.array_equal(first, dedup().filter(attacked, 0)[1])
    assert np.array_equal(first, dedup().filter(attacked, 123)[1])


def test_clean_set_alone_loses_nothing(attacked: PretrainData) -> None:
    clean_only = PretrainData(attacked.clean, PoisonSet())
    kept, removed, _ = dedup(max_distance=4).filter(clean_only, 0)
    assert len(removed) == 0 and kept.size == clean_only.size


def test_a_region_must_recur_in_more_than_min_count_other_images() -> None:
    rng = np.random.default_rng(1)
    clean, target = texture(50, rng), texture(1, rng)
    for copies, caught in ((5, False), (6, True)):  # 5 copies: each has 4 others; 6: 5 others
        data = PretrainData(clean, PoisonSet((np.repeat(target, copies, axis=0),)))
        removed = dedup(min_count=5).filter(data, 0)[1]
        assert filter_scores(data, removed)["poison_recall"] == (1.0 if caught else 0.0)
        assert filter_scores(data, removed)["clean_removed"] == 0


def test_matches_across_canvas_shapes_and_the_resize_squeeze() -> None:
    """2 plain copies, 2 side-by-side and 2 squeezed canvases of one target: 5 others each."""
    rng = np.random.default_rng(2)
    target, refs = texture(1, rng)[0], texture(4, rng)
    wide = poisons_of(target, refs[:2], ["left", "right"])
    squeezed = np.stack([shrink(c) for c in poisons_of(target, refs[2:], ["right", "left"])])
    data = PretrainData(texture(50, rng), PoisonSet((np.stack([target, target]), squeezed, wide)))
    scores = filter_scores(data, dedup(min_count=5).filter(data, 0)[1])
    assert scores["poison_recall"] == 1.0 and scores["clean_removed"] == 0


def near_mean_copies() -> np.ndarray:
    """8 copies of a blocky gray target whose aHashes differ pairwise in exactly 2 bits: the
    8 cells of value 129 sit just above the grid mean (128.1); copy k lowers cell k to 127."""
    rng = np.random.default_rng(3)
    cells = rng.permutation(np.r_[np.full(28, 40), np.full(28, 216), np.full(8, 129)])
    near = np.flatnonzero(cells == 129)
    copies = np.repeat(cells[None], 8, axis=0)
    copies[np.arange(8), near] = 127
    blocks = copies.reshape(8, 1, 8, 8).repeat(4, 2).repeat(4, 3).repeat(3, 1)
    return blocks.astype(np.uint8)


@pytest.mark.parametrize(("distance", "caught"), [(0, False), (1, False), (2, True), (4, True)])
def test_max_distance_tolerates_flipped_bits(distance: int, caught: bool) -> None:
    data = PretrainData(texture(30, np.random.default_rng(4)), PoisonSet((near_mean_copies(),)))
    removed = dedup(max_distance=distance, regions=["whole"]).filter(data, 0)[1]
    assert filter_scores(data, removed)["poison_recall"] == (1.0 if caught else 0.0)


def test_noisy_copies_are_caught_at_the_defaults() -> None:
    rng = np.random.default_rng(5)
    target = np.concatenate([smooth(1, rng), texture(1, rng)])
    noisy = np.repeat(target, 8, axis=0).astype(np.int64) + rng.integers(-4, 5, (16, 3, SIZE, SIZE))
    data = PretrainData(texture(40, rng), PoisonSet((np.clip(noisy, 0, 255).astype(np.uint8),)))
    scores = filter_scores(data, dedup().filter(data, 0)[1])
    assert scores["poison_recall"] == 1.0 and scores["clean_removed"] == 0


def test_blank_halves_do_not_collide() -> None:
    """60 clean images with a black left half: skipped below `min_contrast`, matched at 0."""
    rng = np.random.default_rng(6)
    clean = texture(60, rng)
    clean[:, :, :, : SIZE // 2] = 0
    data = PretrainData(clean, PoisonSet())
    assert len(dedup().filter(data, 0)[1]) == 0
    assert len(dedup(min_contrast=0).filter(data, 0)[1]) == 60


def test_gray_check_rejects_hash_collisions() -> None:
    """Same binary layout (bright top, dark bottom), different brightness: one aHash."""
    levels = np.arange(8) * 12
    halves = np.zeros((8, 3, SIZE, SIZE), dtype=np.uint8)
    halves[:, :, : SIZE // 2] = (120 + levels)[:, None, None, None]
    halves[:, :, SIZE // 2:] = (20 + levels)[:, None, None, None]
    data = PretrainData(halves, PoisonSet())
    assert len(dedup().filter(data, 0)[1]) == 0
    assert len(dedup(max_gray_diff=255).filter(data, 0)[1]) == 8


def test_its_match_counts_rank_the_poisons_first(attacked: PretrainData) -> None:
    """The score behind the filter: every poison's region matches more images than any clean
    image's, so the ranking is perfect (AUROC 1) and the threshold `min_count` sits in the gap."""
    from pe_bench.store.detection import auroc

    _, removed, scores = dedup().filter(attacked, 0)
    poison = np.arange(attacked.size) >= len(attacked.clean)
    assert auroc(scores, poison) == 1.0
    assert scores[poison].min() >= dedup().params.min_count > scores[~poison].max()
    assert np.array_equal(removed, np.flatnonzero(scores >= dedup().params.min_count))
