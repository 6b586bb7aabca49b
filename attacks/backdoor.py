"""What every data-stage backdoor attack shares: target classes, the budget, poisons made of
triggered target-class images, and the triggered test inputs it is evaluated on.

The backdoor family (issue 13): the attacker plants a trigger in images of a target class; an
encoder pre-trained on them embeds any triggered input near that class, so a downstream
classifier built on it assigns triggered inputs of the other classes to the target class. A
subclass implements `apply_trigger` only; this base builds the rest the same way for every
trigger, so at one seed `ssl-backdoor` and `ctrl` attack the same target classes with the same
budget and are evaluated on the same test inputs.

Shared choices [ours, where the papers poison their own training set in place]:
- The attacker only injects images (the threat model of every attack here): a poison is a
  triggered copy of one of the attacker's own target-class images (`attacker_data`, as for
  targeted attacks: by default its held-out split of the task's train split, see
  `pe_bench.attacks.targets`). When the budget exceeds the attacker's target-class images they
  are cycled (each is used once before any is used twice).
- Budget: N = round(poison_rate x |clean pre-training set|), at least one per task, split evenly
  over the tasks (each task has its own target class): `pe_bench.attacks.targets.budget`, the
  one budget every attack uses.
- Target class: `target_class` for every task, or (None) one drawn per seed and task among the
  classes the attacker holds images of (the papers pick one class by hand).
- Evaluation: every test input whose true class is not the task's target class, triggered
  (`triggered_tests`); the paired clean twin is evaluated on the very same triggered inputs.
"""

from __future__ import annotations

from typing import ClassVar, Literal, Protocol

import numpy as np
from pydantic import Field

from pe_bench.attacks.base import Attack, AttackContext, PluginParams, PoisonSet, Task, TriggeredTest
from pe_bench.attacks.targets import KnowsAttackerData, attacker_images, budget, task_rng
from pe_bench.plugins.types import Family


class BackdoorParams(PluginParams):
    """Budget and target classes of a data-poisoning backdoor."""

    poison_rate: float = Field(0.01, gt=0, le=1)  # total poisons / clean pre-training images
    target_class: int | None = Field(None, ge=0)  # every task's target class; None: drawn per seed
    # the attacker's labelled data: its held-out split, or (stronger) the probe's training data
    attacker_data: Literal["held-out", "probe-train"] = "held-out"


class KnowsTarget(KnowsAttackerData, Protocol):
    """Params that name a backdoor's target class (None: drawn per seed) and attacker data."""

    @property
    def target_class(self) -> int | None: ...


def backdoor_target(task: Task, params: KnowsTarget, seed: int) -> int:
    """The task's target class: the fixed one, or one drawn per seed among the classes the
    attacker holds images of (shared by data- and encoder-stage backdoors)."""
    classes = len(task.test.classes)
    if params.target_class is not None:
        if params.target_class >= classes:
            raise ValueError(f"target_class {params.target_class}: task {task.name!r} has "
                             f"{classes} classes")
        return params.target_class
    known = np.unique(attacker_images(task, params).labels)
    return int(task_rng(seed, task.name, "backdoor-target").choice(known))


class BackdoorAttack(Attack):
    """A data-poisoning backdoor: subclasses implement `apply_trigger`. Its family is
    `backdoor` (its rows are evaluated on `triggered_tests`): a subclass that declares another
    is refused at registration, unless its params pick the family (`family_of`)."""

    family: ClassVar[Family] = "backdoor"
    Params = BackdoorParams
    params: BackdoorParams

    def apply_trigger(self, images: np.ndarray, seed: int, rng: np.random.Generator,
                      test: bool = False) -> np.ndarray:
        """`images` (uint8 (M, C, H, W), left untouched) with the trigger, as a new uint8 array.
        `seed` fixes the trigger itself (e.g. a random pattern), `rng` what varies per image
        (e.g. a position); `test`: applied at test time rather than to poisons."""
        raise NotImplementedError

    def target_class(self, task: Task, seed: int) -> int:
        """The task's target class (see `backdoor_target`)."""
        return backdoor_target(task, self.params, seed)

    def craft(self, ctx: AttackContext) -> PoisonSet:
        groups, chosen = [], {}
        counts = budget(len(ctx.pretrain), self.params, len(ctx.tasks))
        for task, count in zip(ctx.tasks, counts, strict=True):
            target = self.target_class(task, ctx.seed)
            own = attacker_images(task, self.params)
            pool = np.flatnonzero(own.labels == target)
            if len(pool) == 0:
                raise ValueError(f"task {task.name!r}: the attacker has no image of class {target}")
            rng = task_rng(ctx.seed, task.name, "backdoor-poisons")
            picked = np.resize(rng.permutation(pool), count)
            groups.append(self.apply_trigger(own.images[picked], ctx.seed, rng))
            chosen[task.name] = target
        poisons = np.concatenate(groups)
        return PoisonSet((poisons,), (), {"n_poisons": len(poisons), "target_classes": chosen})

    def triggered_tests(self, ctx: AttackContext) -> tuple[TriggeredTest, ...]:
        out = []
        for task in ctx.tasks:
            target = self.target_class(task, ctx.seed)
            index = np.flatnonzero(task.test.labels != target)
            rng = task_rng(ctx.seed, task.name, "backdoor-test")
            images = self.apply_trigger(task.test.images[index], ctx.seed, rng, test=True)
            out.append(TriggeredTest(task.name, target, index, images))
        return tuple(out)
