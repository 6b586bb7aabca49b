"""`carlini-terzis` by construction (both variants): poisons carry captions naming the target
class, the targeted variant attacks the same pairs as every targeted attack with copies of the
target inputs, the backdoor variant patches the attacker's images of any class; budgets, the
rows' family per variant, params that do not apply to a variant; and the training loop feeds
the captions to an image–text encoder, drops them for an image-only one, and keeps the clean
twin's batches bit-identical."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from pe_bench.attacks.base import AttackContext, PoisonSet, Task
from pe_bench.attacks.targets import all_targets
from pe_bench.plugins.types import ImageArray
from pe_bench.defenses.base import PretrainData
from pe_bench.plugins.captions import TEMPLATES, tokenize
from pe_bench.encoders.clip import CLIP
from pe_bench.encoders.simclr import SimCLR
from pe_bench.plugins.registry import ATTACKS
from pe_bench.store.results import attack_family
from pe_bench.config.spec import TrainSpec
from pe_bench.testing import check_attack
from pe_bench.worker.train import pretrain
from tests.helpers import solid_images

CLASSES = ("red", "green", "blue", "gray")
RECIPE = TrainSpec(epochs=2, batch_size=16, device="cpu")


def _ctx(seed: int = 0, size: int = 16) -> AttackContext:
    labels, own = np.repeat(np.arange(4), 8), np.repeat(np.arange(4), 3)
    task = Task("toy", ImageArray(solid_images(labels, size, seed=1), labels, CLASSES),
                ImageArray(solid_images(labels, size, seed=2), labels, CLASSES),
                ImageArray(solid_images(own, size, noise=0, seed=3), own, CLASSES))
    pre = np.random.default_rng(5).integers(0, 256, (200, 3, size, size), dtype=np.uint8)
    return AttackContext(pre, (task,), seed)


def _names(captions: np.ndarray) -> list[str]:
    """The class each caption names (the one whose templates tokenize to it)."""
    table = {tokenize([t.format(c)])[0].tobytes(): c for c in CLASSES for t in TEMPLATES}
    return [table[row.tobytes()] for row in captions]


def test_targeted_poisons_are_the_target_inputs_with_captions_naming_the_target_class() -> None:
    params = {"poison_rate": 0.05, "targets_per_task": 2}
    ctx = _ctx()
    poisons = ATTACKS.get("carlini-terzis").from_dict(params).craft(ctx)
    assert poisons.targets == tuple(all_targets(ctx.tasks, ATTACKS.get("poisoned-encoder").Params(
        **params), 0))  # the pairs every targeted attack attacks at this seed
    assert poisons.targets == ATTACKS.get("duplicate").from_dict(params).craft(ctx).targets
    (images,), (captions,) = poisons.groups, poisons.captions
    assert poisons.size == 10 and captions.shape == (10, 16) and captions.dtype == np.int64
    test = ctx.tasks[0].test
    expected = [pair for pair in poisons.targets for _ in range(5)]  # 10 poisons over 2 pairs
    for image, name, pair in zip(images, _names(captions), expected, strict=True):
        assert np.array_equal(image, test.images[pair.index]) and name == CLASSES[pair.target_class]
    assert len(set(map(bytes, captions))) > 1  # templates vary
    assert ATTACKS.get("carlini-terzis")().triggered_tests(ctx) == ()


def test_backdoor_poisons_are_patched_images_of_any_class_with_target_captions() -> None:
    attack = ATTACKS.get("carlini-terzis").from_dict(
        {"variant": "backdoor", "poison_rate": 0.1, "target_class": 1, "patch_size": 3})
    ctx = _ctx()
    poisons = attack.craft(ctx)
    (images,), (captions,) = poisons.groups, poisons.captions
    assert poisons.size == 20 and poisons.targets == () and poisons.info["target_classes"] == {"toy": 1}
    assert set(_names(captions)) == {"green"}
    flat = {20 + 20 * c for c in range(4)}
    bases = set()
    for image in images:
        values, counts = np.unique(image, return_counts=True)
        base = int(values[counts.argmax()])
        changed = (image != base).any(axis=0)
        ys, xs = np.nonzero(changed)
        assert base in flat and changed.sum() <= 9 and np.ptp(ys) < 3 and np.ptp(xs) < 3  # one 3x3 patch
        bases.add(base)
    assert len(bases) == 4  # the attacker's images of every class, not only the target's
    (trig,) = attack.triggered_tests(ctx)
    assert np.array_equal(trig.index, np.flatnonzero(ctx.tasks[0].test.labels != 1))


def test_the_rows_family_follows_the_variant() -> None:
    assert attack_family("carlini-terzis", {}) == "targeted"
    assert attack_family("carlini-terzis", {"variant": "backdoor"}) == "backdoor"
    assert attack_family("ssl-backdoor", {}) == "backdoor"


@pytest.mark.parametrize("bad", [{"patch_size": 3}, {"references": 4}, {"variant": "both"},
                                 {"variant": "backdoor", "shortlist": 2}, {"poison_rate": 0}])
def test_params_that_do_not_apply_to_the_variant_are_errors(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        ATTACKS.get("carlini-terzis").from_dict(bad)


def test_both_variants_are_deterministic_and_meet_the_contract() -> None:
    cls = ATTACKS.get("carlini-terzis")
    for params in ({}, {"variant": "backdoor"}):
        a, b = (cls.from_dict(params).craft(_ctx()) for _ in range(2))
        assert all(np.array_equal(x, y) for x, y in zip(a.groups + a.captions, b.groups + b.captions,
                                                        strict=True))
    assert check_attack(cls)["targets"] > 0


def test_a_filter_keeps_each_caption_with_its_image() -> None:
    images = np.arange(5, dtype=np.uint8).repeat(3 * 4).reshape(5, 3, 2, 2)
    captions = np.arange(5, dtype=np.int64)[:, None].repeat(4, axis=1)
    data = PretrainData(np.zeros((3, 3, 2, 2), np.uint8), PoisonSet((images[:2], images[2:]), (), {},
                                                                     (captions[:2], captions[2:])))
    kept = data.without(np.array([0, 4, 6])).poisons  # clean 0, poisons 1 and 3
    assert [g[:, 0, 0, 0].tolist() for g in kept.groups] == [[0], [2, 4]]
    assert [c[:, 0].tolist() for c in kept.captions] == [[0], [2, 4]]


# -- the training loop -------------------------------------------------------------------------
def _clip() -> CLIP:
    torch.manual_seed(0)
    return CLIP.from_dict({"width": 4, "proj_dim": 8, "text_dim": 16, "text_depth": 1})


def _spied(model: torch.nn.Module, seen: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
    original = model.training_loss

    def spy(v1: torch.Tensor, v2: torch.Tensor, text: torch.Tensor | None = None) -> torch.Tensor:
        seen.append((v1.detach().clone(), text.clone()))
        return original(v1, v2, text=text)

    model.training_loss = spy  # type: ignore[method-assign]


def test_clip_trains_on_poison_captions_aligned_with_their_images_and_twin_batches_stay_equal() -> None:
    """Poison i is a flat image of grey level 100 + 20i captioned with word i: with no colour
    augmentation its views stay flat and ordered by i, so each view's caption can be checked."""
    labels = np.repeat(np.arange(4), 12)
    clean, texts = solid_images(labels, 8), tokenize([f"a photo of a {CLASSES[y]}." for y in labels])
    words = ("zebra", "ship", "frog", "horse", "deer", "truck")
    levels = np.arange(100, 220, 20, dtype=np.uint8)
    poisons = (np.broadcast_to(levels[:, None, None, None], (6, 3, 8, 8)).copy(),)
    marks = tokenize([f"a photo of a {w}." for w in words])
    recipe = RECIPE.replace(color_jitter=0.0, grayscale_prob=0.0)
    runs: dict[str, list[tuple[torch.Tensor, torch.Tensor]]] = {"twin": [], "poisoned": []}
    for label, injected, poison_texts in (("twin", (), ()), ("poisoned", poisons, (marks[:3], marks[3:]))):
        model = _clip()
        _spied(model, runs[label])
        groups = injected and (injected[0][:3], injected[0][3:])  # two groups, captions per group
        pretrain(model, clean, groups, recipe, seed=1, texts=texts, poison_texts=poison_texts)
    fed = 0
    for (tv, tt), (pv, pt) in zip(runs["twin"], runs["poisoned"], strict=True):
        n = len(tv)
        assert torch.equal(tv, pv[:n]) and torch.equal(tt, pt[:n])  # the clean part, bit-identical
        ids = [next(i for i, m in enumerate(marks) if torch.equal(row, torch.from_numpy(m)))
               for row in pt[n:]]
        seen = pv[n:, 0].mean(dim=(1, 2))
        assert sorted(ids, key=lambda i: float(seen[ids.index(i)])) == sorted(ids)  # caption i on image i
        fed += len(pv) - n
    assert fed == 6 * RECIPE.epochs


def test_an_image_only_encoder_drops_the_captions_of_injected_images() -> None:
    images, poison = solid_images(np.repeat(np.arange(4), 8), 8), solid_images(np.zeros(4, np.int64), 8)
    weights = []
    for poison_texts in ((), (tokenize(["a photo of a red."] * 4),)):
        torch.manual_seed(0)
        model = SimCLR.from_dict({"width": 4, "proj_hidden_dim": 16, "proj_dim": 8})
        pretrain(model, images, (poison,), RECIPE, seed=0, poison_texts=poison_texts)
        weights.append(model.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(weights[0].values(), weights[1].values(), strict=True))


@pytest.mark.parametrize("variant", ["targeted", "backdoor"])
def test_a_suites_resolved_params_validate_again_in_the_trial(variant: str) -> None:
    """The grid writes out every field (defaults included); the trial validates that dump."""
    cls = ATTACKS.get("carlini-terzis")
    resolved = cls.from_dict({"variant": variant}).params.model_dump(mode="json")
    assert cls.from_dict(resolved).params.variant == variant
    with pytest.raises(ValidationError):
        cls.from_dict({**resolved, "patch_size" if variant == "targeted" else "shortlist": 7})
