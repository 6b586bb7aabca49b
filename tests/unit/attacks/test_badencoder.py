"""BadEncoder (the encoder-stage attack): its loss, its trigger, and the engine path that
fine-tunes the clean twin instead of poisoning pre-training."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from pe_bench.attacks.badencoder import BadEncoder, badencoder_loss
from pe_bench.worker.pipeline import run_trial
from pe_bench.plugins.registry import ENCODERS
from pe_bench.testing import tiny_context

from tests.unit.worker.test_pipeline import spec


def _cos(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


def _slow_loss(trig: torch.Tensor, refs: torch.Tensor, refs_clean: torch.Tensor, shadow: torch.Tensor,
               shadow_clean: torch.Tensor, l1: float, l2: float) -> float:
    """The paper's loss written out term by term with plain floats."""
    t, r, rc, s, sc = (x.tolist() for x in (trig, refs, refs_clean, shadow, shadow_clean))
    effect = -sum(_cos(a, b) for a in t for b in r) / (len(t) * len(r))
    keep = -sum(_cos(a, b) for a, b in zip(r, rc, strict=True)) / len(r)
    utility = -sum(_cos(a, b) for a, b in zip(s, sc, strict=True)) / len(s)
    return effect + l1 * keep + l2 * utility


@pytest.mark.parametrize(("l1", "l2"), [(1.0, 1.0), (0.5, 2.0), (0.0, 0.0)])
def test_loss_matches_the_papers_terms(l1: float, l2: float) -> None:
    g = torch.Generator().manual_seed(0)
    trig, shadow, shadow_clean = (torch.randn(5, 4, generator=g, dtype=torch.float64) for _ in range(3))
    refs, refs_clean = (torch.randn(2, 4, generator=g, dtype=torch.float64) for _ in range(2))
    fast = float(badencoder_loss(trig, refs, refs_clean, shadow, shadow_clean, l1, l2))
    assert fast == pytest.approx(_slow_loss(trig, refs, refs_clean, shadow, shadow_clean, l1, l2), abs=1e-12)


def test_the_loss_is_minimal_when_triggers_hit_the_reference_and_clean_inputs_stay() -> None:
    g = torch.Generator().manual_seed(1)
    refs, shadow = torch.randn(1, 4, generator=g), torch.randn(6, 4, generator=g)
    best = badencoder_loss(refs.repeat(6, 1) * 3, refs, refs, shadow, shadow, 1.0, 1.0)
    assert float(best) == pytest.approx(-3.0, abs=1e-6)
    assert float(badencoder_loss(shadow, refs, refs, shadow, shadow, 1.0, 1.0)) > float(best)


def test_trigger_is_a_white_corner_patch_on_the_other_classes_only() -> None:
    ctx = tiny_context()
    attack = BadEncoder.from_dict({"patch_size": 3, "target_class": 2})
    (trig,) = attack.triggered_tests(ctx)
    test = ctx.tasks[0].test
    assert trig.target_class == 2 and np.array_equal(trig.index, np.flatnonzero(test.labels != 2))
    assert (trig.images[:, :, 4:7, 4:7] == 255).all()  # 8x8 images: one pixel from the corner
    untouched = np.ones((8, 8), dtype=bool)
    untouched[4:7, 4:7] = False
    assert np.array_equal(trig.images[:, :, untouched], test.images[trig.index][:, :, untouched])
    assert attack.craft(ctx).size == 0


def _backdoored(seed: int) -> dict[str, torch.Tensor]:
    encoder = ENCODERS.get("simclr")
    torch.manual_seed(0)
    model = encoder.from_dict(encoder.contract_params()).eval()
    ctx = tiny_context(seed)
    out = BadEncoder.from_dict({"patch_size": 3, "steps": 6, "batch_size": 8}).backdoor_encoder(model, ctx)
    return {k: v.clone() for k, v in out.state_dict().items()}


