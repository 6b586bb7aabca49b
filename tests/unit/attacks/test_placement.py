"""Trigger placements against the releases' numbers: where each backdoor may put its patch on
poisons and on triggered test inputs (the ranges each plugin's docstring states)."""

from __future__ import annotations

import numpy as np

from pe_bench.attacks.ssl_backdoor import corners
from pe_bench.plugins.registry import ATTACKS
from tests.helpers import four_class_context


def _span(side: int, patch: int, span: tuple[float, float], clamp: bool = False) -> tuple[int, int]:
    drawn = corners(np.random.default_rng(0), 5000, side, patch, span, clamp)
    return int(drawn.min()), int(drawn.max())


def test_ssl_backdoor_ranges_at_the_releases_224_px() -> None:
    """A 50-px patch on 224-px images: poisons within [0.25, 0.75] of the side (corners 56-118),
    test inputs within [0.10, 0.90] (corners 22-151)."""
    params = ATTACKS.get("ssl-backdoor").Params()
    assert _span(224, 50, params.poison_range) == (56, 118)
    assert _span(224, 50, params.test_range) == (22, 151)


def test_noisy_alignment_pins_the_patch_where_its_range_is_too_narrow() -> None:
    """The release raises the range's end to its start when the patch does not fit in
    [0.45, 0.55]: 100 at 224 px (50-px patch), 14 at 32 px (7 px), 7 at 16 px (4 px)."""
    params = ATTACKS.get("noisy-alignment").Params()
    assert params.poison_range == params.test_range == (0.45, 0.55)
    for side, patch, start in ((224, 50, 100), (32, 7, 14), (16, 4, 7)):
        assert patch == params.patch(side) or side == 224
        assert _span(side, patch, params.poison_range, clamp=True) == (start, start)
    assert _span(32, 7, (0.45, 0.55)) == (0, 25)  # ssl-backdoor's own rule widens instead


def test_noisy_alignment_poisons_and_test_inputs_carry_the_trigger_at_14_14() -> None:
    ctx = four_class_context(32, 0)
    attack = ATTACKS.get("noisy-alignment").from_dict({"target_class": 2, "poison_rate": 0.05})
    rng = np.random.default_rng(0)
    clean = ctx.tasks[0].test.images[:8]
    triggered = attack.apply_trigger(clean, 0, rng, test=True)
    for before, after in zip(clean, triggered, strict=True):
        ys, xs = np.nonzero((before != after).any(0))
        assert min(ys.min(), xs.min()) >= 14 and max(ys.max(), xs.max()) <= 20  # a 7-px patch at 14
    poisons = attack.apply_trigger(clean, 0, rng, test=False)
    assert np.array_equal(poisons, triggered)  # one place: the same image gets the same trigger
