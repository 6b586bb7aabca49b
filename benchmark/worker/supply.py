"""What an attack setting's budget buys before a run spends it: `pe-bench validate --budgets`
crafts each data-poisoning attack setting's poisons once, from the data a run would give it, and
counts the distinct images among them (pe_bench.worker.budget), so a budget the attacker's data
cannot supply without repeats is said before the run (rows record the count either way)."""

from __future__ import annotations

from pathlib import Path

from pe_bench.attacks.base import AttackContext, PoisonSet
from pe_bench.config.spec import TrialSpec
from pe_bench.plugins.registry import ATTACKS
from pe_bench.worker.budget import distinct_images
from pe_bench.worker.pipeline import load_inputs


def supply(spec: TrialSpec, data_dir: Path) -> tuple[int, int]:
    """(poisons, distinct images among them) the trial's attack crafts at its seed."""
    pre, tasks = load_inputs(spec, data_dir)
    attack = ATTACKS.get(spec.attack.name).from_dict(spec.attack.params)
    poisons: PoisonSet = attack.craft(AttackContext(pre.images, tasks, spec.seed))
    return poisons.size, distinct_images(poisons)
