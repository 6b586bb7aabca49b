"""Poison geometry, budgets and target selection of the built-in data-poisoning attacks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pe_bench.attacks.base import AttackContext, Task
from pe_bench.attacks.poisoned_encoder import concatenate, shrink
from pe_bench.attacks.targets import TargetedParams, budget, select_targets, split_budget
from pe_bench.plugins.types import ImageArray
from pe_bench.plugins.registry import ATTACKS
from tests.helpers import toy_task


def _img(value: int, c: int = 3, h: int = 4, w: int = 4) -> np.ndarray:
    return np.full((c, h, w), value, dtype=np.uint8)


@pytest.mark.parametrize(
    "layout,shape,target_at",
    [
        ("left", (3, 4, 8), (slice(None), slice(None), slice(0, 4))),
        ("right", (3, 4, 8), (slice(None), slice(None), slice(4, 8))),
        ("top", (3, 8, 4), (slice(None), slice(0, 4), slice(None))),
        ("bottom", (3, 8, 4), (slice(None), slice(4, 8), slice(None))),
    ],
)
def test_concatenation_places_target_and_reference(layout, shape, target_at) -> None:
    canvas = concatenate(_img(200), _img(10), layout)
    assert canvas.shape == shape
    assert (canvas[target_at] == 200).all()
    assert (canvas == 10).sum() == canvas.size // 2  # the other half is the reference


def test_shrink_box_filters_the_long_side() -> None:
    canvas = concatenate(_img(200), _img(10), "left")
    small = shrink(canvas)
    assert small.shape == (3, 4, 4)
    assert (small[:, :, :2] == 200).all() and (small[:, :, 2:] == 10).all()
    assert shrink(concatenate(_img(200), _img(10), "top")).shape == (3, 4, 4)


def test_budget_split_is_even_and_complete() -> None:
    assert split_budget(10, 3) == [4, 3, 3]
    params = TargetedParams(poison_rate=0.05)
    assert sum(budget(1000, params, 5)) == 50
    assert budget(10, params, 4) == [1, 1, 1, 1]  # at least one poison per target


def _ctx(seed: int = 0) -> AttackContext:
    task = toy_task()
    return AttackContext(pretrain=task.train.images, tasks=(task,), seed=seed)


def test_poisoned_encoder_crafts_budgeted_concatenations() -> None:
    cls = ATTACKS.get("poisoned-encoder")
    attack = cls.from_dict({"poison_rate": 0.5, "targets_per_task": 2, "references": 3})
    ctx = _ctx()
    poisons = attack.craft(ctx)
    assert poisons.size == round(0.5 * len(ctx.pretrain))
    assert len(poisons.targets) == 2
    assert {g.shape[1:] for g in poisons.groups} <= {(3, 8, 16), (3, 16, 8)}
    task = ctx.tasks[0]
    for pair in poisons.targets:
        assert pair.target_class != pair.true_class
        assert task.test.labels[pair.index] == pair.true_class
    # every canvas holds one of the target inputs as one of its halves
    targets = [task.test.images[p.index] for p in poisons.targets]
    for group in poisons.groups:
        for canvas in group:
            halves = np.split(canvas, 2, axis=2 if canvas.shape[2] > canvas.shape[1] else 1)
            assert any(np.array_equal(h, t) for h in halves for t in targets)


def test_side_by_side_only_and_resize() -> None:
    cls = ATTACKS.get("poisoned-encoder")
    attack = cls.from_dict({"layouts": ["left", "right"], "canvas": "keep", "targets_per_task": 1})
    assert {g.shape[1:] for g in attack.craft(_ctx()).groups} == {(3, 8, 16)}
    resized = cls.from_dict({"canvas": "resize", "targets_per_task": 1}).craft(_ctx())
    assert {g.shape[1:] for g in resized.groups} == {(3, 8, 8)}


def test_attacks_share_targets_at_one_seed() -> None:
    params = {"poison_rate": 0.2, "targets_per_task": 3}
    pe = ATTACKS.get("poisoned-encoder").from_dict(params).craft(_ctx(seed=4))
    dup = ATTACKS.get("duplicate").from_dict(params).craft(_ctx(seed=4))
    assert pe.targets == dup.targets
    assert pe.size == dup.size
    other_seed = ATTACKS.get("duplicate").from_dict(params).craft(_ctx(seed=5))
    assert other_seed.targets != dup.targets


def test_duplicate_is_copies_of_targets() -> None:
    dup = ATTACKS.get("duplicate").from_dict({"poison_rate": 0.25, "targets_per_task": 2}).craft(_ctx())
    task = _ctx().tasks[0]
    (group,) = dup.groups
    for img in group:
        assert any(np.array_equal(img, task.test.images[p.index]) for p in dup.targets)


def test_none_attack_injects_nothing() -> None:
    poisons = ATTACKS.get("none").from_dict({}).craft(_ctx())
    assert poisons.size == 0 and poisons.targets == ()


def test_fixed_target_class_is_honoured() -> None:
    params = TargetedParams(targets_per_task=4, target_class=2)
    pairs = select_targets(toy_task(), params, seed=0)
    assert len(pairs) == 4
    assert all(p.target_class == 2 and p.true_class != 2 for p in pairs)


def test_outlier_rule_finds_the_planted_outlier() -> None:
    task = toy_task(per_class=12)
    test_images = task.test.images.copy()
    # test image 0 is class 0 but looks exactly like class 3: the most extreme outlier
    test_images[0] = task.train.images[task.train.labels == 3][0]
    test = ImageArray(test_images, task.test.labels, task.test.classes)
    planted = Task(task.name, task.train, test)
    params = TargetedParams(targets_per_task=1, selection="outlier", shortlist=1)
    pairs = select_targets(planted, params, seed=0)
    assert (pairs[0].index, pairs[0].true_class, pairs[0].target_class) == (0, 0, 3)


def test_blend_mixes_target_and_reference_pixels() -> None:
    from pe_bench.attacks.blend import blend

    mixed = blend(_img(200), _img(100), 0.25)
    assert mixed.shape == (3, 4, 4) and (mixed == 175).all()
    params = {"poison_rate": 0.25, "targets_per_task": 2, "references": 2}
    poisons = ATTACKS.get("blend").from_dict(params).craft(_ctx())
    same_budget = ATTACKS.get("poisoned-encoder").from_dict(params).craft(_ctx())
    assert poisons.targets == same_budget.targets and poisons.size == same_budget.size
    assert {g.shape[1:] for g in poisons.groups} == {(3, 8, 8)}


def test_ambiguous_rule_picks_the_input_between_two_classes() -> None:
    task = toy_task(per_class=12)
    test_images = task.test.images.copy()
    # test image 0 (class 0) is the pixel average of a class-1 and a class-2 training image
    a, b = task.train.images[task.train.labels == 1][0], task.train.images[task.train.labels == 2][0]
    test_images[0] = ((a.astype(np.int64) + b) // 2).astype(np.uint8)
    planted = Task(task.name, task.train, ImageArray(test_images, task.test.labels, task.test.classes))
    params = TargetedParams(targets_per_task=1, selection="ambiguous", shortlist=1)
    (pair,) = select_targets(planted, params, seed=0)
    assert pair.index == 0 and pair.true_class == 0 and pair.target_class in (1, 2)
    pairs = select_targets(planted, TargetedParams(targets_per_task=5, selection="ambiguous"), seed=0)
    assert all(p.target_class != p.true_class for p in pairs)


@pytest.mark.parametrize("rule", ["random", "outlier", "ambiguous"])
def test_every_rule_draws_new_targets_at_every_seed(rule: str, tmp_path: Path) -> None:
    """Digits' test split is smaller than the candidate pool, so a ranked rule that took the top
    of its ranking attacked the same targets at every seed; each seed now draws its own."""
    from pe_bench.datasets.loading import load_dataset

    native = {"resolution": 8, "channels": 1}  # 8x8 grey keeps the ambiguous rule's surrogate fast
    task = Task("digits", load_dataset("digits", "train", native, tmp_path),
                load_dataset("digits", "test", native, tmp_path))
    params = TargetedParams(targets_per_task=5, selection=rule)
    best = params.model_copy(update={"shortlist": 1, "targets_per_task": 20})
    drawn = []
    for seed in range(6):
        pairs = {(p.index, p.target_class) for p in select_targets(task, params, seed)}
        if rule != "random":  # drawn among the seed's 4 x 5 best-ranked candidates, nothing else
            assert pairs <= {(p.index, p.target_class) for p in select_targets(task, best, seed)}
        drawn.append(frozenset(pairs))
    assert len(set(drawn)) == 6 and all(len(d) == 5 for d in drawn)


def _two_tasks() -> AttackContext:
    """Task `a` offers 5 target pairs; task `b` (one test image outside class 0) offers 1 when
    y_i is fixed to class 0. Its images are drawn apart from `a`'s, so no target repeats."""
    from tests.helpers import solid_images

    a = toy_task("a")
    y = np.array([0, 1])
    b = Task("b", ImageArray(solid_images(y, seed=7), y, ("0", "1")),
             ImageArray(solid_images(y, seed=8), y, ("0", "1")))
    return AttackContext(pretrain=a.train.images, tasks=(a, b), seed=0)


