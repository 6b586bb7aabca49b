"""The backdoor family by construction: `ssl-backdoor` and `ctrl` poisons (trigger where and
what the papers say, the budget, target-class images only, determinism), triggered test
inputs, and their evaluation (counts on the same triggered inputs for every encoder)."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError
from scipy.fft import dctn

from pe_bench.attacks.base import AttackContext, Task
from pe_bench.attacks.ctrl import RGB_TO_YUV, frequency_trigger
from pe_bench.plugins.types import ImageArray
from pe_bench.worker.evaluate import ProbeOutput, evaluate
from pe_bench.plugins.registry import ATTACKS
from tests.helpers import solid_images


def _task(size: int = 16, per_class: int = 8) -> Task:
    """Four classes; the attacker's split holds 3 images of each, with labels as pixel values."""
    labels = np.repeat(np.arange(4), per_class)
    own_labels = np.repeat(np.arange(4), 3)
    classes = ("a", "b", "c", "d")
    return Task("toy", ImageArray(solid_images(labels, size, seed=1), labels, classes),
                ImageArray(solid_images(labels, size, seed=2), labels, classes),
                ImageArray(solid_images(own_labels, size, noise=0, seed=3), own_labels, classes))


def _ctx(seed: int = 0, n_clean: int = 200, size: int = 16) -> AttackContext:
    pre = np.random.default_rng(5).integers(0, 256, (n_clean, 3, size, size), dtype=np.uint8)
    return AttackContext(pre, (_task(size),), seed)


