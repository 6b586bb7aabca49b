"""What a trial's poisons spend, stated both ways: how many distinct images they are (an attack
whose data cannot supply its budget repeats images; the row says so instead of hiding it) and
their share of the target classes' images in the clean pre-training set (the papers state budgets
per class as often as per set; the share of the set is `n_poisons / n_pretrain`)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pe_bench.attacks.base import PoisonSet, Task, TriggeredTest
from pe_bench.datasets.base import ImageArray


def distinct_images(poisons: PoisonSet) -> int:
    """Poison images that differ in at least one pixel (canvases of one shape compared; groups
    of different shapes never hold the same image)."""
    return sum(len({image.tobytes() for image in group}) for group in poisons.groups)


def target_class_share(poisons: PoisonSet, pre: ImageArray, tasks: Sequence[Task],
                       triggered: Sequence[TriggeredTest]) -> float | None:
    """Poisons / clean pre-training images of the attack's target classes (pooled over them).
    None without poisons or targets, with several tasks (which class a poison serves is not
    recorded per task), or where the pre-training set is labelled with other classes than the
    task's (its labels name no target class)."""
    if poisons.size == 0 or len(tasks) != 1 or tuple(pre.classes) != tuple(tasks[0].test.classes):
        return None
    classes = {t.target_class for t in poisons.targets} | {t.target_class for t in triggered}
    held = int(np.isin(pre.labels, sorted(classes)).sum())
    return poisons.size / held if classes and held else None

