"""`blend` baseline: each poison is a pixel blend of a target input and a reference input.

[ours] A naive baseline in the spirit of the paper's comparison with a simpler poisoning
construction (its exact definition is unknown to us): the same targets, references and budget
as `poisoned-encoder` at the same seed, but both images share every pixel instead of sitting
side by side, so no crop can separate them.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field

from pe_bench.plugins import Attack, AttackContext, PoisonSet
from pe_bench.registry import register_attack
from pe_bench.targets import TargetedParams, all_targets, budget, references


class BlendParams(TargetedParams):
    alpha: float = Field(0.5, gt=0, lt=1)  # weight of the reference image


def blend(target: np.ndarray, reference: np.ndarray, alpha: float) -> np.ndarray:
    mixed = (1 - alpha) * target.astype(np.float32) + alpha * reference.astype(np.float32)
    return np.rint(mixed).astype(np.uint8)


@register_attack("blend")
class Blend(Attack):
    Params = BlendParams
    params: BlendParams

    def craft(self, ctx: AttackContext) -> PoisonSet:
        p = self.params
        pairs = all_targets(ctx.tasks, p, ctx.seed)
        tasks = {t.name: t for t in ctx.tasks}
        poisons = []
        for pair, count in zip(pairs, budget(len(ctx.pretrain), p, len(pairs)), strict=True):
            task = tasks[pair.task]
            refs = references(task, pair, p.references, ctx.seed)
            target = task.test.images[pair.index]
            poisons += [blend(target, refs[k % len(refs)], p.alpha) for k in range(count)]
        stacked = np.stack(poisons)
        return PoisonSet((stacked,), tuple(pairs), {"n_poisons": len(stacked)})
