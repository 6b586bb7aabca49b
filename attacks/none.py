"""`none`: no poisoning. Its rows are the clean encoder: PA == CA, no target pairs."""

from __future__ import annotations

from typing import ClassVar

from pe_bench.attacks.base import Attack, AttackContext, PoisonSet
from pe_bench.plugins.deviations import Deviation
from pe_bench.plugins.registry import register_attack


# injects nothing (no modalities), so it pairs with every encoder
@register_attack("none", family="targeted", stage="data", modalities=())
class NoAttack(Attack):
    DEVIATIONS: ClassVar[tuple[Deviation, ...]] = ()  # no paper: the clean encoder

    def craft(self, ctx: AttackContext) -> PoisonSet:
        return PoisonSet(info={"n_poisons": 0})
