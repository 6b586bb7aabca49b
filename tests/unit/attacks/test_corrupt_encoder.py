"""`corrupt-encoder` by construction: each poison is a 2:1 canvas holding a target-class object at
the bottom of one side, moved inwards by at most the object margin, the trigger on the other
side within its margins, and a background of another class everywhere else; support poisons
(CorruptEncoder+) are two target-class images; the budget is exact; determinism; test inputs get
the same trigger.

No effect test: on the tiny setting where `ssl-backdoor`'s effect test holds (four flat colours,
16x16, 128 pre-training images, SimCLR 20 epochs, 25% poisons, a 6-pixel trigger), triggered ASR
at seeds 0 / 1 / 2 was 0.00 / 0.64 / 0.03 (white trigger) and 0.01 / 0.30 / 0.01 (noise trigger)
against 0.00 for every clean twin: not reliable at this scale, so construction only."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from pe_bench.attacks.base import AttackContext
from pe_bench.attacks.corrupt_encoder import trigger
from pe_bench.plugins.registry import ATTACKS
from pe_bench.testing import check_attack
from tests.helpers import four_class_context

SIZE, TARGET = 16, 2


def _ctx(seed: int = 0) -> AttackContext:
    """Four classes; the attacker holds 3 flat images per class (class c: value 20 + 20c)."""
    return four_class_context(SIZE, seed)


def _attack(**params: object):
    return ATTACKS.get("corrupt-encoder").from_dict({"target_class": TARGET, "poison_rate": 0.05,
                                                     "patch_size": 4, **params})


def _find(canvas: np.ndarray, mark: np.ndarray) -> tuple[int, int]:
    """The (y, x) where `mark` lies in `canvas` (exactly once)."""
    size = mark.shape[-1]
    hits = [(y, x) for y in range(canvas.shape[1] - size + 1) for x in range(canvas.shape[2] - size + 1)
            if np.array_equal(canvas[:, y:y + size, x:x + size], mark)]
    assert len(hits) == 1
    return hits[0]


def test_poisons_hold_object_and_trigger_on_opposite_sides_over_another_class() -> None:
    attack, ctx = _attack(), _ctx()
    poisons = attack.craft(ctx)
    (group,) = poisons.groups
    assert poisons.size == 10 and group.shape == (10, 3, SIZE, 2 * SIZE) and poisons.targets == ()
    mark, target_value = trigger(attack.params, 3, 0, SIZE), 20 + 20 * TARGET
    sides = set()
    for canvas in group:
        y, x = _find(canvas, mark)
        rest = canvas.copy()
        rest[:, y:y + 4, x:x + 4] = 0
        columns = np.flatnonzero((rest == target_value).all(axis=(0, 1)))  # the object's columns
        ox = int(columns[0])
        assert len(columns) == SIZE and np.array_equal(columns, np.arange(ox, ox + SIZE))
        left = ox <= 0.05 * 2 * SIZE
        assert left or 2 * SIZE - SIZE - 0.05 * 2 * SIZE - 1 <= ox <= SIZE  # at an edge, margin 5%
        gap = 0.125 * 2 * SIZE  # trigger margin 0.25, halved on the 2:1 canvas, as the generator
        if left:
            assert x >= ox + SIZE + gap and x + 4 <= 2 * SIZE - gap
        else:
            assert gap <= x and x + 4 <= ox - gap
        assert 0.25 * SIZE <= y and y + 4 <= 0.75 * SIZE  # the central half, vertically
        back = np.delete(rest, np.s_[ox:ox + SIZE], axis=2)
        back = back[back != 0]
        assert len(np.unique(back)) == 1 and back[0] != target_value  # one other-class background
        sides.add(left)
    assert sides == {True, False}  # both layouts occur


def test_support_poisons_are_two_target_class_images_and_the_budget_is_exact() -> None:
    poisons = _attack(support_ratio=0.3).craft(_ctx())
    (group,) = poisons.groups
    assert poisons.size == 10  # round(0.05 x 200), 3 of them support poisons
    plain = (group == 20 + 20 * TARGET).reshape(10, -1).all(axis=1)
    assert plain.sum() == 3 and plain[-3:].all()


def test_resized_canvases_are_square_and_crafting_is_deterministic() -> None:
    assert _attack(canvas="resize").craft(_ctx()).groups[0].shape == (10, 3, SIZE, SIZE)
    a, b, c = (_attack().craft(_ctx(seed)).groups[0] for seed in (0, 0, 1))
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_triggered_tests_carry_the_same_trigger_on_every_other_class_input() -> None:
    attack, ctx = _attack(), _ctx()
    (trig,) = attack.triggered_tests(ctx)
    test = ctx.tasks[0].test
    assert np.array_equal(trig.index, np.flatnonzero(test.labels != TARGET))
    mark = trigger(attack.params, 3, 0, SIZE)
    for before, after in zip(test.images[trig.index], trig.images, strict=True):
        y, x = _find(after, mark)
        outside = np.ones(after.shape[1:], dtype=bool)
        outside[y:y + 4, x:x + 4] = False
        assert np.array_equal(before[:, outside], after[:, outside])  # nothing else touched


@pytest.mark.parametrize("bad", [{"patch_size": 0}, {"support_ratio": 1.0}, {"object_margin": 0.5},
                                 {"test_range": [0.5, 0.5]}, {"pattern": "checkerboard"}, {"layout": 1}])
def test_params_are_validated(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        ATTACKS.get("corrupt-encoder").from_dict(bad)


def test_a_trigger_with_no_room_on_the_canvas_is_an_error() -> None:
    with pytest.raises(ValueError, match="no room for the trigger"):
        _attack(patch_size=12).craft(_ctx())


def test_corrupt_encoder_meets_the_attack_contract() -> None:
    assert check_attack(ATTACKS.get("corrupt-encoder"))["metadata"].family == "backdoor"
