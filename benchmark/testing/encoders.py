"""`check_encoder`: the contract every encoder plugin meets, trained for one epoch on 32 tiny
images through pe-bench's own training loop (a few seconds on a CPU)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from pe_bench.encoders.base import EncoderMethod, EncoderParams
from pe_bench.plugins.captions import captions, tokenize
from pe_bench.plugins.types import EncoderMeta
from pe_bench.config.spec import TrainSpec
from pe_bench.testing.common import check_params, fail
from pe_bench.worker.train import encode, pretrain

OPTIMISER_FIELDS = {"optimizer", "lr", "weight_decay"}
CLASSES = ("cat", "dog")


def _metadata(cls: type[EncoderMethod]) -> EncoderMeta:
    meta = EncoderMeta.of(cls)
    if not isinstance(meta, EncoderMeta) or "image" not in meta.modalities:
        raise fail(cls, "an encoder trains on images: modalities must include 'image'")
    defaults = dict(meta.optimizer_defaults)
    if not set(defaults) <= OPTIMISER_FIELDS:
        raise fail(cls, f"optimizer_defaults may set {sorted(OPTIMISER_FIELDS)} only, not {sorted(defaults)}")
    TrainSpec.model_validate(defaults)
    return meta


def _trained(cls: type[EncoderMethod], meta: EncoderMeta) -> tuple[EncoderMethod, float]:
    """A seeded model trained one epoch on 32 random 16x16 images (captions if it reads text)."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (32, 3, 16, 16), dtype=np.uint8)
    texts = None
    if "text" in meta.modalities:
        texts = tokenize(captions(np.arange(32) % len(CLASSES), CLASSES, 0))
    torch.manual_seed(0)
    model = cls.from_dict(cls.contract_params())
    recipe = TrainSpec(epochs=1, batch_size=16, device="cpu", **dict(meta.optimizer_defaults))
    loss = pretrain(model, images, (), recipe, seed=0, texts=texts).final_loss
    return model, loss


def _check_features(cls: type[EncoderMethod], model: EncoderMethod) -> np.ndarray:
    images = np.random.default_rng(1).integers(0, 256, (6, 3, 16, 16), dtype=np.uint8)
    feats = encode(model, images, batch_size=4)
    if feats.shape != (6, model.feature_dim) or not np.isfinite(feats).all():
        raise fail(cls, f"features must be finite, (N, feature_dim={model.feature_dim}); got {feats.shape}")
    return feats


def _check_reload(cls: type[EncoderMethod], model: EncoderMethod, feats: np.ndarray) -> None:
    """The artefact cache stores state_dict(): a fresh model loaded from it is the same model."""
    torch.manual_seed(1)
    fresh = cls.from_dict(cls.contract_params())
    fresh.load_state_dict({k: v.clone() for k, v in model.state_dict().items()})
    images = np.random.default_rng(1).integers(0, 256, (6, 3, 16, 16), dtype=np.uint8)
    if not np.allclose(encode(fresh.eval(), images, batch_size=4), feats, atol=1e-5):
        raise fail(cls, "a model loaded from state_dict() must compute the same features "
                        "(keep all state in parameters and buffers)")


def _check_zero_shot(cls: type[EncoderMethod], model: EncoderMethod, feats: np.ndarray) -> None:
    proba = model.zero_shot_proba(feats, CLASSES)
    if proba.shape != (len(feats), len(CLASSES)) or not np.allclose(proba.sum(1), 1, atol=1e-4):
        raise fail(cls, "zero_shot_proba(features, classes) must return (N, C) probabilities")


def check_encoder(cls: type[EncoderMethod]) -> dict[str, Any]:
    """Every contract an encoder plugin must meet; returns what was checked."""
    check_params(cls, EncoderMethod, EncoderParams, {}, cls.contract_params())
    meta = _metadata(cls)
    model, loss = _trained(cls, meta)
    again, _ = _trained(cls, meta)
    state, other = model.state_dict(), again.state_dict()
    if set(state) != set(other) or any(not torch.equal(state[k], other[k]) for k in state):
        raise fail(cls, "initialisation and training must be deterministic under the seed")
    feats = _check_features(cls, model)
    _check_reload(cls, model, feats)
    if "text" in meta.modalities:
        _check_zero_shot(cls, model, feats)
    return {"feature_dim": model.feature_dim, "final_loss": loss, "metadata": meta}
