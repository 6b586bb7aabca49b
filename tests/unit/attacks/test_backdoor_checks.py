"""The backdoor family's shared rules, each pinned by a case that a plausible slip would break:
the budget (rounded, at least one per task, split over tasks), target classes drawn among the
attacker's classes, poisons cycling through every target-class image before reusing one, every
encoder shown the very same triggered inputs, and the overall ASR pooled over triggered inputs."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from pe_bench.attacks.base import AttackContext, Task, TriggeredTest
from pe_bench.attacks.ctrl import frequency_trigger
from pe_bench.plugins.types import ImageArray
from pe_bench.worker.evaluate import ProbeOutput, evaluate
from pe_bench.plugins.registry import ATTACKS
from tests.helpers import solid_images

CLASSES = ("a", "b", "c", "d")


def _task(name: str, offset: int = 0, own_labels: np.ndarray | None = None, size: int = 16,
          per_class: int = 8) -> Task:
    """Four classes of flat images (class c: 20 + 20c + `offset`); the attacker holds 3 of each
    class, or `own_labels`."""
    labels = np.repeat(np.arange(4), per_class)
    own = np.repeat(np.arange(4), 3) if own_labels is None else own_labels
    return Task(name, ImageArray(solid_images(labels, size, seed=1) + offset, labels, CLASSES),
                ImageArray(solid_images(labels, size, seed=2) + offset, labels, CLASSES),
                ImageArray(solid_images(own, size, noise=0, seed=3) + offset, own, CLASSES))


def _ctx(tasks: tuple[Task, ...], seed: int = 0, n_clean: int = 200, size: int = 16) -> AttackContext:
    pre = np.random.default_rng(5).integers(0, 256, (n_clean, 3, size, size), dtype=np.uint8)
    return AttackContext(pre, tasks, seed)


# -- budget, target classes, cycling ----------------------------------------------------------------
@pytest.mark.parametrize(("rate", "per_task"), [(0.013, (2, 1)), (0.001, (1, 1)), (0.05, (5, 5))])
def test_the_budget_is_rounded_at_least_one_per_task_and_split_over_tasks(
        rate: float, per_task: tuple[int, int]) -> None:
    """round(rate x 200) poisons (2.6 -> 3; 0.2 -> the floor of one per task), split evenly."""
    tasks = (_task("low"), _task("high", offset=120))  # poisons of "high" are bright
    attack = ATTACKS.get("ssl-backdoor").from_dict({"poison_rate": rate, "target_class": 1,
                                                    "patch_size": 2})
    poisons = attack.craft(_ctx(tasks))
    (group,) = poisons.groups
    bright = np.median(group.reshape(len(group), -1), axis=1) > 128
    assert (int((~bright).sum()), int(bright.sum())) == per_task
    assert poisons.info["n_poisons"] == sum(per_task)


def test_a_drawn_target_class_is_one_the_attacker_holds_images_of() -> None:
    task = _task("toy", own_labels=np.repeat([1, 2], 3))  # the attacker lacks classes 0 and 3
    drawn = {ATTACKS.get("ssl-backdoor")().craft(_ctx((task,), seed)).info["target_classes"]["toy"]
             for seed in range(10)}
    assert drawn == {1, 2}


def test_poisons_use_every_target_class_image_once_before_any_twice() -> None:
    rng = np.random.default_rng(0)
    own_labels = np.array([0, 0, 0, 1, 2, 3])
    own = rng.integers(60, 196, (6, 3, 32, 32), dtype=np.uint8)  # distinct images
    base = _task("toy", size=32)
    task = Task("toy", base.train, base.test, ImageArray(own, own_labels, CLASSES))
    attack = ATTACKS.get("ctrl").from_dict({"poison_rate": 0.035, "target_class": 0})  # 7 poisons
    (group,) = attack.craft(_ctx((task,), size=32)).groups
    sources = frequency_trigger(own[:3], attack.params)
    used = [int(np.flatnonzero([np.array_equal(p, s) for s in sources])[0]) for p in group]
    assert len(used) == 7 and sorted(used[:3]) == [0, 1, 2]  # each once first
    assert sorted(np.bincount(used, minlength=3).tolist()) == [2, 2, 3]


# -- evaluation ---------------------------------------------------------------------------------------
def _stamped(task: Task, target: int, stamp: bool = True) -> TriggeredTest:
    """The task's other-class test inputs, with the first pixel set to 255 (the "trigger")."""
    index = np.flatnonzero(task.test.labels != target)
    images = task.test.images[index].copy()
    if stamp:
        images[:, :, 0, 0] = 255
    return TriggeredTest(task.name, target, index, images)


def _keyed(target: int, seen: list[np.ndarray] | None = None) -> Callable[[Task], ProbeOutput]:
    """A classifier assigning the target class to every image whose first pixel is 255 (class 0
    otherwise); `seen` records the test images it was handed."""
    def classify(task: Task) -> ProbeOutput:
        if seen is not None:
            seen.append(task.test.images.copy())
        pred = np.where(task.test.images[:, 0, 0, 0] == 255, target, 0)
        return ProbeOutput(pred, np.eye(4)[pred])
    return classify


