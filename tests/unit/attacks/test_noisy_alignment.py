"""`noisy-alignment` by construction: each poison is a triggered image of the attacker's (any
class) beside one of its target-class images, in one of the allowed layouts; the trigger is
composited with the image's weight `alpha` inside a patch near the centre; the budget is exact;
determinism; test inputs get the same trigger. No effect test yet: its effect at CPU scale has
not been measured."""

from __future__ import annotations

import numpy as np

from pe_bench.attacks.base import AttackContext
from pe_bench.attacks.ssl_backdoor import trigger_pattern
from pe_bench.plugins.registry import ATTACKS
from pe_bench.testing import check_attack
from tests.helpers import four_class_context

SIZE, TARGET, PATCH = 16, 2, 4


def _ctx(seed: int = 0) -> AttackContext:
    """Four classes; the attacker holds 3 flat images per class (class c: value 20 + 20c)."""
    return four_class_context(SIZE, seed)


def _attack(**params: object):
    return ATTACKS.get("noisy-alignment").from_dict({"target_class": TARGET, "poison_rate": 0.05,
                                                     "patch_size": PATCH, **params})


def _halves(canvas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return (canvas[:, :, :SIZE], canvas[:, :, SIZE:]) if canvas.shape[2] == 2 * SIZE else (
        canvas[:, :SIZE], canvas[:, SIZE:])


def _patch_on_flat(image: np.ndarray, mark: np.ndarray) -> bool:
    """Whether `image` is a flat image with `mark` composited (image weight 0.2) in one
    PATCH x PATCH window."""
    base = int(np.bincount(image.ravel()).argmax())
    for y in range(SIZE - PATCH + 1):
        for x in range(SIZE - PATCH + 1):
            want = np.full_like(image, base)
            want[:, y:y + PATCH, x:x + PATCH] = np.rint(0.2 * base + 0.8 * mark.astype(np.float32))
            if np.array_equal(image, want):
                return True
    return False


def test_each_poison_is_a_triggered_image_beside_a_target_class_reference() -> None:
    attack, ctx = _attack(), _ctx()
    poisons = attack.craft(ctx)
    assert poisons.size == 10 and poisons.targets == ()  # round(0.05 x 200)
    assert {g.shape[1:] for g in poisons.groups} <= {(3, SIZE, 2 * SIZE), (3, 2 * SIZE, SIZE)}
    mark = trigger_pattern(attack.params, 3, 0, PATCH)
    for canvas in (c for g in poisons.groups for c in g):
        first, second = _halves(canvas)
        flat = [(h == 20 + 20 * TARGET).all() for h in (first, second)]
        triggered = second if flat[0] else first
        assert any(flat) and _patch_on_flat(triggered, mark)


def test_layouts_budget_resize_and_determinism() -> None:
    ctx = _ctx()
    left_only = _attack(layouts=["left"]).craft(ctx)
    (group,) = left_only.groups
    assert group.shape == (10, 3, SIZE, 2 * SIZE) and (group[:, :, :, SIZE:] == 20 + 20 * TARGET).all()
    (square,) = _attack(canvas="resize").craft(ctx).groups
    assert square.shape == (10, 3, SIZE, SIZE)
    a, b = _attack().craft(ctx), _attack().craft(ctx)
    assert all(np.array_equal(x, y) for x, y in zip(a.groups, b.groups, strict=True))
    c = _attack().craft(_ctx(seed=1))
    assert not all(np.array_equal(x, y) for x, y in zip(a.groups, c.groups, strict=False))


def test_test_inputs_get_the_same_blended_trigger() -> None:
    attack, ctx = _attack(), _ctx()
    (tests,) = attack.triggered_tests(ctx)
    task = ctx.tasks[0]
    assert tests.target_class == TARGET and (task.test.labels[tests.index] != TARGET).all()
    mark = trigger_pattern(attack.params, 3, 0, PATCH).astype(np.float32)
    for triggered, clean in zip(tests.images, task.test.images[tests.index], strict=True):
        ys, xs = np.nonzero((triggered != clean).any(0))
        assert ys.max() - ys.min() < PATCH and xs.max() - xs.min() < PATCH
        y, x = min(ys.min(), SIZE - PATCH), min(xs.min(), SIZE - PATCH)
        window = (slice(None), slice(y, y + PATCH), slice(x, x + PATCH))
        want = np.rint(0.2 * clean[window].astype(np.float32) + 0.8 * mark)
        assert np.array_equal(triggered[window], want.astype(np.uint8))


def test_contract() -> None:
    check_attack(ATTACKS.get("noisy-alignment"))
