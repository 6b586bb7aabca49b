"""`blend` baseline: each poison is a pixel blend of a target input and a reference input.

[ours] A naive baseline in the spirit of the paper's comparison with a simpler poisoning
construction (its exact definition is unknown to us): the same targets, references and budget
as `poisoned-encoder` at the same seed, but both images share every pixel instead of sitting
side by side, so no crop can separate them.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from pydantic import Field

from pe_bench.attacks.base import Attack, AttackContext, PoisonSet
from pe_bench.attacks.targets import TargetedParams, craft_with_references
from pe_bench.plugins.deviations import Deviation
from pe_bench.plugins.registry import register_attack


class BlendParams(TargetedParams):
    alpha: float = Field(0.5, gt=0, lt=1)  # weight of the reference image


def blend(target: np.ndarray, reference: np.ndarray, alpha: float) -> np.ndarray:
    mixed = (1 - alpha) * target.astype(np.float32) + alpha * reference.astype(np.float32)
    return np.rint(mixed).astype(np.uint8)


@register_attack("blend", family="targeted", stage="data", modalities=("image",),
                 budget_param="poison_rate", label_params=("selection",),
                 label_marks={"attacker_data": {"probe-train": "+probe-data"}})
class Blend(Attack):
    Params = BlendParams
    params: BlendParams
    DEVIATIONS: ClassVar[tuple[Deviation, ...]] = (
        Deviation("a baseline of ours: each poison is a pixel blend of a target input and a reference "
                  "input (reference weight `alpha`, 0.5), with the targets, references and budget of "
                  "`poisoned-encoder` at the same seed",
                  "in the spirit of the PoisonedEncoder paper's comparison with a simpler poisoning "
                  "construction, whose exact definition is unknown to us; both images share every "
                  "pixel, so no crop can separate them",
                  "n/a: no paper to compare with"),
    )

    def craft(self, ctx: AttackContext) -> PoisonSet:
        alpha = self.params.alpha
        return craft_with_references(ctx, self.params, lambda t, r, _: blend(t, r, alpha))
