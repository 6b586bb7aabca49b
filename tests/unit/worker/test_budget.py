"""Budgets stated both ways (pe_bench.worker.budget): distinct poison images, so an attack that
repeats images says so, and poisons as a share of the target classes' pre-training images."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from pe_bench.attacks.base import PoisonSet, TargetPair
from pe_bench.datasets.base import ImageArray
from pe_bench.plugins.registry import ATTACKS
from pe_bench.worker.budget import distinct_images, target_class_share
from tests.helpers import four_class_context


def test_ctrl_repeats_its_few_target_class_images_and_the_count_shows_it() -> None:
    """CTRL's trigger is fixed, so 10 poisons from the attacker's 3 target-class images are 3
    distinct images; SSL-Backdoor's random placement makes each copy differ."""
    ctx = four_class_context(32)
    own = ctx.tasks[0].attacker
    assert own is not None
    noisy = np.random.default_rng(0).integers(0, 256, own.images.shape, dtype=np.uint8)  # 3 distinct a class
    ctx = replace(ctx, tasks=(replace(ctx.tasks[0], attacker=replace(own, images=noisy)),))
    ctrl = ATTACKS.get("ctrl").from_dict({"target_class": 2, "poison_rate": 0.05}).craft(ctx)
    assert ctrl.size == 10 and distinct_images(ctrl) == 3
    ssl = ATTACKS.get("ssl-backdoor").from_dict({"target_class": 2, "poison_rate": 0.05}).craft(ctx)
    assert ssl.size == 10 and distinct_images(ssl) == 10


def test_groups_of_two_shapes_count_apart() -> None:
    a = np.zeros((2, 3, 4, 8), np.uint8)
    b = np.zeros((3, 3, 8, 4), np.uint8)
    assert distinct_images(PoisonSet((a, b))) == 2 and distinct_images(PoisonSet()) == 0


def test_the_class_share_pools_the_target_classes_of_the_clean_pre_training_set() -> None:
    ctx = four_class_context(8)
    task = ctx.tasks[0]
    labels = np.repeat(np.arange(4), [10, 20, 30, 40])
    pre = ImageArray(np.zeros((100, 3, 8, 8), np.uint8), labels, task.test.classes)
    five = PoisonSet((np.zeros((5, 3, 8, 8), np.uint8),), (TargetPair("toy", 0, 0, 1), TargetPair("toy", 1, 0, 3)))
    assert target_class_share(five, pre, ctx.tasks, ()) == 5 / 60  # classes 1 and 3: 20 + 40 images
    other = ImageArray(pre.images, labels, ("w", "x", "y", "z"))
    assert target_class_share(five, other, ctx.tasks, ()) is None  # the pre-training set names other classes
    assert target_class_share(PoisonSet(), pre, ctx.tasks, ()) is None