@pytest.mark.parametrize("name", ["poisoned-encoder", "duplicate"])
def test_the_budget_is_split_over_every_target_of_every_task(name: str) -> None:
    """N = round(poison_rate * |D|) in all, spread evenly over the 6 pairs of both tasks (not
    N per task, nor N / 2 per task: task b's one pair would then get 5 times a's share)."""
    ctx = _two_tasks()
    attack = ATTACKS.get(name).from_dict({"poison_rate": 0.5, "targets_per_task": 5, "target_class": 0})
    poisons = attack.craft(ctx)
    assert [p.task for p in poisons.targets] == ["a"] * 5 + ["b"]
    assert poisons.size == round(0.5 * len(ctx.pretrain)) == 24
    tasks = {t.name: t for t in ctx.tasks}
    targets = [tasks[p.task].test.images[p.index] for p in poisons.targets]
    per_target = [0] * len(targets)
    for group in poisons.groups:
        for image in group:
            halves = np.split(image, 2, axis=2 if image.shape[2] > image.shape[1] else 1)
            parts = [image] if image.shape[1] == image.shape[2] else halves
            hit = [i for i, t in enumerate(targets) if any(np.array_equal(h, t) for h in parts)]
            assert len(hit) == 1
            per_target[hit[0]] += 1
    assert per_target == [4] * 6
