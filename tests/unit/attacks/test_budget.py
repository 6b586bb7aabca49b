"""One budget for every attack (issue 21, point 4): `pe_bench.attacks.targets.budget`, N =
round(poison_rate x |clean pre-training set|), at least one per part, split evenly. No attack
computes its own."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from pe_bench.attacks.targets import budget
from pe_bench.plugins.registry import ATTACKS
from pe_bench.testing.attacks import tiny_context

ATTACKS_DIR = Path(__file__).resolve().parents[3] / "attacks"
# the params that make each built-in craft on tiny_context's 8x8 images
TINY = {"ssl-backdoor": {"patch_size": 2}, "ctrl": {"window_size": 8, "frequencies": [3, 7]},
        "corrupt-encoder": {"patch_size": 2}, "noisy-alignment": {"patch_size": 2},
        "carlini-terzis": {"variant": "backdoor", "patch_size": 2}}


def _rate_products(path: Path) -> list[str]:
    """`<x>.poison_rate * ...` (or `... * <x>.poison_rate`) in a module's code."""
    return [f"{path.name}:{node.lineno}" for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
            if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult)
            and any(isinstance(side, ast.Attribute) and side.attr == "poison_rate"
                    for side in (node.left, node.right))]


def test_no_attack_computes_its_own_budget() -> None:
    assert _rate_products(ATTACKS_DIR / "targets.py")  # the check sees the one formula
    assert [hit for path in sorted(ATTACKS_DIR.glob("*.py")) if path.name != "targets.py"
            for hit in _rate_products(path)] == []


@pytest.mark.parametrize("name", sorted(TINY))
@pytest.mark.parametrize("rate", [0.01, 0.05, 0.3, 1.0])
def test_backdoors_spend_the_shared_budget(name: str, rate: float) -> None:
    ctx = tiny_context(seed=1)
    attack = ATTACKS.get(name).from_dict({**TINY[name], "poison_rate": rate})
    poisons = attack.craft(ctx)
    expected = budget(len(ctx.pretrain), attack.params, len(ctx.tasks))
    assert poisons.size == poisons.info["n_poisons"] == sum(expected)
    assert sum(expected) == max(len(ctx.tasks), round(rate * len(ctx.pretrain)))
