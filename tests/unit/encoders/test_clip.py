"""The CLIP-style encoder: captions, tokens, training on image–caption pairs, zero-shot, and
the exclusion of cells whose attack cannot supply captions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pe_bench.plugins.captions import TEMPLATES, captions, class_prompts, tokenize
from pe_bench.encoders.clip import CLIP
from pe_bench.config.grid import expand
from pe_bench.config.spec import TrainSpec
from pe_bench.config.suite import load_suite
from pe_bench.worker.train import encode, pretrain
from tests.helpers import solid_images

CLASSES = ("red", "green", "blue", "gray")


def _model() -> CLIP:
    torch.manual_seed(0)
    return CLIP.from_dict({"width": 8, "proj_dim": 32, "text_dim": 32, "text_depth": 1})


def test_tokens_are_deterministic_and_padded() -> None:
    ids = tokenize(["a photo of a cat.", "A PHOTO of a cat", "a dog"], max_tokens=6)
    assert ids.shape == (3, 6) and ids.dtype == np.int64
    assert (ids[0] == ids[1]).all() and ids[0, 4] != 0 and ids[0, 5] == 0
    assert (ids[2, 2:] == 0).all() and ids[2, 1] != ids[0, 4]


def test_captions_name_the_class() -> None:
    labels = np.array([0, 3, 1])
    text = captions(labels, CLASSES, seed=0)
    assert all(c in t for c, t in zip(("red", "gray", "green"), text, strict=True))
    assert captions(labels, CLASSES, seed=0) == text
    assert class_prompts(CLASSES).shape[:2] == (4, len(TEMPLATES))


def test_clip_learns_and_classifies_zero_shot() -> None:
    labels = np.repeat(np.arange(4), 24)
    images = solid_images(labels, size=8, noise=10)
    model = _model()
    losses: list[float] = []
    pretrain(model, images, (), TrainSpec(epochs=30, batch_size=32, device="cpu", lr=3e-3,
                                          crop_min_scale=0.5, color_jitter=0.0, grayscale_prob=0.0),
             seed=0, progress=lambda _, loss: losses.append(loss),
             texts=tokenize(captions(labels, CLASSES, seed=0)))
    assert losses[-1] < losses[0]
    proba = model.zero_shot_proba(encode(model, images), CLASSES)
    assert proba.shape == (96, 4) and np.allclose(proba.sum(1), 1, atol=1e-5)
    assert (proba.argmax(1) == labels).mean() > 0.5  # chance is 0.25


def test_clip_refuses_images_without_captions() -> None:
    images = solid_images(np.zeros(16, dtype=np.int64), size=8)
    with pytest.raises(ValueError, match="caption pairs"):
        pretrain(_model(), images, (), TrainSpec(epochs=1, batch_size=8, device="cpu"), seed=0)
    with pytest.raises(ValueError, match="no captions"):
        pretrain(_model(), images, (images[:2],), TrainSpec(epochs=1, batch_size=8, device="cpu"), seed=0,
                 texts=tokenize(["a photo of a red."] * 16))


def test_grid_excludes_incompatible_cells(tmp_path: Path) -> None:
    suite = tmp_path / "s.yaml"
    suite.write_text("""
name: clip-grid
seeds: [0]
datasets:
  - name: digits
    pretrain: {dataset: {name: digits, params: {resolution: 16}}}
    tasks: [{name: digits, dataset: {name: digits, params: {resolution: 16}}}]
encoders: [simclr, clip]
attacks: [none, poisoned-encoder]
evaluation: {probe: zero-shot}
""")
    grid = expand(load_suite(suite))
    assert [(t.encoder.name, t.attack.name) for t in grid.trials] == [("clip", "none")]
    reasons = sorted(e.reason for e in grid.excluded)
    assert any("injects image data only; encoder clip trains on image+text" in r for r in reasons)
    assert sum("zero-shot evaluation needs a text encoder" in r for r in reasons) == 2
