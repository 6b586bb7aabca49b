"""`duplicate` baseline: N copies of each target input alone, no reference.

[ours] Separates the effect of concatenation from mere repetition of x_i: same targets, same
budget split as `poisoned-encoder` at the same seed.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from pe_bench.attacks.base import Attack, AttackContext, PoisonSet
from pe_bench.attacks.targets import TargetedParams, all_targets, budget
from pe_bench.plugins.deviations import Deviation
from pe_bench.plugins.registry import register_attack


@register_attack("duplicate", family="targeted", stage="data", modalities=("image",),
                 budget_param="poison_rate", label_params=("selection",),
                 label_marks={"attacker_data": {"probe-train": "+probe-data"}})
class Duplicate(Attack):
    Params = TargetedParams
    params: TargetedParams
    DEVIATIONS: ClassVar[tuple[Deviation, ...]] = (
        Deviation("a baseline of ours, in no paper: N copies of each target input alone, no reference",
                  "separates the effect of concatenation from mere repetition of x_i: the same "
                  "targets and budget split as `poisoned-encoder` at the same seed",
                  "n/a: no paper to compare with"),
    )

    def craft(self, ctx: AttackContext) -> PoisonSet:
        pairs = all_targets(ctx.tasks, self.params, ctx.seed)
        tasks = {t.name: t for t in ctx.tasks}
        copies = [
            np.repeat(tasks[pair.task].test.images[pair.index][None], count, axis=0)
            for pair, count in zip(pairs, budget(len(ctx.pretrain), self.params, len(pairs)), strict=True)
        ]
        poisons = np.concatenate(copies)
        return PoisonSet((poisons,), tuple(pairs), {"n_poisons": len(poisons)})
