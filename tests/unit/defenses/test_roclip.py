"""`roclip` by construction: each image is paired with its nearest pool caption, the pool is a
FIFO of recent captions that is the same under a seed, only every K-th epoch matches, nothing
changes without the defense (recipes, keys, weights of every encoder), and the grid excludes
image-only encoders with the reason; by effect: on a toy where caption poisoning flips a
target's zero-shot class, roclip flips it back."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pe_bench.defenses.roclip import RoCLIP
from pe_bench.encoders.base import EncoderMethod
from pe_bench.encoders.caption_pool import CaptionPool, nearest
from pe_bench.plugins.captions import captions, tokenize
from pe_bench.encoders.clip import CLIP
from pe_bench.encoders.simclr import SimCLR
from pe_bench.config.grid import inapplicable
from pe_bench.config.spec import CaptionMatching, TrainSpec
from pe_bench.testing import check_defense
from pe_bench.worker.train import encode, pretrain
from tests.helpers import solid_images

CLASSES = ("red", "green", "blue", "gray")
RECIPE = TrainSpec(epochs=4, batch_size=8, device="cpu")
LABELS = np.repeat(np.arange(4), 6)


def _clip() -> CLIP:
    torch.manual_seed(0)
    return CLIP.from_dict({"width": 4, "proj_dim": 8, "text_dim": 16, "text_depth": 1})


def _train(model: EncoderMethod, recipe: TrainSpec, seed: int = 1) -> dict[str, torch.Tensor]:
    texts = tokenize([f"a photo of a {CLASSES[y]}." for y in LABELS])
    poison = (solid_images(np.zeros(3, np.int64), 8, seed=4),)
    captions = (tokenize(["a photo of a gray."] * 3),)
    pretrain(model, solid_images(LABELS, 8), poison, recipe, seed=seed, texts=texts,
             poison_texts=captions if "text" in model.modalities else ())
    return {k: v.clone() for k, v in model.state_dict().items()}


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_each_image_is_paired_with_its_nearest_pool_caption() -> None:
    gen = torch.Generator().manual_seed(0)
    images, pool = torch.randn(20, 6, generator=gen), torch.randn(9, 6, generator=gen)
    sims = (images / images.norm(dim=1, keepdim=True)) @ (pool / pool.norm(dim=1, keepdim=True)).t()
    assert torch.equal(nearest(images, pool), sims.argmax(dim=1))
    axes = torch.eye(4)  # the nearest by angle, not by length
    assert nearest(torch.tensor([[0.0, 5, 1, 0], [0.1, 0, 0, -3]]), axes * 7).tolist() == [1, 0]
    bank = CaptionPool(size=9, every=1)
    bank.push(pool)
    bank.start_epoch(0)
    own = torch.randn(20, 6, generator=gen)
    assert torch.equal(bank.partners(images, own), pool[sims.argmax(dim=1)])  # looked up before the push
    assert torch.equal(bank.bank, torch.cat([pool, own])[-9:])  # then the batch joins, oldest out


def test_the_pool_is_a_fifo_of_recent_detached_captions_and_gradients_skip_it() -> None:
    bank = CaptionPool(size=5, every=2)
    bank.start_epoch(0)  # not a matching epoch: own captions, but the pool fills
    first = torch.randn(3, 4, requires_grad=True)
    assert bank.partners(torch.randn(3, 4), first) is first
    second = torch.randn(4, 4)
    bank.push(second)
    assert torch.equal(bank.bank, torch.cat([first.detach(), second])[-5:])
    bank.start_epoch(1)
    images = torch.randn(2, 4, requires_grad=True)
    out = bank.partners(images, torch.randn(2, 4, requires_grad=True))
    assert not out.requires_grad  # a matching step trains the image side only
    empty = CaptionPool(size=5, every=1)
    empty.start_epoch(0)
    own = torch.randn(2, 4)
    assert empty.partners(torch.randn(2, 4), own) is own  # nothing to match against yet


@pytest.mark.parametrize(("every", "epochs", "matching"), [(2, 4, [1, 3]), (3, 6, [2, 5]), (1, 2, [0, 1])])
def test_only_every_kth_epoch_matches(every: int, epochs: int, matching: list[int],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[int, bool]] = []  # (epoch, whether a step replaced the captions)
    epoch = [-1]
    original_start, original_partners = CaptionPool.start_epoch, CaptionPool.partners

    def start(self: CaptionPool, e: int) -> None:
        epoch[0] = e
        original_start(self, e)

    def partners(self: CaptionPool, images: torch.Tensor, captions: torch.Tensor) -> torch.Tensor:
        out = original_partners(self, images, captions)
        seen.append((epoch[0], out is not captions))
        return out

    monkeypatch.setattr(CaptionPool, "start_epoch", start)
    monkeypatch.setattr(CaptionPool, "partners", partners)
    recipe = RECIPE.replace(epochs=epochs, caption_matching=CaptionMatching(pool_size=8, every=every))
    _train(_clip(), recipe)
    replaced = sorted({e for e, swapped in seen if swapped})
    assert replaced == matching and {e for e, _ in seen} == set(range(epochs))


def test_the_pool_is_the_same_under_a_seed_and_follows_the_batch_order() -> None:
    recipe = RECIPE.replace(caption_matching=CaptionMatching(pool_size=6, every=2))
    banks, weights = [], []
    for seed in (1, 1, 2):
        model = _clip()
        weights.append(_train(model, recipe, seed))
        assert model.caption_pool is not None and model.caption_pool.bank is not None
        banks.append(model.caption_pool.bank.clone())
    assert banks[0].shape == (6, 8) and torch.equal(banks[0], banks[1]) and _same(weights[0], weights[1])
    assert not torch.equal(banks[0], banks[2])


def test_nothing_changes_without_matching_epochs_or_for_image_only_encoders() -> None:
    plain = _train(_clip(), RECIPE)
    idle = _train(_clip(), RECIPE.replace(caption_matching=CaptionMatching(pool_size=8, every=99)))
    active = _train(_clip(), RECIPE.replace(caption_matching=CaptionMatching(pool_size=8, every=1)))
    assert _same(plain, idle)  # a pool that never matches only watches
    assert not _same(plain, active)
    simclr = [_train(_simclr(), r) for r in (RECIPE, RoCLIP().configure_training(RECIPE))]
    assert _same(*simclr)


def _simclr() -> SimCLR:
    torch.manual_seed(0)
    return SimCLR.from_dict({"width": 4, "proj_hidden_dim": 16, "proj_dim": 8})


def test_recipes_and_keys_without_the_defense_are_what_they_were() -> None:
    base = TrainSpec()
    assert "caption_matching" not in base.model_dump(mode="json")  # so no trial or cache key moves
    assert TrainSpec.model_validate(base.model_dump()) == base
    defended = RoCLIP.from_dict({"pool_size": 32, "every": 3}).configure_training(base)
    assert defended.caption_matching == CaptionMatching(pool_size=32, every=3)
    assert defended.replace(caption_matching=None) == base  # nothing else in the recipe moves
    assert defended.model_dump(mode="json")["caption_matching"] == {"pool_size": 32, "pool_fraction": 0.022,
                                                                    "every": 3}


def test_the_pool_is_a_share_of_the_clean_set_unless_its_size_is_set() -> None:
    """The release's 21,845-caption bank over 1M pairs: 2.2% (24 captions on digits' 1,078
    images), never the near-whole-set pool of 1,024 on 1,078 images it replaced."""
    matching = RoCLIP.from_dict({}).configure_training(TrainSpec()).caption_matching
    assert matching is not None and matching.pool(1078) == 24 and matching.pool(5000) == 110
    assert matching.pool(10) == 1 and CaptionMatching(pool_size=7).pool(1078) == 7


def test_the_grid_runs_roclip_on_image_text_encoders_only() -> None:
    assert inapplicable("carlini-terzis", "clip", "roclip") is None
    for encoder in ("simclr", "moco"):
        reason = inapplicable("carlini-terzis", encoder, "roclip")
        assert reason is not None and "roclip" in reason and "image+text" in reason
    assert inapplicable("carlini-terzis", "simclr", "early-stop") is None


def test_roclip_meets_the_defense_contract() -> None:
    assert check_defense(RoCLIP)["hooks"] == ("configure_training",)



def _target_probs(matching: CaptionMatching | None, seed: int) -> np.ndarray:
    """Zero-shot class probabilities of a red target image after pre-training on 160 solid
    images with their captions plus 12 copies of the target captioned "blue" (carlini-terzis'
    targeted poisons on a toy)."""
    labels = np.repeat(np.arange(4), 40)
    target = solid_images(np.zeros(1, np.int64), 8, seed=9)
    poisons = (np.repeat(target, 12, axis=0),)
    poison_texts = (tokenize(captions(np.full(12, 2), CLASSES, 1)),)
    torch.manual_seed(seed)
    model = CLIP.from_dict({"width": 8, "proj_dim": 32, "text_dim": 32, "text_depth": 1})
    # fp32, where the toy's effect was measured (in bf16 the undefended toy's poisoning misses at
    # seed 0: p(poisons' class) 0.40 vs 0.48 for the true one)
    recipe = TrainSpec(epochs=15, batch_size=32, device="cpu", optimizer="adamw", lr=2e-3,
                       weight_decay=0.1, caption_matching=matching, amp=False)
    pretrain(model, solid_images(labels, 8, seed=1), poisons, recipe, seed=seed,
             texts=tokenize(captions(labels, CLASSES, 0)), poison_texts=poison_texts)
    return model.zero_shot_proba(encode(model, target), CLASSES)[0]


@pytest.mark.parametrize("seed", [0, 1])
def test_roclip_undoes_a_targeted_caption_poisoning_on_a_toy(seed: int) -> None:
    """By effect (about 3 s a training): undefended, the target is read as the poisons' class;
    with roclip's defaults but a pool of 64 (the toy has 172 images), as its true class."""
    attacked = _target_probs(None, seed)
    defended = _target_probs(CaptionMatching(pool_size=64, every=2), seed)
    assert attacked.argmax() == 2 and defended.argmax() == 0
    assert defended[2] < attacked[2] / 2
