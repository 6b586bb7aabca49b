"""The encoder plugin API: subclass `EncoderMethod` (a torch module), define
`training_loss(view1, view2)`, register it.

An encoder method is a backbone whose features feed downstream probes, plus a training loss
over two augmented views; the one training loop (pe_bench.worker.train) drives it. Its metadata (the
modalities it trains on, its optimiser defaults; see `pe_bench.plugins.types.EncoderMeta`) is
declared in `@register_encoder(...)`, and its `Params` model lives in a torch-free module
named there (`params="module:Class"`), so suites validate without importing torch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from pe_bench.encoders.backbones import build_backbone
from pe_bench.encoders.params import EncoderParams
from pe_bench.plugins.types import EncoderMeta, Modality
from pe_bench.config.spec import TrainSpec, resolve_recipe

__all__ = ["EncoderMethod", "EncoderParams", "with_optimizer_defaults"]
_DEFAULTS = EncoderMeta()


class EncoderMethod(nn.Module):
    """Base class of encoder plugins. Subclasses define `training_loss(view1, view2)`."""

    Params: ClassVar[type[EncoderParams]] = EncoderParams
    modalities: ClassVar[tuple[Modality, ...]] = _DEFAULTS.modalities
    # the method's own optimiser, used for whatever a suite's `train` leaves unset
    optimizer_defaults: ClassVar[Mapping[str, Any]] = _DEFAULTS.optimizer_defaults

    def __init__(self, params: EncoderParams, in_channels: int = 3) -> None:
        super().__init__()
        self.params = params
        self.backbone = build_backbone(params.backbone, in_channels, params.width)
        self.feature_dim: int = self.backbone.feature_dim  # type: ignore[assignment]

    @classmethod
    def contract_params(cls) -> dict[str, Any]:
        """Params for pe_bench.testing's contract run (32 images of 16x16 pixels, one epoch):
        a narrow backbone and small heads; override when your Params differ."""
        return {"width": 4, "proj_hidden_dim": 16, "proj_dim": 8}

    @classmethod
    def from_dict(cls, params: Mapping[str, Any] | None, in_channels: int = 3) -> EncoderMethod:
        return cls(cls.Params.model_validate(dict(params or {})), in_channels=in_channels)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Representation used downstream (before any projection head): a normalised float
        batch (B, C, H, W) (pe_bench.plugins.tensors: uint8 / 255, then (x - 0.5) / 0.25; any
        H, W the backbone pools over) -> float features (B, `feature_dim`)."""
        return self.backbone(x)

    def training_loss(self, view1: torch.Tensor, view2: torch.Tensor) -> torch.Tensor:
        """The loss of one batch: `view1`, `view2` are two augmented views of the same B images,
        normalised float32 (B, C, H, W) on the training device (row i of each from image i;
        under `amp` on CUDA the call runs in bfloat16 autocast). An image-text method also
        gets `text=`, int64 caption token ids (B, T) (pe_bench.plugins.captions), row i the
        caption of image i. Returns a scalar tensor to minimise."""
        raise NotImplementedError

    def before_training(self, n_images: int, batch_size: int) -> dict[str, Any]:
        """Hook before a training run on `n_images` clean images in batches of `batch_size`:
        a method whose settings depend on the data's size fits them here (MoCo caps its queue)
        and returns what it set, which is recorded with the encoder's training info."""
        return {}

    def after_step(self) -> None:
        """Hook after each optimiser step (momentum encoders update here)."""

    def before_epoch(self, epoch: int, recipe: TrainSpec) -> None:
        """Hook before each epoch (0-based) of a pre-training run with `recipe`: a method whose
        loss follows a recipe setting per epoch reads it here (CLIP: `caption_matching`)."""

    def zero_shot_proba(self, features: np.ndarray, classes: Sequence[str]) -> np.ndarray:
        """Class probabilities from backbone features and class names, for methods with a
        text encoder (the grid runs `probe: zero-shot` only for those): float32 features
        (N, `feature_dim`) and K class names -> float probabilities (N, K), rows summing to 1."""
        raise NotImplementedError(f"{type(self).__name__} has no text encoder for zero-shot")


def with_optimizer_defaults(recipe: TrainSpec, method: type[EncoderMethod]) -> TrainSpec:
    """`recipe` with its unset optimiser fields taken from the method's defaults."""
    return resolve_recipe(recipe, {}, method.optimizer_defaults)
