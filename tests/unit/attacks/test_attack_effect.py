"""PoisonedEncoder tested by its effect, on a tiny synthetic dataset (~10 s on one core).

Four classes of flat colours; the target input is a checkerboard never seen in pre-training;
its attacker-chosen class is "blue". With the concatenation poisons, SimCLR pulls the target's
features toward the blue class: cosine similarity to the blue centroid rises relative to the
clean twin (same seed, same clean batches) and to the `duplicate` baseline (same budget of
target-only copies). Margins measured with training seeds 0-2: +0.42/+0.38/+0.25 over
`duplicate` and +0.90/+0.51/+0.49 over the twin (blue-minus-red cosine); the test runs seed 0
and asserts +0.1 and +0.2.
"""

from __future__ import annotations

import numpy as np
import torch

from pe_bench.attacks.base import AttackContext, Task
from pe_bench.plugins.types import ImageArray
from pe_bench.encoders.simclr import SimCLR
from pe_bench.plugins.registry import ATTACKS
from pe_bench.config.spec import TrainSpec
from pe_bench.worker.train import encode, pretrain

SIZE, RED, BLUE = 16, 0, 2
COLOURS = np.array([[220, 40, 40], [40, 220, 40], [40, 40, 220], [128, 128, 128]])
RECIPE = TrainSpec(epochs=20, batch_size=64, device="cpu", color_jitter=0.0, grayscale_prob=0.0)


def flat(colour: int, n: int, rng: np.random.Generator) -> np.ndarray:
    x = COLOURS[colour][None, :, None, None] + rng.integers(-25, 26, (n, 3, SIZE, SIZE))
    return np.clip(x, 0, 255).astype(np.uint8)


def checkerboard() -> np.ndarray:
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    board = ((yy // 4 + xx // 4) % 2).astype(np.uint8)
    return np.stack([board * 230 + 10, board * 230 + 10, np.full((SIZE, SIZE), 20)]).astype(np.uint8)


def similarities(poisons: tuple[np.ndarray, ...], clean: np.ndarray,
                 probe: np.ndarray) -> tuple[float, float]:
    """Cosine of the target's features to the blue and to the red centroid."""
    torch.manual_seed(0)
    model = SimCLR.from_dict({"width": 8, "proj_dim": 32, "proj_hidden_dim": 64})
    pretrain(model, clean, poisons, RECIPE, seed=0)
    f = encode(model, probe)
    f = f / np.linalg.norm(f, axis=1, keepdims=True)
    return float(f[0] @ f[1:33].mean(0)), float(f[0] @ f[33:].mean(0))


def test_poisoned_encoder_pulls_the_target_toward_the_reference_class() -> None:
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), 64)
    clean = np.concatenate([flat(c, 64, rng) for c in range(4)])
    classes = ("red", "green", "blue", "gray")
    task = Task("toy", ImageArray(clean, labels, classes),
                ImageArray(checkerboard()[None], np.array([RED]), classes))
    ctx = AttackContext(pretrain=clean, tasks=(task,), seed=0)
    params = {"poison_rate": 0.25, "targets_per_task": 1, "references": 5, "target_class": BLUE}
    attack = ATTACKS.get("poisoned-encoder").from_dict({**params, "layouts": ["left", "right"]})
    poisons = attack.craft(ctx)
    copies = ATTACKS.get("duplicate").from_dict(params).craft(ctx)
    assert poisons.size == copies.size == 64

    probe = np.concatenate([checkerboard()[None], flat(BLUE, 32, rng), flat(RED, 32, rng)])
    twin = similarities((), clean, probe)
    dup = similarities(copies.groups, clean, probe)
    poisoned = similarities(poisons.groups, clean, probe)
    assert poisoned[0] > dup[0] + 0.1
    assert poisoned[0] - poisoned[1] > twin[0] - twin[1] + 0.2