def test_backdoor_encoder_is_deterministic_and_moves_only_the_encoder() -> None:
    encoder = ENCODERS.get("simclr")
    torch.manual_seed(0)
    model = encoder.from_dict(encoder.contract_params())
    clean = model.state_dict()
    norms = {f"{name}.{key}" for name, m in model.named_modules()
             if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for key in m.state_dict()}
    first, again, other = _backdoored(0), _backdoored(0), _backdoored(1)
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert any(not torch.equal(first[k], other[k]) for k in first)
    moved = {k for k in first if not torch.equal(first[k], clean[k])}
    assert moved and all(k.startswith("backbone.") for k in moved)
    assert norms and not moved & norms  # BatchNorm frozen, statistics included


def test_trial_backdoors_the_cached_twin_without_poisons(tmp_path: Path) -> None:
    attack = {"patch_size": 3, "steps": 4, "batch_size": 32}
    first = run_trial(spec("simclr", "badencoder", **attack), Path("unused"), tmp_path)
    assert first.n_poisons == 0 and first.cache_hits == 0 and first.asr is not None
    assert first.baseline_asr is not None and first.tasks[0].n_triggered > 0
    clean = run_trial(spec("simclr", "none"), Path("unused"), tmp_path)
    assert clean.cache_hits == 1 and clean.ca == first.ca  # the same clean twin, from the cache
    again = run_trial(spec("simclr", "badencoder", **attack), Path("unused"), tmp_path)
    assert again.cache_hits == 2  # the twin and its backdoored copy
    assert (again.asr, again.pa) == (first.asr, first.pa)
    other = run_trial(spec("simclr", "badencoder", **{**attack, "steps": 6}), Path("unused"), tmp_path)
    assert other.cache_hits == 1  # another attack spec: the twin is shared, the copy is not


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_backdoored_twin_sends_triggered_digits_to_the_target_class(tmp_path: Path, seed: int) -> None:
    """By effect, every seed of a tiny digits setting (16x16, 256 pre-training images, 3 epochs;
    a 4x4 white corner trigger, 200 fine-tuning steps of 32 at lr 0.05 on the attacker's 60
    images). Measured at seeds 0 / 1 / 2 (one thread): ASR 0.64 / 0.72 / 0.28 vs 0.01 / 0.01 /
    0.16 for the clean twins on the same triggered inputs, CA 0.73 / 0.75 / 0.76 -> PA 0.65 /
    0.73 / 0.71. Every seed shows the effect, its size varies 2.5-fold; the margin asserted is
    0.1 (seed 2's is 0.12), and the clean accuracy may drop by at most 0.1. The twins pre-train
    in fp32, where these were measured: BadEncoder's own fine-tuning is fp32 either way, and a
    3-epoch twin pre-trained in bf16 is another draw (seed 2's margin was 0.07 there)."""
    base = spec("simclr", "badencoder", patch_size=4, steps=200, batch_size=32, lr=0.05)
    trial = base.model_copy(update={"seed": seed, "train": base.train.replace(epochs=3, amp=False)})
    out = run_trial(trial, Path("unused"), tmp_path)
    assert out.asr is not None and out.baseline_asr is not None
    assert out.asr > out.baseline_asr + 0.1
    assert out.pa > out.ca - 0.1


def test_shadow_batches_follow_the_releases_loader() -> None:
    """Full batches of a fresh permutation per epoch, the partial one dropped, as many epochs as
    the steps need; a set smaller than a batch is one batch. The release's budget: a 50,000-image
    shadow set at batch 256 gives 195 steps an epoch, 39,000 over 200 epochs."""
    import torch

    from pe_bench.attacks.badencoder import BadEncoderParams, shadow_batches

    gen = torch.Generator().manual_seed(0)
    batches = list(shadow_batches(10, 4, 5, gen))
    assert [len(b) for b in batches] == [4] * 5
    for epoch in (batches[0:2], batches[2:4]):  # two full batches an epoch, two images dropped
        assert len(set(torch.cat(epoch).tolist())) == 8
    assert [len(b) for b in shadow_batches(3, 256, 4, gen)] == [3] * 4
    assert BadEncoderParams().steps == (50_000 // 256) * 200 == 39_000