def _changed(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """(M, H, W) mask of pixels a trigger changed in any channel."""
    return (before != after).any(axis=1)


# -- ssl-backdoor --------------------------------------------------------------------------------
def test_ssl_backdoor_poisons_are_patched_target_class_images_within_budget() -> None:
    attack = ATTACKS.get("ssl-backdoor").from_dict({"poison_rate": 0.05, "target_class": 2,
                                                    "patch_size": 4})
    ctx = _ctx()
    poisons = attack.craft(ctx)
    (group,) = poisons.groups
    assert poisons.size == 10 and poisons.targets == ()  # round(0.05 x 200), no target pairs
    own = ctx.tasks[0].attacker
    assert own is not None
    base = own.images[own.labels == 2][0]  # the attacker's class-2 images (noise-free, all alike)
    for poison in group:
        changed = _changed(base[None], poison[None])[0]
        ys, xs = np.nonzero(changed)
        assert changed.sum() <= 16 and np.ptp(ys) < 4 and np.ptp(xs) < 4  # one 4x4 patch, nothing else
        assert 4 <= ys.min() and ys.max() < 12 and 4 <= xs.min() and xs.max() < 12  # in [0.25, 0.75]
    assert poisons.info["target_classes"] == {"toy": 2}


def test_ssl_backdoor_is_deterministic_and_its_pattern_follows_the_seed() -> None:
    cls = ATTACKS.get("ssl-backdoor")
    a, b, c = (cls.from_dict({"target_class": 1}).craft(_ctx(seed)) for seed in (0, 0, 1))
    assert np.array_equal(a.groups[0], b.groups[0])
    assert not np.array_equal(a.groups[0], c.groups[0])


def test_ssl_backdoor_triggers_every_other_class_test_input_at_test_positions() -> None:
    attack = ATTACKS.get("ssl-backdoor").from_dict({"target_class": 3, "patch_size": 2})
    ctx = _ctx()
    (trig,) = attack.triggered_tests(ctx)
    test = ctx.tasks[0].test
    assert trig.target_class == 3 and np.array_equal(trig.index, np.flatnonzero(test.labels != 3))
    changed = _changed(test.images[trig.index], trig.images)
    assert changed.any(axis=(1, 2)).all() and (changed.sum(axis=(1, 2)) <= 4).all()
    ys, xs = np.nonzero(changed.any(axis=0))
    assert ys.min() >= 1 and ys.max() < 15 and xs.min() >= 1 and xs.max() < 15  # within [0.10, 0.90]


@pytest.mark.parametrize("bad", [{"patch_size": 0}, {"poison_range": [0.6, 0.4]}, {"pattern": "x"},
                                 {"poison_rate": 0}, {"target_class": -1}, {"patch": 3}])
def test_ssl_backdoor_params_are_validated(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        ATTACKS.get("ssl-backdoor").from_dict(bad)


def test_a_target_class_the_task_lacks_is_an_error_naming_it() -> None:
    with pytest.raises(ValueError, match="target_class 7"):
        ATTACKS.get("ssl-backdoor").from_dict({"target_class": 7}).craft(_ctx())


def test_random_target_classes_are_drawn_per_seed_and_shared_by_backdoors() -> None:
    drawn = {seed: ATTACKS.get("ssl-backdoor")().craft(_ctx(seed)).info["target_classes"]["toy"]
             for seed in range(8)}
    assert len(set(drawn.values())) > 1
    assert all(ATTACKS.get("ctrl")().craft(_ctx(s, size=32)).info["target_classes"]["toy"] == c
               for s, c in list(drawn.items())[:3])


# -- ctrl --------------------------------------------------------------------------------------
def _yuv(images: np.ndarray) -> np.ndarray:
    return np.einsum("yc,nchw->nyhw", RGB_TO_YUV, images.astype(np.float64))


def test_ctrl_adds_its_magnitude_at_the_chosen_chroma_frequencies_only() -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(60, 196, (4, 3, 32, 32), dtype=np.uint8)  # no clipping at the default
    params = ATTACKS.get("ctrl").Params()
    delta = dctn(_yuv(frequency_trigger(images, params)) - _yuv(images), axes=(2, 3), norm="ortho")
    for channel in (1, 2):  # U and V: +100 at (15, 15) and (31, 31), up to rounding to uint8
        assert np.allclose(delta[:, channel, 15, 15], 100, atol=6)
        assert np.allclose(delta[:, channel, 31, 31], 100, atol=6)
    others = np.abs(delta).copy()
    others[:, 1:, 15, 15] = others[:, 1:, 31, 31] = 0
    assert others.max() < 6  # rounding noise everywhere else, luma included
    assert np.abs(frequency_trigger(images, params).astype(int) - images).max() <= 30  # faint


def test_ctrl_works_per_window_and_rejects_what_it_cannot_transform() -> None:
    cls = ATTACKS.get("ctrl")
    small = cls.Params(window_size=8, frequencies=(7,))
    images = np.full((1, 3, 16, 16), 128, dtype=np.uint8)
    out = frequency_trigger(images, small)
    assert np.array_equal(out[:, :, :8, :8], out[:, :, 8:, 8:])  # the same trigger in every window
    with pytest.raises(ValueError, match="window_size 32"):
        frequency_trigger(images, cls.Params(window_size=32))
    with pytest.raises(ValueError, match="RGB"):
        frequency_trigger(np.zeros((1, 1, 32, 32), np.uint8), cls.Params())
    with pytest.raises(ValidationError, match="outside a window"):
        cls.from_dict({"window_size": 8, "frequencies": [8]})


def test_ctrl_poisons_are_triggered_target_class_images_and_tests_get_the_same_trigger() -> None:
    attack = ATTACKS.get("ctrl").from_dict({"poison_rate": 0.1, "target_class": 0})
    ctx = _ctx(size=32)
    poisons, (trig,) = attack.craft(ctx), attack.triggered_tests(ctx)
    own = ctx.tasks[0].attacker
    assert own is not None and poisons.size == 20
    expected = frequency_trigger(own.images[own.labels == 0][:1], attack.params)[0]
    assert all(np.array_equal(p, expected) for p in poisons.groups[0])  # the class-0 images, cycled
    test = ctx.tasks[0].test
    assert np.array_equal(trig.images, frequency_trigger(test.images[trig.index], attack.params))


# -- evaluation ----------------------------------------------------------------------------------
def _fixed(pred_of: dict[int, int], n_classes: int = 4):
    """A classifier predicting each image's class from its first pixel's value, overridden for
    images whose first pixel is a key of `pred_of`."""
    def classify(task: Task) -> ProbeOutput:
        first = task.test.images[:, 0, 0, 0].astype(int)
        pred = np.array([pred_of.get(v, min(3, max(0, (v - 10) // 20))) for v in first])
        proba = np.eye(n_classes)[pred]
        return ProbeOutput(pred, proba)
    return classify


def test_triggered_inputs_are_counted_per_encoder_and_leave_accuracy_alone() -> None:
    task = _task(size=4)
    test = task.test
    index = np.flatnonzero(test.labels != 1)
    stamped = test.images[index].copy()
    stamped[:, :, 0, 0] = 255  # the "trigger": the first pixel
    from pe_bench.attacks.base import TriggeredTest

    trig = TriggeredTest("toy", 1, index, stamped)
    plain, _ = evaluate([task], _fixed({}), _fixed({}), ())
    clean, (per_task,) = evaluate([task], _fixed({}), _fixed({255: 1}), (), None, [trig])
    assert (clean.ca, clean.pa) == (plain.ca, plain.pa)
    assert (per_task.n_triggered, per_task.triggered_hits, per_task.triggered_hits_clean) == (24, 24, 0)
    assert (clean.asr, clean.baseline_asr, clean.asr_undefended) == (1.0, 0.0, 1.0)
    assert clean.n_targets == 0 and per_task.targets == ()
