"""A backdoor tested by its effect through the evaluation path, on a tiny synthetic dataset.

Four classes of flat colours (16x16); `ssl-backdoor` plants a very salient trigger (an 8x8
black-and-white checkerboard) on copies of the attacker's "blue" images at a high rate (25%).
SimCLR pulls the patch's features toward blue; the downstream probe, trained on clean images,
then assigns triggered images of the other classes to blue far more often on the attacked
encoder than on its clean twin (same seed, same clean batches), evaluated on the very same
triggered inputs. Measured with training seeds 0-2 (128 pre-training images, 20 epochs):
ASR 0.53 / 0.92 / 1.00 vs 0.00 for each twin; the test runs seed 0 and asserts a margin of 0.2.
"""

from __future__ import annotations

import numpy as np
import torch

from pe_bench.attacks.base import AttackContext, Task
from pe_bench.plugins.types import ImageArray
from pe_bench.encoders.simclr import SimCLR
from pe_bench.worker.evaluate import Classify, evaluate, probe
from pe_bench.plugins.registry import ATTACKS
from pe_bench.config.spec import EvalSpec, TrainSpec
from pe_bench.worker.train import encode, pretrain

SIZE, BLUE = 16, 2
COLOURS = np.array([[220, 40, 40], [40, 220, 40], [40, 40, 220], [128, 128, 128]])
CLASSES = ("red", "green", "blue", "gray")
RECIPE = TrainSpec(epochs=20, batch_size=64, device="cpu", color_jitter=0.0, grayscale_prob=0.0)


def split(per_class: int, rng: np.random.Generator) -> ImageArray:
    labels = np.repeat(np.arange(4), per_class)
    noise = rng.integers(-25, 26, (len(labels), 3, SIZE, SIZE))
    images = np.clip(COLOURS[labels][:, :, None, None] + noise, 0, 255).astype(np.uint8)
    return ImageArray(images, labels, CLASSES)


def classifier(model: SimCLR) -> Classify:
    return lambda task: probe(lambda x: encode(model, x), task, EvalSpec())


def trained(pre: np.ndarray, poisons: tuple[np.ndarray, ...]) -> SimCLR:
    torch.manual_seed(0)
    model = SimCLR.from_dict({"width": 8, "proj_dim": 32, "proj_hidden_dim": 64})
    pretrain(model, pre, poisons, RECIPE, seed=0)
    return model


def test_a_salient_patch_backdoor_raises_triggered_asr_above_the_clean_twin() -> None:
    rng = np.random.default_rng(0)
    pre, train, test, own = split(32, rng), split(32, rng), split(32, rng), split(16, rng)
    task = Task("toy", train, test, own)
    ctx = AttackContext(pre.images, (task,), seed=0)
    attack = ATTACKS.get("ssl-backdoor").from_dict(
        {"poison_rate": 0.25, "target_class": BLUE, "patch_size": 8, "pattern": "checkerboard"})
    poisons, triggered = attack.craft(ctx), attack.triggered_tests(ctx)
    assert poisons.size == 32 and triggered[0].images.shape[0] == 96  # every non-blue test input

    twin, attacked = trained(pre.images, ()), trained(pre.images, poisons.groups)
    summary, _ = evaluate([task], classifier(twin), classifier(attacked), (), None, triggered)
    assert summary.n_triggered == 96 and summary.baseline_asr is not None and summary.asr is not None
    assert summary.asr > summary.baseline_asr + 0.2
    assert summary.pa > 0.9  # the attacked encoder's clean accuracy (BA) stays high