def test_every_encoder_is_shown_the_same_triggered_inputs_and_counted_on_them() -> None:
    task = _task("toy", size=4)
    trig = _stamped(task, target=1)
    trig.images[::2, :, 0, 0] = 7  # only every other input carries the "trigger"
    seen: dict[str, list[np.ndarray]] = {"clean": [], "poisoned": [], "undefended": []}
    _, (per_task,) = evaluate([task], _keyed(1, seen["clean"]), _keyed(1, seen["poisoned"]), (),
                              _keyed(1, seen["undefended"]), [trig])
    n = len(task.test)
    for name, (images,) in seen.items():
        assert np.array_equal(images[:n], task.test.images), name
        assert np.array_equal(images[n:], trig.images), name
    assert (per_task.n_triggered, per_task.triggered_hits, per_task.triggered_hits_clean,
            per_task.triggered_hits_undefended) == (24, 12, 12, 12)


def test_the_overall_asr_pools_triggered_inputs_over_tasks() -> None:
    big, small = _task("big", size=4), _task("small", size=4, per_class=4)
    triggered = [_stamped(big, 1), _stamped(small, 1, stamp=False)]  # 24 hit, 12 do not
    overall, rows = evaluate([big, small], _keyed(1), _keyed(1), (), None, triggered)
    assert [(r.n_triggered, r.triggered_hits) for r in rows] == [(24, 24), (12, 0)]
    assert (overall.n_triggered, overall.triggered_hits) == (36, 24)
    assert overall.asr == pytest.approx(24 / 36)  # not (1 + 0) / 2
    assert overall.baseline_asr == pytest.approx(24 / 36)


# -- where the trigger lies, and that it is one trigger per seed -----------------------------------
def _corners(images: np.ndarray, mark: np.ndarray) -> list[tuple[int, int]]:
    """Where `mark` lies in each image (exactly once each)."""
    size, out = mark.shape[-1], []
    for image in images:
        hits = [(y, x) for y in range(image.shape[1] - size + 1) for x in range(image.shape[2] - size + 1)
                if np.array_equal(image[:, y:y + size, x:x + size], mark)]
        assert len(hits) == 1
        out.append(hits[0])
    return out


def test_ssl_backdoor_poisons_and_test_inputs_carry_the_seeds_pattern_each_in_its_range() -> None:
    """Poisons: patch within [0.25, 0.75] of the side (corners 4..10 at 16 px, patch 2); test
    inputs: within the wider [0.10, 0.90] (corners 1..12), which they do reach beyond the
    poisons' range; the same seeded pattern on both."""
    from pe_bench.attacks.ssl_backdoor import trigger_pattern

    attack = ATTACKS.get("ssl-backdoor").from_dict({"poison_rate": 0.1, "target_class": 0,
                                                    "patch_size": 2})
    for seed in (0, 3):
        ctx = _ctx((_task("toy"),), seed)
        mark = trigger_pattern(attack.params, 3, seed, 2)
        poisons = _corners(attack.craft(ctx).groups[0], mark)
        tests = _corners(attack.triggered_tests(ctx)[0].images, mark)
        assert all(4 <= c <= 10 for corner in poisons for c in corner)
        assert all(1 <= c <= 12 for corner in tests for c in corner)
        assert any(not 4 <= c <= 10 for corner in tests for c in corner)


def test_corrupt_encoder_test_triggers_lie_within_the_test_range() -> None:
    from pe_bench.attacks.corrupt_encoder import trigger

    attack = ATTACKS.get("corrupt-encoder").from_dict({"target_class": 2, "patch_size": 4,
                                                       "test_range": [0.5, 1.0]})
    (trig,) = attack.triggered_tests(_ctx((_task("toy"),)))
    corners = _corners(trig.images, trigger(attack.params, 3, 0, 16))
    assert all(8 <= c <= 12 for corner in corners for c in corner)  # the bottom-right quarter


def test_badencoder_is_fine_tuned_on_the_trigger_it_is_tested_with(monkeypatch: pytest.MonkeyPatch) -> None:
    """With a seeded random pattern (not only the default white square), the triggered shadow
    images the encoder is fine-tuned on carry exactly the test inputs' patch."""
    import pe_bench.attacks.badencoder as badencoder
    from pe_bench.testing import tiny_context

    seen: dict[str, np.ndarray] = {}

    def record(model: object, p: object, shadow: np.ndarray, triggered: np.ndarray, refs: np.ndarray,
               seed: int) -> object:
        seen["triggered"] = triggered
        return model

    monkeypatch.setattr(badencoder, "_finetune", record)
    attack = badencoder.BadEncoder.from_dict({"patch_size": 3, "pattern": "random", "target_class": 2})
    for seed in (0, 1):
        ctx = tiny_context(seed)
        attack.backdoor_encoder(None, ctx)  # type: ignore[arg-type]
        (trig,) = attack.triggered_tests(ctx)
        patches = np.concatenate([seen["triggered"], trig.images])[:, :, 4:7, 4:7]  # 8x8 images
        assert (patches == patches[0]).all()
        assert not (patches[0] == 255).all()  # the random pattern, not a white square
