"""`none`: no poisoning. Its rows are the clean encoder: PA == CA, no target pairs."""

from __future__ import annotations

from pe_bench.plugins import Attack, AttackContext, PoisonSet
from pe_bench.registry import register_attack


@register_attack("none")
class NoAttack(Attack):
    modalities = ()  # injects nothing, so it pairs with every encoder
    def craft(self, ctx: AttackContext) -> PoisonSet:
        return PoisonSet(info={"n_poisons": 0})
